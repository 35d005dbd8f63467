// Group Sessions: several Characters in one Session. A message typed in a group goes through
// sendMessage like any other; these start a group, change its members and ask for rounds.
import { call, stream } from './ipc';
import type { Group, Message, Scenario, Session, Strategy, StreamEvent } from './types';

/** Starts a group of `characterIds` (two or more; the first is the host). */
export const startGroup = (characterIds: string[], scenario: Scenario, strategy: Strategy = 'natural', name: string | null = null) =>
  call<Session>('start_group', { characterIds, scenario, strategy, name });
/** The group part of a Session; null for a conversation with one Character. */
export const getGroup = (sessionId: number) => call<Group | null>('get_group', { sessionId });
/** A Character joins (`present`) or leaves; resolves to the group as it is now. */
export const setMemberPresent = (sessionId: number, characterId: string, present: boolean) =>
  call<Group | null>('set_member_present', { sessionId, characterId, present });
export const setMemberMuted = (sessionId: number, characterId: string, muted: boolean) =>
  call<Group | null>('set_member_muted', { sessionId, characterId, muted });
export const setGroupStrategy = (sessionId: number, strategy: Strategy) =>
  call<Group | null>('set_group_strategy', { sessionId, strategy });
/** "Reply as …": that member answers next; the reply streams to `onEvent`. */
export const replyAs = (sessionId: number, characterId: string, onEvent: (e: StreamEvent) => void) =>
  stream<StreamEvent, Message[]>('reply_as', { sessionId, characterId }, onEvent);
/** "Let them talk": `rounds` replies among the members, streamed. */
export const letThemTalk = (sessionId: number, rounds: number, onEvent: (e: StreamEvent) => void) =>
  stream<StreamEvent, Message[]>('let_them_talk', { sessionId, rounds }, onEvent);
