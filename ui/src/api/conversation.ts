import { call, stream } from './ipc';
import type { Message, Scenario, Session, StreamEvent } from './types';

export const listSessions = (characterId: string) => call<Session[]>('list_sessions', { characterId });
export const createSession = (characterId: string, scenario: Scenario) =>
  call<Session>('create_session', { characterId, scenario });
export const listMessages = (sessionId: number) => call<Message[]>('list_messages', { sessionId });
/** Sends `text`; the reply streams to `onEvent`; resolves with the stored reply. */
export const sendMessage = (sessionId: number, text: string, onEvent: (e: StreamEvent) => void) =>
  stream<StreamEvent, Message>('send_message', { sessionId, text }, onEvent);
export const stopReply = (sessionId: number) => call<boolean>('stop_reply', { sessionId });
/** Prefills the session's prompt in the background so the next reply starts quickly. */
export const warmSession = (sessionId: number) => call<void>('warm_session', { sessionId });
/** Prefills a Character's part of the prompt while the user picks a Scenario (best effort). */
export const warmCharacter = (characterId: string) => call<void>('warm_character', { characterId });
