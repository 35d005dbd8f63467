// The arena: the next reply written twice (the model in use against a contender), shown as A
// and B in a random order, the person's pick, and the results per pair.
import { call, stream } from './ipc';
import type { ArenaContender, ArenaEvent, ArenaPair, ArenaPicked, ArenaTurn } from './types';

export const arenaContenders = () => call<ArenaContender[]>('arena_contenders');
/** Writes the reply to `text` twice, streaming both; resolves with the two versions, A first. */
export const arenaTurn = (sessionId: number, text: string, vs: string, onEvent: (e: ArenaEvent) => void) =>
  stream<ArenaEvent, ArenaTurn>('arena_turn', { sessionId, text, vs }, onEvent);
/** The pick on the Session's latest compared turn: 'a', 'b', 'tie' or 'bad'; says who wrote which. */
export const arenaPick = (sessionId: number, choice: 'a' | 'b' | 'tie' | 'bad') =>
  call<ArenaPicked>('arena_pick', { sessionId, choice });
export const arenaReport = () => call<ArenaPair[]>('arena_report');
