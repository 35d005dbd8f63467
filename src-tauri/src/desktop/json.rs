//! The wire format between the window and the core: plain data types, converted by hand from
//! the domain types, with TypeScript twins generated into `ui/src/api/types.ts` by the test
//! `bindings_are_current` (run with `UPDATE_BINDINGS=1` to rewrite the file). Core types are not
//! `Serialize` for the UI's sake; only this module knows the JSON.
//!
//! Every failure reaches the UI as `ApiError { code, message }`: `code` is for the UI to branch
//! on, `message` is a sentence for the person.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::characters::{self, Category};
use crate::conversation::{self, ReplyStats, Scenario, TurnError};
use crate::engine::{self, EngineStatus as CoreStatus, Sampling};
use crate::settings;
use crate::store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The character, session or message does not exist (any more).
    NotFound,
    /// The message was empty; nothing was sent.
    EmptyMessage,
    /// The message cannot fit the context; nothing was stored, the text stays in the box.
    MessageTooLong,
    /// A reply is already being written in this session.
    Busy,
    /// The model is still loading.
    ModelLoading,
    /// No usable model: missing, damaged, unsupported or failed to load. The message says how to fix it.
    ModelUnavailable,
    /// The reply stopped early because the engine failed; the partial reply is saved.
    ReplyFailed,
    /// Regenerate or continue asked of a message that is not the conversation's last reply.
    NotLastReply,
    /// A setting is out of range.
    InvalidSetting,
    /// A model download failed (network, checksum); what arrived is kept for a resume.
    DownloadFailed,
    /// A card file could not be imported (or a Character exported); the message names the
    /// file and the problem, and nothing in the library changed.
    BadCard,
    /// A Character could not be saved: a field is missing or too long, or its picture is
    /// refused. The message says which; nothing changed.
    InvalidCharacter,
    /// The disk is full; nothing saved was lost.
    DiskFull,
    /// Anything else.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl From<crate::app::EditError> for ApiError {
    fn from(e: crate::app::EditError) -> Self {
        match e {
            crate::app::EditError::Store(e) => e.into(),
            e => ApiError::new(ErrorCode::InvalidCharacter, e.to_string()),
        }
    }
}

impl From<crate::conversation::forms::FormError> for ApiError {
    fn from(e: crate::conversation::forms::FormError) -> Self {
        use crate::conversation::forms::FormError;
        match e {
            FormError::Engine(e) => e.into(),
            e => ApiError::new(ErrorCode::ReplyFailed, e.to_string()),
        }
    }
}

impl From<crate::app::CardError> for ApiError {
    fn from(e: crate::app::CardError) -> Self {
        ApiError {
            code: ErrorCode::BadCard,
            message: e.to_string(),
        }
    }
}

/// What importing one dropped or picked file did.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    /// The file's name.
    pub file: String,
    /// The new Character's id, when the file was a card.
    pub character_id: Option<String>,
    /// Lorebook entries added, when the file was a lorebook.
    pub lore_entries: Option<usize>,
    /// Why the file was not imported (the library is unchanged), else null.
    pub error: Option<String>,
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        let code = match &e {
            store::Error::CharacterNotFound(_) | store::Error::SessionNotFound(_) => {
                ErrorCode::NotFound
            }
            store::Error::DiskFull => ErrorCode::DiskFull,
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<engine::Error> for ApiError {
    fn from(e: engine::Error) -> Self {
        let code = match &e {
            engine::Error::NotReady(_) => ErrorCode::ModelLoading,
            engine::Error::Backend(_) => ErrorCode::ReplyFailed,
            _ => ErrorCode::ModelUnavailable,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<TurnError> for ApiError {
    fn from(e: TurnError) -> Self {
        match e {
            TurnError::Store(e) => e.into(),
            TurnError::Engine(e) => e.into(),
            TurnError::EmptyMessage => ApiError::new(ErrorCode::EmptyMessage, e.to_string()),
            TurnError::MessageTooLong { .. } => {
                ApiError::new(ErrorCode::MessageTooLong, e.to_string())
            }
            TurnError::Failed { .. } => ApiError::new(ErrorCode::ReplyFailed, e.to_string()),
            TurnError::NotAReply(_) => ApiError::new(ErrorCode::NotLastReply, e.to_string()),
        }
    }
}

impl From<engine::download::Error> for ApiError {
    fn from(e: engine::download::Error) -> Self {
        use engine::download::Error as D;
        let code = match &e {
            D::Model(inner) => return inner.clone().into(),
            D::BadRepo(_) | D::BadFile(_) => ErrorCode::InvalidSetting,
            D::Write { reason, .. } if reason.contains("No space") => ErrorCode::DiskFull,
            _ => ErrorCode::DownloadFailed,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<settings::InvalidSetting> for ApiError {
    fn from(e: settings::InvalidSetting) -> Self {
        ApiError::new(ErrorCode::InvalidSetting, e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(rename = "Category")]
pub enum CategoryJson {
    Celebrity,
    DailyLife,
    Fictional,
}

impl From<Category> for CategoryJson {
    fn from(c: Category) -> Self {
        match c {
            Category::Celebrity => CategoryJson::Celebrity,
            Category::DailyLife => CategoryJson::DailyLife,
            Category::Fictional => CategoryJson::Fictional,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(rename = "Scenario")]
pub enum ScenarioJson {
    ChitChat,
    Interview,
    Companionship,
}

impl From<Scenario> for ScenarioJson {
    fn from(s: Scenario) -> Self {
        match s {
            Scenario::ChitChat => ScenarioJson::ChitChat,
            Scenario::Interview => ScenarioJson::Interview,
            Scenario::Companionship => ScenarioJson::Companionship,
        }
    }
}

impl From<ScenarioJson> for Scenario {
    fn from(s: ScenarioJson) -> Self {
        match s {
            ScenarioJson::ChitChat => Scenario::ChitChat,
            ScenarioJson::Interview => Scenario::Interview,
            ScenarioJson::Companionship => Scenario::Companionship,
        }
    }
}

/// A gallery card.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CharacterSummary {
    pub id: String,
    pub name: String,
    pub category: CategoryJson,
    pub tagline: String,
    /// URL of the avatar's 128 px thumbnail, or null to draw initials.
    pub avatar_url: Option<String>,
    pub initials: String,
    /// Unix ms of the last chat, if any.
    pub last_chat_at: Option<i64>,
    pub tags: Vec<String>,
    pub favourite: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Unix ms it went to the trash; null in the gallery.
    pub deleted_at: Option<i64>,
}

/// URL the window loads an avatar file from (served by the `avatar` protocol in `desktop`).
pub fn avatar_url(file: &str) -> String {
    format!("avatar://localhost/{file}")
}

impl From<store::CharacterSummary> for CharacterSummary {
    fn from(c: store::CharacterSummary) -> Self {
        CharacterSummary {
            initials: characters::initials(&c.name),
            id: c.id,
            name: c.name,
            category: c.category.into(),
            tagline: c.tagline,
            avatar_url: c
                .avatar
                .as_deref()
                .map(|a| avatar_url(&characters::avatar::thumb_name(a))),
            last_chat_at: c.last_chat_at,
            tags: c.tags,
            favourite: c.favourite,
            created_at: c.created_at,
            updated_at: c.updated_at,
            deleted_at: c.deleted_at,
        }
    }
}

/// What the chat view shows of a Character.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CharacterDetail {
    pub id: String,
    pub name: String,
    pub category: CategoryJson,
    pub tagline: String,
    pub avatar_url: Option<String>,
    pub initials: String,
    pub tags: Vec<String>,
    /// The profile as the prose the model reads.
    pub profile_prose: String,
}

impl From<characters::Character> for CharacterDetail {
    fn from(c: characters::Character) -> Self {
        CharacterDetail {
            // A Character from a card usually has its description and no structured profile.
            profile_prose: if c.profile.is_blank()
                && c.profile.uses == characters::ProfileForm::Prose
                && !c.description.trim().is_empty()
            {
                c.fill_macros(c.description.trim())
            } else {
                c.profile.text(&c.name)
            },
            initials: characters::initials(&c.name),
            avatar_url: c.avatar.as_deref().map(avatar_url),
            id: c.id,
            name: c.name,
            category: c.category.into(),
            tagline: c.tagline,
            tags: c.tags,
        }
    }
}

/// The CharacterGLM attributes: what the Character says.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Attributes")]
pub struct AttributesJson {
    pub identity: String,
    pub interests: String,
    pub viewpoints: String,
    pub experiences: String,
    pub achievements: String,
    pub relationships: String,
    pub other: String,
}

/// The CharacterGLM behaviours: how the Character says it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Behaviours")]
pub struct BehavioursJson {
    pub linguistic_style: String,
    pub emotional_expression: String,
    pub interaction_patterns: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(rename = "ProfileForm")]
pub enum ProfileFormJson {
    #[default]
    Prose,
    Summary,
    Paraphrase,
    SelfIntro,
}

impl From<ProfileFormJson> for characters::ProfileForm {
    fn from(f: ProfileFormJson) -> Self {
        use characters::ProfileForm as F;
        match f {
            ProfileFormJson::Prose => F::Prose,
            ProfileFormJson::Summary => F::Summary,
            ProfileFormJson::Paraphrase => F::Paraphrase,
            ProfileFormJson::SelfIntro => F::SelfIntro,
        }
    }
}

impl From<characters::ProfileForm> for ProfileFormJson {
    fn from(f: characters::ProfileForm) -> Self {
        use characters::ProfileForm as F;
        match f {
            F::Prose => ProfileFormJson::Prose,
            F::Summary => ProfileFormJson::Summary,
            F::Paraphrase => ProfileFormJson::Paraphrase,
            F::SelfIntro => ProfileFormJson::SelfIntro,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "ProfileForms")]
pub struct ProfileFormsJson {
    pub summary: String,
    pub paraphrase: String,
    pub self_intro: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Greetings")]
pub struct GreetingsJson {
    pub chit_chat: String,
    pub interview: String,
    pub companionship: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(rename = "Exchange")]
pub struct ExchangeJson {
    pub user: String,
    pub character: String,
}

/// Everything the editor edits of a Character. What it does not show (a card's lorebook,
/// extensions, sampling) is kept as stored when it saves.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CharacterEdit {
    /// Null for a Character not saved yet.
    pub id: Option<String>,
    pub name: String,
    pub category: CategoryJson,
    pub tagline: String,
    pub tags: Vec<String>,
    pub attributes: AttributesJson,
    pub behaviours: BehavioursJson,
    pub forms: ProfileFormsJson,
    /// Which form of the profile the prompt uses.
    pub uses: ProfileFormJson,
    pub greetings: GreetingsJson,
    pub alternate_greetings: Vec<String>,
    pub example_dialogue: Vec<ExchangeJson>,
    pub description: String,
    pub personality: String,
    pub setting: String,
    pub system_prompt: String,
    pub post_history_instructions: String,
    pub creator_notes: String,
    /// The stored picture (read only: a new one comes with `save_character`).
    pub avatar_url: Option<String>,
}

impl From<characters::Character> for CharacterEdit {
    fn from(c: characters::Character) -> Self {
        let a = c.profile.attributes;
        let b = c.profile.behaviours;
        let f = c.profile.forms;
        CharacterEdit {
            id: Some(c.id),
            name: c.name,
            category: c.category.into(),
            tagline: c.tagline,
            tags: c.tags,
            attributes: AttributesJson {
                identity: a.identity,
                interests: a.interests,
                viewpoints: a.viewpoints,
                experiences: a.experiences,
                achievements: a.achievements,
                relationships: a.relationships,
                other: a.other,
            },
            behaviours: BehavioursJson {
                linguistic_style: b.linguistic_style,
                emotional_expression: b.emotional_expression,
                interaction_patterns: b.interaction_patterns,
            },
            forms: ProfileFormsJson {
                summary: f.summary,
                paraphrase: f.paraphrase,
                self_intro: f.self_intro,
            },
            uses: c.profile.uses.into(),
            greetings: GreetingsJson {
                chit_chat: c.greetings.chit_chat,
                interview: c.greetings.interview,
                companionship: c.greetings.companionship,
            },
            alternate_greetings: c.alternate_greetings,
            example_dialogue: c
                .example_dialogue
                .into_iter()
                .map(|e| ExchangeJson {
                    user: e.user,
                    character: e.character,
                })
                .collect(),
            description: c.description,
            personality: c.personality,
            setting: c.setting,
            system_prompt: c.system_prompt,
            post_history_instructions: c.post_history_instructions,
            creator_notes: c.creator_notes,
            avatar_url: c.avatar.as_deref().map(avatar_url),
        }
    }
}

impl CharacterEdit {
    /// The edit applied over `base` (the stored Character, or a blank one for a new Character):
    /// the fields the editor shows are replaced, the rest kept.
    pub fn apply(self, mut base: characters::Character) -> characters::Character {
        use characters::{Attributes, Behaviours, Exchange, Greetings, ProfileForms};
        let a = self.attributes;
        let b = self.behaviours;
        let f = self.forms;
        base.name = self.name;
        base.category = match self.category {
            CategoryJson::Celebrity => Category::Celebrity,
            CategoryJson::DailyLife => Category::DailyLife,
            CategoryJson::Fictional => Category::Fictional,
        };
        base.tagline = self.tagline;
        base.tags = self.tags;
        base.profile.attributes = Attributes {
            identity: a.identity,
            interests: a.interests,
            viewpoints: a.viewpoints,
            experiences: a.experiences,
            achievements: a.achievements,
            relationships: a.relationships,
            other: a.other,
        };
        base.profile.behaviours = Behaviours {
            linguistic_style: b.linguistic_style,
            emotional_expression: b.emotional_expression,
            interaction_patterns: b.interaction_patterns,
        };
        base.profile.forms = ProfileForms {
            summary: f.summary,
            paraphrase: f.paraphrase,
            self_intro: f.self_intro,
        };
        base.profile.uses = self.uses.into();
        base.greetings = Greetings {
            chit_chat: self.greetings.chit_chat,
            interview: self.greetings.interview,
            companionship: self.greetings.companionship,
        };
        base.alternate_greetings = self.alternate_greetings;
        base.example_dialogue = self
            .example_dialogue
            .into_iter()
            .map(|e| Exchange {
                user: e.user,
                character: e.character,
            })
            .collect();
        base.description = self.description;
        base.personality = self.personality;
        base.setting = self.setting;
        base.system_prompt = self.system_prompt;
        base.post_history_instructions = self.post_history_instructions;
        base.creator_notes = self.creator_notes;
        base
    }
}

/// A field the editor must show as wrong, and why.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Problem {
    /// The field's path, e.g. `name`, `attributes.identity`, `example_dialogue.2.character`.
    pub field: String,
    pub message: String,
}

/// What the editor's preview shows while the user types.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CharacterPreview {
    /// The profile as the prompt gives it (the chosen form, or the prose).
    pub profile_text: String,
    /// The structured fields as prose, whichever form the prompt uses.
    pub prose: String,
    /// The opening prompt exactly as the model reads it, when a model is loaded; else the
    /// messages it is made of.
    pub prompt: String,
    /// Its length in the model's tokens, when a model is loaded.
    pub tokens: Option<usize>,
    /// Whether `prompt` is the model's own template rendering.
    pub exact: bool,
    /// Tokens the model reads in all (the context), for the "N of M" figure.
    pub context_tokens: usize,
    /// Why the token count is missing, when it is.
    pub note: Option<String>,
    pub problems: Vec<Problem>,
}

/// Who the user is in a Session.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Persona {
    /// 0 for a new one.
    pub id: i64,
    pub name: String,
    pub description: String,
    pub is_default: bool,
}

impl From<store::Persona> for Persona {
    fn from(p: store::Persona) -> Self {
        Persona {
            id: p.id,
            name: p.name,
            description: p.description,
            is_default: p.is_default,
        }
    }
}

impl From<Persona> for store::Persona {
    fn from(p: Persona) -> Self {
        store::Persona {
            id: p.id,
            name: p.name,
            description: p.description,
            is_default: p.is_default,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(rename = "MemoryKind")]
pub enum MemoryKindJson {
    Summary,
    Pinned,
    Fact,
}

/// A Memory: a chunk of the rolling summary, a pinned memory, or a fact about the user.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    pub id: i64,
    pub kind: MemoryKindJson,
    pub content: String,
    /// Null: the Character's, seen by every Session with it.
    pub session_id: Option<i64>,
    pub message_id: Option<i64>,
    pub updated_at: i64,
}

impl From<store::Memory> for Memory {
    fn from(m: store::Memory) -> Self {
        Memory {
            id: m.id,
            kind: match m.kind {
                store::MemoryKind::Summary => MemoryKindJson::Summary,
                store::MemoryKind::Pinned => MemoryKindJson::Pinned,
                store::MemoryKind::Fact => MemoryKindJson::Fact,
            },
            content: m.content,
            session_id: m.session_id,
            message_id: m.message_id,
            updated_at: m.updated_at,
        }
    }
}

/// One part of a prompt, for the inspector.
#[derive(Debug, Clone, Serialize, TS)]
pub struct PromptSection {
    pub name: String,
    pub text: String,
    pub tokens: usize,
}

/// A lore entry in a prompt, and why.
#[derive(Debug, Clone, Serialize, TS)]
pub struct LoreFired {
    pub name: String,
    pub reason: String,
}

/// What a reply was given (the prompt inspector).
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct PromptRecord {
    pub sections: Vec<PromptSection>,
    pub lore: Vec<LoreFired>,
    pub lore_left_out: Vec<String>,
    pub dropped_messages: usize,
    pub examples_dropped: bool,
    pub tokens: usize,
    pub budget: usize,
}

impl From<conversation::prompt::PromptRecord> for PromptRecord {
    fn from(r: conversation::prompt::PromptRecord) -> Self {
        PromptRecord {
            sections: r
                .sections
                .into_iter()
                .map(|s| PromptSection {
                    name: s.name,
                    text: s.text,
                    tokens: s.tokens,
                })
                .collect(),
            lore: r
                .lore
                .into_iter()
                .map(|f| LoreFired {
                    name: f.name,
                    reason: f.reason,
                })
                .collect(),
            lore_left_out: r.lore_left_out,
            dropped_messages: r.dropped_messages,
            examples_dropped: r.examples_dropped,
            tokens: r.tokens,
            budget: r.budget,
        }
    }
}

/// A message found by search.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub message_id: i64,
    pub session_id: i64,
    pub character_id: String,
    pub character_name: String,
    pub role: RoleJson,
    /// The text around the match; the matched words are between `[` and `]`.
    pub snippet: String,
    pub created_at: i64,
}

impl From<store::SearchHit> for SearchHit {
    fn from(h: store::SearchHit) -> Self {
        SearchHit {
            message_id: h.message_id,
            session_id: h.session_id,
            character_id: h.character_id,
            character_name: h.character_name,
            role: match h.role {
                store::Role::User => RoleJson::User,
                store::Role::Character => RoleJson::Character,
            },
            snippet: h.snippet,
            created_at: h.created_at,
        }
    }
}

/// A picture chosen in the editor, with the square the user framed (see `avatar::Crop`).
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AvatarUpload {
    /// The file's bytes, base64.
    pub data: String,
    pub x: f32,
    pub y: f32,
    pub scale: f32,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: i64,
    pub character_id: String,
    pub scenario: ScenarioJson,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub message_count: i64,
    pub preview: String,
    pub persona_id: Option<i64>,
}

impl From<store::Session> for Session {
    fn from(s: store::Session) -> Self {
        Session {
            id: s.id,
            character_id: s.character_id,
            scenario: s.scenario.into(),
            title: s.title,
            created_at: s.created_at,
            updated_at: s.updated_at,
            message_count: s.n_messages,
            preview: s.preview,
            persona_id: s.persona_id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(rename = "Role")]
pub enum RoleJson {
    User,
    Character,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(rename = "MessageStatus")]
pub enum MessageStatusJson {
    Complete,
    Streaming,
    Interrupted,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: i64,
    pub session_id: i64,
    pub role: RoleJson,
    pub content: String,
    pub status: MessageStatusJson,
    pub created_at: i64,
    /// Every version of a reply written again (empty when written once); `content` is
    /// `swipes[swipe]`.
    pub swipes: Vec<String>,
    pub swipe: usize,
}

impl From<store::Message> for Message {
    fn from(m: store::Message) -> Self {
        Message {
            id: m.id,
            session_id: m.session_id,
            role: match m.role {
                store::Role::User => RoleJson::User,
                store::Role::Character => RoleJson::Character,
            },
            content: m.content,
            status: match m.status {
                store::MessageStatus::Complete => MessageStatusJson::Complete,
                store::MessageStatus::Streaming => MessageStatusJson::Streaming,
                store::MessageStatus::Interrupted => MessageStatusJson::Interrupted,
            },
            created_at: m.created_at,
            swipes: m.swipes,
            swipe: m.swipe,
        }
    }
}

/// Figures of a finished reply.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "ReplyStats")]
pub struct ReplyStatsJson {
    pub reply_tokens: usize,
    pub first_token_ms: u64,
    pub tokens_per_second: f64,
}

impl From<ReplyStats> for ReplyStatsJson {
    fn from(s: ReplyStats) -> Self {
        ReplyStatsJson {
            reply_tokens: s.reply_tokens,
            first_token_ms: s.first_token_ms,
            tokens_per_second: (s.tokens_per_second * 10.0).round() / 10.0,
        }
    }
}

/// What `send_message` streams over its Channel.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "event", content = "data", rename_all = "camelCase")]
pub enum StreamEvent {
    /// The user's message is stored and the reply has begun.
    #[serde(rename_all = "camelCase")]
    Started {
        user: Message,
        reply: Message,
        dropped: usize,
    },
    /// An existing reply is being written again (empty) or continued (its text so far).
    Rewriting { reply: Message },
    /// More reply text (already saved).
    Text { text: String },
    /// The reply is complete or was stopped.
    #[serde(rename_all = "camelCase")]
    Finished {
        reply: Message,
        stats: Option<ReplyStatsJson>,
    },
}

impl From<conversation::TurnEvent> for StreamEvent {
    fn from(e: conversation::TurnEvent) -> Self {
        match e {
            conversation::TurnEvent::Started {
                user,
                reply,
                dropped,
            } => StreamEvent::Started {
                user: user.into(),
                reply: reply.into(),
                dropped,
            },
            conversation::TurnEvent::Rewriting { reply } => StreamEvent::Rewriting {
                reply: reply.into(),
            },
            conversation::TurnEvent::Text(text) => StreamEvent::Text { text },
        }
    }
}

/// The model's state, for the status bar (also sent as the `engine://status` event).
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EngineStatus {
    Loading {
        model: String,
    },
    #[serde(rename_all = "camelCase")]
    Ready {
        model: String,
        device: String,
        context_length: usize,
        architecture: String,
        /// e.g. "Q4_1 → Q8_0" when Troupe runs a transcoded copy.
        quantization: String,
        #[ts(type = "number")]
        parameters: u64,
        /// e.g. "all 30 layers on the CPU".
        layers: Option<String>,
    },
    Failed {
        error: ApiError,
    },
}

impl From<CoreStatus> for EngineStatus {
    fn from(s: CoreStatus) -> Self {
        let file = |p: &std::path::Path| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        match s {
            CoreStatus::Loading { path } => EngineStatus::Loading { model: file(&path) },
            CoreStatus::Ready(info) => EngineStatus::Ready {
                model: info.name,
                device: info.device,
                // What a conversation can actually use (Troupe caps long contexts on CPU).
                context_length: info.context_length.min(conversation::turn::CONTEXT_CAP),
                architecture: info.architecture,
                quantization: info.quantization,
                parameters: info.parameters,
                layers: info.layers,
            },
            CoreStatus::Failed(e) => EngineStatus::Failed { error: e.into() },
        }
    }
}

/// How replies are sampled (engine::Sampling, less the per-reply stop strings).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Sampling")]
pub struct SamplingJson {
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: usize,
    pub min_p: f64,
    pub repetition_penalty: f64,
    pub max_tokens: usize,
    pub seed: Option<u64>,
}

impl From<Sampling> for SamplingJson {
    fn from(s: Sampling) -> Self {
        SamplingJson {
            temperature: s.temperature,
            top_p: s.top_p,
            top_k: s.top_k,
            min_p: s.min_p,
            repetition_penalty: s.repetition_penalty,
            max_tokens: s.max_tokens,
            seed: s.seed,
        }
    }
}

impl From<SamplingJson> for Sampling {
    fn from(s: SamplingJson) -> Self {
        Sampling {
            temperature: s.temperature,
            top_p: s.top_p,
            top_k: s.top_k,
            min_p: s.min_p,
            repetition_penalty: s.repetition_penalty,
            max_tokens: s.max_tokens,
            seed: s.seed,
            stop: vec![],
        }
    }
}

/// A named sampling preset, for the preset menu.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(rename = "Preset")]
pub struct PresetJson {
    pub name: String,
    pub sampling: SamplingJson,
}

/// The Sampling at a Character or Session: its own (null = inherits) and what applies.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(rename = "SamplingLevel")]
pub struct SamplingLevelJson {
    pub own: Option<SamplingJson>,
    pub effective: SamplingJson,
    /// Where `effective` comes from: "session", "character" or "settings".
    pub source: String,
}

impl From<crate::app::SamplingLevel> for SamplingLevelJson {
    fn from(l: crate::app::SamplingLevel) -> Self {
        use crate::app::SamplingSource;
        SamplingLevelJson {
            own: l.own.map(Into::into),
            effective: l.effective.into(),
            source: match l.source {
                SamplingSource::Session => "session",
                SamplingSource::Character => "character",
                SamplingSource::Settings => "settings",
            }
            .into(),
        }
    }
}

impl From<crate::app::SetSamplingError> for ApiError {
    fn from(e: crate::app::SetSamplingError) -> Self {
        match e {
            crate::app::SetSamplingError::Invalid(..) => {
                ApiError::new(ErrorCode::InvalidSetting, e.to_string())
            }
            crate::app::SetSamplingError::Store(e) => e.into(),
        }
    }
}

/// The remote server's settings.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "RemoteSettings")]
pub struct RemoteSettingsJson {
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub context_length: usize,
}

/// The settings form.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Settings")]
pub struct SettingsJson {
    /// The GGUF file chosen by the user; null for the default model.
    pub model_path: Option<String>,
    pub sampling: SamplingJson,
    /// "local" or "remote".
    pub engine: String,
    pub remote: RemoteSettingsJson,
    /// The file actually used (the choice above, or an override from the command line).
    #[serde(default)]
    pub effective_model_path: String,
}

impl SettingsJson {
    pub fn from_settings(s: &settings::Settings, effective: &std::path::Path) -> SettingsJson {
        SettingsJson {
            model_path: s.model_path.as_ref().map(|p| p.display().to_string()),
            sampling: s.sampling.clone().into(),
            engine: match s.engine {
                settings::EngineChoice::Local => "local",
                settings::EngineChoice::Remote => "remote",
            }
            .into(),
            remote: RemoteSettingsJson {
                base_url: s.remote.base_url.clone(),
                api_key: s.remote.api_key.clone(),
                model: s.remote.model.clone(),
                context_length: s.remote.context_length,
            },
            effective_model_path: effective.display().to_string(),
        }
    }

    /// The settings this form describes; `models` (the added files) is not in the form and is
    /// taken from `current`.
    pub fn to_settings(&self, current: &settings::Settings) -> settings::Settings {
        settings::Settings {
            model_path: self
                .model_path
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(Into::into),
            sampling: self.sampling.clone().into(),
            models: current.models.clone(),
            engine: if self.engine == "remote" {
                settings::EngineChoice::Remote
            } else {
                settings::EngineChoice::Local
            },
            remote: settings::RemoteSettings {
                base_url: self.remote.base_url.trim().to_string(),
                api_key: self.remote.api_key.clone().filter(|k| !k.trim().is_empty()),
                model: self.remote.model.trim().to_string(),
                context_length: self.remote.context_length,
            },
        }
    }
}

/// A model file in the model manager.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "ModelFile")]
pub struct ModelFileJson {
    pub path: String,
    pub file_name: String,
    pub size_bytes: u64,
    pub architecture: Option<String>,
    pub parameters: Option<u64>,
    pub quantization: Option<String>,
    pub context_length: Option<u64>,
    /// "fits", "may_slow", "wont_fit" or "unusable".
    pub fit: String,
    /// The reason behind `fit` (or the file's problem, when unusable).
    pub fit_reason: String,
    /// The model the local engine uses (or would, when the remote one is chosen).
    pub in_use: bool,
    /// Added from elsewhere (can be removed from the list); false for files in the models folder.
    pub added: bool,
}

impl ModelFileJson {
    pub fn new(m: engine::models::ModelFile, in_use: bool, added: bool) -> ModelFileJson {
        use engine::models::Fit;
        let h = m.header.as_ref().ok();
        ModelFileJson {
            path: m.path.display().to_string(),
            file_name: m
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size_bytes: m.size_bytes,
            architecture: h.map(|h| h.architecture.clone()),
            parameters: h.map(|h| h.n_params),
            quantization: h.map(|h| h.quantization.clone()),
            context_length: h.and_then(|h| h.context_length),
            fit: match m.fit {
                Fit::Fits => "fits",
                Fit::MaySlow => "may_slow",
                Fit::WontFit => "wont_fit",
                Fit::Unusable => "unusable",
            }
            .into(),
            fit_reason: m.fit_reason,
            in_use,
            added,
        }
    }
}

/// Progress of a model download, streamed to the UI.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DownloadEvent {
    #[serde(rename_all = "camelCase")]
    Progress {
        done: u64,
        total: Option<u64>,
        resumed_from: u64,
    },
}

/// The TypeScript twin of every wire type, as one module.
pub fn typescript() -> String {
    let cfg = ts_rs::Config::new().with_large_int("number");
    let decls = [
        ErrorCode::decl(&cfg),
        ApiError::decl(&cfg),
        CategoryJson::decl(&cfg),
        ScenarioJson::decl(&cfg),
        CharacterSummary::decl(&cfg),
        CharacterDetail::decl(&cfg),
        Session::decl(&cfg),
        RoleJson::decl(&cfg),
        MessageStatusJson::decl(&cfg),
        Message::decl(&cfg),
        ReplyStatsJson::decl(&cfg),
        StreamEvent::decl(&cfg),
        EngineStatus::decl(&cfg),
        SamplingJson::decl(&cfg),
        PresetJson::decl(&cfg),
        SamplingLevelJson::decl(&cfg),
        RemoteSettingsJson::decl(&cfg),
        SettingsJson::decl(&cfg),
        ModelFileJson::decl(&cfg),
        DownloadEvent::decl(&cfg),
        ImportResult::decl(&cfg),
        AttributesJson::decl(&cfg),
        BehavioursJson::decl(&cfg),
        ProfileFormJson::decl(&cfg),
        ProfileFormsJson::decl(&cfg),
        GreetingsJson::decl(&cfg),
        ExchangeJson::decl(&cfg),
        CharacterEdit::decl(&cfg),
        Problem::decl(&cfg),
        CharacterPreview::decl(&cfg),
        AvatarUpload::decl(&cfg),
        Persona::decl(&cfg),
        MemoryKindJson::decl(&cfg),
        Memory::decl(&cfg),
        PromptSection::decl(&cfg),
        LoreFired::decl(&cfg),
        PromptRecord::decl(&cfg),
        SearchHit::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from src-tauri/src/desktop/json.rs by the test `bindings_are_current`.\n\
         // Do not edit: change the Rust types and run `UPDATE_BINDINGS=1 cargo test bindings`.\n\n",
    );
    for d in decls {
        out.push_str("export ");
        out.push_str(&d);
        out.push_str("\n\n");
    }
    out.trim_end().to_string() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_are_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/api/types.ts");
        let want = typescript();
        if std::env::var_os("UPDATE_BINDINGS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "ui/src/api/types.ts is stale: run `UPDATE_BINDINGS=1 cargo test bindings`"
        );
    }

    #[test]
    fn errors_serialise_to_code_and_message_only() {
        let e: ApiError = store::Error::CharacterNotFound("x".into()).into();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"code": "not_found", "message": "no character with id 'x'"})
        );
        let e: ApiError = TurnError::MessageTooLong {
            needed: 9000,
            budget: 3896,
        }
        .into();
        assert_eq!(
            serde_json::to_value(&e).unwrap()["code"],
            "message_too_long"
        );
        let e: ApiError = engine::Error::ModelMissing {
            path: "/m.gguf".into(),
        }
        .into();
        assert_eq!(
            serde_json::to_value(&e).unwrap()["code"],
            "model_unavailable"
        );
    }

    #[test]
    fn stream_events_are_tagged() {
        let e = StreamEvent::Text { text: "hi".into() };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"event": "text", "data": {"text": "hi"}})
        );
    }
}
