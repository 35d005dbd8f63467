// Generated from src-tauri/src/desktop/json/ by the test `bindings_are_current`.
// Do not edit: change the Rust types and run `UPDATE_BINDINGS=1 cargo test bindings`.

export type ErrorCode = "not_found" | "empty_message" | "message_too_long" | "busy" | "model_loading" | "model_unavailable" | "reply_failed" | "not_last_reply" | "invalid_setting" | "download_failed" | "bad_card" | "invalid_character" | "disk_full" | "bad_backup" | "stopped" | "no_speaker" | "invalid_group" | "invalid_rating" | "internal";

export type ApiError = { code: ErrorCode, message: string, };

export type Category = "celebrity" | "daily_life" | "fictional";

export type Scenario = "chit_chat" | "interview" | "companionship";

export type CharacterSummary = { id: string, name: string, category: Category, tagline: string, 
/**
 * URL of the avatar's 128 px thumbnail, or null to draw initials.
 */
avatarUrl: string | null, initials: string, 
/**
 * Unix ms of the last chat, if any.
 */
lastChatAt: number | null, tags: Array<string>, favourite: boolean, createdAt: number, updatedAt: number, 
/**
 * Unix ms it went to the trash; null in the gallery.
 */
deletedAt: number | null, };

export type CharacterDetail = { id: string, name: string, category: Category, tagline: string, avatarUrl: string | null, initials: string, tags: Array<string>, 
/**
 * The profile as the prose the model reads.
 */
profileProse: string, };

export type Session = { id: number, characterId: string, scenario: Scenario, title: string, createdAt: number, updatedAt: number, messageCount: number, preview: string, personaId: number | null, 
/**
 * A group's members (Character ids), the host first; empty for a one-Character Session.
 */
members: Array<string>, };

export type Role = "user" | "character";

export type MessageStatus = "complete" | "streaming" | "interrupted";

export type Message = { id: number, sessionId: number, role: Role, content: string, status: MessageStatus, createdAt: number, 
/**
 * Every version of a reply written again (empty when written once); `content` is
 * `swipes[swipe]`.
 */
swipes: Array<string>, swipe: number, 
/**
 * In a group: who wrote this reply (a Character id).
 */
speaker: string | null, };

export type ReplyStats = { replyTokens: number, firstTokenMs: number, tokensPerSecond: number, };

export type StreamEvent = { "event": "started", "data": { user: Message, reply: Message, dropped: number, } } | { "event": "rewriting", "data": { reply: Message, } } | { "event": "text", "data": { text: string, } } | { "event": "said", "data": { user: Message, } } | { "event": "speaking", "data": { reply: Message, speaker: string, } } | { "event": "finished", "data": { reply: Message, stats: ReplyStats | null, } };

export type EngineStatus = { "state": "loading", model: string, } | { "state": "ready", model: string, device: string, contextLength: number, architecture: string, 
/**
 * e.g. "Q4_1 → Q8_0" when Troupe runs a transcoded copy.
 */
quantization: string, parameters: number, 
/**
 * e.g. "all 30 layers on the CPU".
 */
layers: string | null, } | { "state": "failed", error: ApiError, };

export type Sampling = { temperature: number, topP: number, topK: number, minP: number, repetitionPenalty: number, 
/**
 * Tokens the penalty looks back over (0 = the whole context).
 */
repetitionWindow: number, 
/**
 * DRY's strength against copied phrases (0 = off).
 */
dryMultiplier: number, maxTokens: number, seed: number | null, };

export type Preset = { name: string, sampling: Sampling, };

export type SamplingLevel = { own: Sampling | null, effective: Sampling, 
/**
 * Where `effective` comes from: "session", "character" or "settings".
 */
source: string, };

export type RemoteSettings = { baseUrl: string, 
/**
 * Never sent to the window (script in a webview must not read it): always null going
 * out. Coming back, null keeps the key as it is, "" removes it, any other text replaces it.
 */
apiKey: string | null, 
/**
 * Whether a key is set.
 */
apiKeySet: boolean, model: string, contextLength: number, };

export type Settings = { 
/**
 * The GGUF file chosen by the user; null for the default model.
 */
modelPath: string | null, sampling: Sampling, 
/**
 * "local" or "remote".
 */
engine: string, remote: RemoteSettings, 
/**
 * The file actually used (the choice above, or an override from the command line).
 */
effectiveModelPath: string, 
/**
 * "system", "light" or "dark".
 */
theme: string, 
/**
 * Whether the welcome was shown.
 */
welcomed: boolean, 
/**
 * "system", "en" or "zh-CN".
 */
language: string, 
/**
 * Where the library lives (read-only; shown in the welcome).
 */
dataDir: string, 
/**
 * The prompt cache's budget in MB (0: off).
 */
promptCacheMb: number, };

export type ModelFile = { path: string, fileName: string, sizeBytes: number, architecture: string | null, parameters: number | null, quantization: string | null, contextLength: number | null, 
/**
 * "fits", "may_slow", "wont_fit" or "unusable".
 */
fit: string, 
/**
 * The reason behind `fit` (or the file's problem, when unusable).
 */
fitReason: string, 
/**
 * The model the local engine uses (or would, when the remote one is chosen).
 */
inUse: boolean, 
/**
 * Added from elsewhere (can be removed from the list); false for files in the models folder.
 */
added: boolean, };

export type DownloadEvent = { "kind": "progress", done: number, total: number | null, resumedFrom: number, };

export type CatalogModel = { id: string, name: string, repo: string, file: string, parameters: number, sizeBytes: number, contextLength: number, 
/**
 * Memory it needs with the context Troupe uses, in bytes.
 */
needBytes: number, 
/**
 * An SPDX identifier: Apache-2.0 or MIT.
 */
licence: string, goodAt: string, languages: string, 
/**
 * "fits", "may_slow" or "wont_fit", for this machine.
 */
fit: string, fitReason: string, 
/**
 * Its path when it is already here.
 */
installed: string | null, inUse: boolean, };

export type ImportResult = { 
/**
 * The file's name.
 */
file: string, 
/**
 * The new Character's id, when the file was a card.
 */
characterId: string | null, 
/**
 * Lorebook entries added, when the file was a lorebook.
 */
loreEntries: number | null, 
/**
 * Why the file was not imported (the library is unchanged), else null.
 */
error: string | null, };

export type Attributes = { identity: string, interests: string, viewpoints: string, experiences: string, achievements: string, relationships: string, other: string, };

export type Behaviours = { linguisticStyle: string, emotionalExpression: string, interactionPatterns: string, };

export type ProfileForm = "prose" | "summary" | "paraphrase" | "self_intro";

export type ProfileForms = { summary: string, paraphrase: string, selfIntro: string, };

export type Greetings = { chitChat: string, interview: string, companionship: string, };

export type Exchange = { user: string, character: string, };

export type CharacterEdit = { 
/**
 * Null for a Character not saved yet.
 */
id: string | null, name: string, category: Category, tagline: string, tags: Array<string>, attributes: Attributes, behaviours: Behaviours, forms: ProfileForms, 
/**
 * Which form of the profile the prompt uses.
 */
uses: ProfileForm, greetings: Greetings, alternateGreetings: Array<string>, exampleDialogue: Array<Exchange>, description: string, personality: string, setting: string, systemPrompt: string, postHistoryInstructions: string, creatorNotes: string, 
/**
 * How readily the Character speaks up in a group, 0–1 (a card's
 * `extensions.talkativeness`, as SillyTavern keeps it).
 */
talkativeness: number, 
/**
 * The stored picture (read only: a new one comes with `save_character`).
 */
avatarUrl: string | null, };

export type Problem = { 
/**
 * The field's path, e.g. `name`, `attributes.identity`, `example_dialogue.2.character`.
 */
field: string, message: string, };

export type CharacterPreview = { 
/**
 * The profile as the prompt gives it (the chosen form, or the prose).
 */
profileText: string, 
/**
 * The structured fields as prose, whichever form the prompt uses.
 */
prose: string, 
/**
 * The opening prompt exactly as the model reads it, when a model is loaded; else the
 * messages it is made of.
 */
prompt: string, 
/**
 * Its length in the model's tokens, when a model is loaded.
 */
tokens: number | null, 
/**
 * Whether `prompt` is the model's own template rendering.
 */
exact: boolean, 
/**
 * Tokens the model reads in all (the context), for the "N of M" figure.
 */
contextTokens: number, 
/**
 * Why the token count is missing, when it is.
 */
note: string | null, problems: Array<Problem>, };

export type AvatarUpload = { 
/**
 * The file's bytes, base64.
 */
data: string, x: number, y: number, scale: number, };

export type Persona = { 
/**
 * 0 for a new one.
 */
id: number, name: string, description: string, isDefault: boolean, };

export type MemoryKind = "summary" | "pinned" | "fact";

export type Memory = { id: number, kind: MemoryKind, content: string, 
/**
 * Null: the Character's, seen by every Session with it.
 */
sessionId: number | null, messageId: number | null, updatedAt: number, };

export type PromptSection = { name: string, text: string, tokens: number, };

export type LoreFired = { name: string, reason: string, };

export type PromptRecord = { sections: Array<PromptSection>, lore: Array<LoreFired>, loreLeftOut: Array<string>, droppedMessages: number, examplesDropped: boolean, tokens: number, budget: number, };

export type SearchHit = { messageId: number, sessionId: number, characterId: string, characterName: string, role: Role, 
/**
 * The text around the match; the matched words are between `[` and `]`.
 */
snippet: string, createdAt: number, };

export type Counts = { characters: number, sessions: number, messages: number, memories: number, personas: number, };

export type Backup = { 
/**
 * Its file name; what `restore_backup` takes.
 */
id: string, 
/**
 * Where it is, for the person who wants to copy it elsewhere.
 */
path: string, 
/**
 * Unix ms.
 */
createdAt: number, 
/**
 * daily, migration, restore, purge, manual or export.
 */
reason: string, bytes: number, troupeVersion: string, counts: Counts, };

export type ImportAllResult = { charactersAdded: number, sessionsAdded: number, messagesAdded: number, unchanged: number, 
/**
 * Each thing kept side by side, in words.
 */
conflicts: Array<string>, };

export type EvalMetric = { 
/**
 * memory, consistency, repetition, speed…
 */
suite: string, name: string, value: number, 
/**
 * How many items it averages.
 */
n: number, 
/**
 * higher, lower or neither.
 */
better: string, 
/**
 * share, ms, tokens/s, words, messages…
 */
unit: string, };

export type EvalProblem = { item: string, error: string, };

export type EvalRun = { id: number, 
/**
 * Unix ms.
 */
createdAt: number, model: string, 
/**
 * troupe, naive, a preset…
 */
setup: string, seconds: number, 
/**
 * Stopped before the end; what was measured stands.
 */
cancelled: boolean, metrics: Array<EvalMetric>, problems: Array<EvalProblem>, };

export type EvalEvent = { "kind": "progress", done: number, total: number, 
/**
 * What runs now: "walt-okafor: memory".
 */
item: string, };

export type Scores = { consistency: number, humanLikeness: number, engagement: number, quality: number, safety: number, correctness: number, overall: number, };

export type Rating = { sessionId: number, model: string, scores: Scores, comment: string, 
/**
 * Unix ms.
 */
createdAt: number, };

export type Thumb = { messageId: number, value: number, };

export type RatingAverages = { model: string, 
/**
 * Rated Sessions (0: only thumbs).
 */
sessions: number, 
/**
 * The seven means, in the order of `Scores`.
 */
means: Array<number>, thumbsUp: number, thumbsDown: number, };

export type TrainingData = { sftPath: string, sftRows: number, dpoPath: string, dpoRows: number, 
/**
 * Replies left out: kept before the messages the model saw were.
 */
withoutPrompt: number, };

export type ArenaContender = { spec: string, label: string, };

export type ArenaEvent = { "event": "started", "data": { user: Message, } } | { "event": "side", "data": { side: string, } } | { "event": "text", "data": { side: string, text: string, } };

export type ArenaTurn = { turnId: number, reply: Message, a: string, b: string, aFailed: string | null, bFailed: string | null, 
/**
 * The two models could not be held at once: the one in use was set aside meanwhile.
 */
parked: boolean, };

export type ArenaPicked = { choice: string, a: string, b: string, };

export type ArenaTally = { n: number, win: number, tie: number, lose: number, bothBad: number, winLow: number, winHigh: number, loseLow: number, loseHigh: number, };

export type ArenaPair = { first: string, second: string, overall: ArenaTally, cells: { [key in string]: ArenaTally }, };

export type LocalApi = { 
/**
 * Serving now.
 */
running: boolean, 
/**
 * Where clients call it, e.g. "http://127.0.0.1:7337/v1", while it runs.
 */
address: string | null, port: number, 
/**
 * The Bearer key clients send (empty until the API is first turned on).
 */
key: string, network: boolean, startWithTroupe: boolean, origins: Array<string>, 
/**
 * Why it is not running when it should (a port in use).
 */
error: string | null, };

export type LocalApiChange = { running: boolean, port: number, network: boolean, startWithTroupe: boolean, origins: Array<string>, };

export type Strategy = "natural" | "list" | "pooled" | "manual";

export type GroupMember = { characterId: string, 
/**
 * Null when the Character was deleted for good (its lines keep their text).
 */
character: CharacterSummary | null, 
/**
 * In the room now.
 */
present: boolean, 
/**
 * Never chosen to speak; asked by name, they still answer.
 */
muted: boolean, 
/**
 * The Character is in the trash: they cannot speak until restored.
 */
inTrash: boolean, };

export type Group = { sessionId: number, name: string, strategy: Strategy, 
/**
 * In their order; the first is the host.
 */
members: Array<GroupMember>, };
