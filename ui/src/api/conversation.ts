import { call, on, stream } from './ipc';
import type { Memory, Message, Persona, PromptRecord, Scenario, SearchHit, Session, StreamEvent } from './types';

export const listSessions = (characterId: string) => call<Session[]>('list_sessions', { characterId });
export const createSession = (characterId: string, scenario: Scenario, personaId: number | null = null) =>
  call<Session>('create_session', { characterId, scenario, personaId });
export const listMessages = (sessionId: number) => call<Message[]>('list_messages', { sessionId });
/** A Session written by another program through the local API (its id); resolves to the unlisten. */
export const onSessionChanged = (handler: (sessionId: number) => void) => on<number>('session://changed', handler);
/** The newest `limit` messages of a session, oldest first: what opening it shows. */
export const recentMessages = (sessionId: number, limit: number) =>
  call<Message[]>('recent_messages', { sessionId, limit });
/** Sends `text`; the reply streams to `onEvent`; resolves with the stored reply. */
export const sendMessage = (sessionId: number, text: string, onEvent: (e: StreamEvent) => void) =>
  stream<StreamEvent, Message>('send_message', { sessionId, text }, onEvent);
/** Writes the last reply again (the old version stays as a swipe); streams like sendMessage. */
export const regenerateReply = (replyId: number, onEvent: (e: StreamEvent) => void) =>
  stream<StreamEvent, Message>('regenerate_reply', { replyId }, onEvent);
/** Continues the last reply where it stopped. */
export const continueReply = (replyId: number, onEvent: (e: StreamEvent) => void) =>
  stream<StreamEvent, Message>('continue_reply', { replyId }, onEvent);
/** Shows another version of a reply written more than once. */
export const selectSwipe = (messageId: number, index: number) => call<Message>('select_swipe', { messageId, index });
export const stopReply = (sessionId: number) => call<boolean>('stop_reply', { sessionId });
/** Prefills the session's prompt in the background so the next reply starts quickly. */
export const warmSession = (sessionId: number) => call<void>('warm_session', { sessionId });
/** Prefills a Character's part of the prompt while the user picks a Scenario (best effort). */
export const warmCharacter = (characterId: string) => call<void>('warm_character', { characterId });

export const editMessage = (messageId: number, content: string) => call<void>('edit_message', { messageId, content });
/** Deletes a message; resolves to the id `undoDelete` takes. */
export const deleteMessage = (messageId: number) => call<number>('delete_message', { messageId });
/** Brings back a deleted message, memory or persona. */
export const undoDelete = (undoId: number) => call<void>('undo_delete', { undoId });
/** A new session with this one's messages up to `messageId`. */
export const branchSession = (messageId: number) => call<Session>('branch_session', { messageId });
export const renameSession = (sessionId: number, title: string) => call<void>('rename_session', { sessionId, title });
export const trashSession = (sessionId: number) => call<void>('trash_session', { sessionId });
export const restoreSession = (sessionId: number) => call<void>('restore_session', { sessionId });

/** What a reply was given, section by section (null for replies older than the inspector). */
export const promptRecord = (messageId: number) => call<PromptRecord | null>('prompt_record', { messageId });
/** Full-text search over every message, newest first. */
export const searchMessages = (query: string, limit = 50) => call<SearchHit[]>('search_messages', { query, limit });
/** Questions for an interview, drawn from the Character's profile. */
export const suggestedQuestions = (characterId: string) => call<string[]>('suggested_questions', { characterId });

export const listPersonas = () => call<Persona[]>('list_personas');
export const savePersona = (persona: Persona) => call<Persona>('save_persona', { persona });
export const deletePersona = (id: number) => call<number>('delete_persona', { id });

export const listMemories = (sessionId: number) => call<Memory[]>('list_memories', { sessionId });
/** Pins a memory: text the user wrote, or a message's text (`messageId`, empty `content`). */
export const addMemory = (sessionId: number, content: string, messageId: number | null = null, forCharacter = false) =>
  call<Memory>('add_memory', { sessionId, content, messageId, forCharacter });
export const updateMemory = (id: number, content: string) => call<void>('update_memory', { id, content });
export const deleteMemory = (id: number) => call<number>('delete_memory', { id });
