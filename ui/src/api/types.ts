// Generated from src-tauri/src/desktop/json.rs by the test `bindings_are_current`.
// Do not edit: change the Rust types and run `UPDATE_BINDINGS=1 cargo test bindings`.

export type ErrorCode = "not_found" | "empty_message" | "message_too_long" | "busy" | "model_loading" | "model_unavailable" | "reply_failed" | "invalid_setting" | "disk_full" | "internal";

export type ApiError = { code: ErrorCode, message: string, };

export type Category = "celebrity" | "daily_life" | "fictional";

export type Scenario = "chit_chat" | "interview" | "companionship";

export type CharacterSummary = { id: string, name: string, category: Category, tagline: string, 
/**
 * URL of the avatar image, or null to draw initials.
 */
avatarUrl: string | null, initials: string, 
/**
 * Unix ms of the last chat, if any.
 */
lastChatAt: number | null, };

export type CharacterDetail = { id: string, name: string, category: Category, tagline: string, avatarUrl: string | null, initials: string, tags: Array<string>, 
/**
 * The profile as the prose the model reads.
 */
profileProse: string, };

export type Session = { id: number, characterId: string, scenario: Scenario, title: string, createdAt: number, updatedAt: number, messageCount: number, preview: string, };

export type Role = "user" | "character";

export type MessageStatus = "complete" | "streaming" | "interrupted";

export type Message = { id: number, sessionId: number, role: Role, content: string, status: MessageStatus, createdAt: number, };

export type ReplyStats = { replyTokens: number, firstTokenMs: number, tokensPerSecond: number, };

export type StreamEvent = { "event": "started", "data": { user: Message, reply: Message, dropped: number, } } | { "event": "text", "data": { text: string, } } | { "event": "finished", "data": { reply: Message, stats: ReplyStats | null, } };

export type EngineStatus = { "state": "loading", model: string, } | { "state": "ready", model: string, device: string, contextLength: number, architecture: string, } | { "state": "failed", error: ApiError, };

export type Settings = { 
/**
 * The GGUF file chosen by the user; null for the default model.
 */
modelPath: string | null, temperature: number, topP: number, maxReplyTokens: number, 
/**
 * The file actually used (the choice above, or an override from the command line).
 */
effectiveModelPath: string, };
