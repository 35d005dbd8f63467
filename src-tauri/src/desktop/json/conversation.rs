//! Wire types of the conversation area (`ui/src/api/conversation.ts`): Sessions, Messages and
//! the reply stream, personas, memories, the prompt inspector, search.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::app::vocabulary::{self as domain, ReplyStats, Scenario};

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

impl From<domain::Persona> for Persona {
    fn from(p: domain::Persona) -> Self {
        Persona {
            id: p.id,
            name: p.name,
            description: p.description,
            is_default: p.is_default,
        }
    }
}

impl From<Persona> for domain::Persona {
    fn from(p: Persona) -> Self {
        domain::Persona {
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

impl From<domain::Memory> for Memory {
    fn from(m: domain::Memory) -> Self {
        Memory {
            id: m.id,
            kind: match m.kind {
                domain::MemoryKind::Summary => MemoryKindJson::Summary,
                domain::MemoryKind::Pinned => MemoryKindJson::Pinned,
                domain::MemoryKind::Fact => MemoryKindJson::Fact,
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

impl From<domain::PromptRecord> for PromptRecord {
    fn from(r: domain::PromptRecord) -> Self {
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

impl From<domain::SearchHit> for SearchHit {
    fn from(h: domain::SearchHit) -> Self {
        SearchHit {
            message_id: h.message_id,
            session_id: h.session_id,
            character_id: h.character_id,
            character_name: h.character_name,
            role: match h.role {
                domain::Role::User => RoleJson::User,
                domain::Role::Character => RoleJson::Character,
            },
            snippet: h.snippet,
            created_at: h.created_at,
        }
    }
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
    /// A group's members (Character ids), the host first; empty for a one-Character Session.
    pub members: Vec<String>,
}

impl From<domain::Session> for Session {
    fn from(s: domain::Session) -> Self {
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
            members: s.members,
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
    /// In a group: who wrote this reply (a Character id).
    pub speaker: Option<String>,
}

impl From<domain::Message> for Message {
    fn from(m: domain::Message) -> Self {
        Message {
            id: m.id,
            session_id: m.session_id,
            role: match m.role {
                domain::Role::User => RoleJson::User,
                domain::Role::Character => RoleJson::Character,
            },
            content: m.content,
            status: match m.status {
                domain::MessageStatus::Complete => MessageStatusJson::Complete,
                domain::MessageStatus::Streaming => MessageStatusJson::Streaming,
                domain::MessageStatus::Interrupted => MessageStatusJson::Interrupted,
            },
            created_at: m.created_at,
            swipes: m.swipes,
            swipe: m.swipe,
            speaker: m.speaker,
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
    /// In a group: the person's message is stored; the members' replies follow.
    Said { user: Message },
    /// In a group: a member (`speaker`, a Character id) begins a reply.
    Speaking { reply: Message, speaker: String },
    /// The reply is complete or was stopped.
    #[serde(rename_all = "camelCase")]
    Finished {
        reply: Message,
        stats: Option<ReplyStatsJson>,
    },
}

impl From<domain::TurnEvent> for StreamEvent {
    fn from(e: domain::TurnEvent) -> Self {
        match e {
            domain::TurnEvent::Started {
                user,
                reply,
                dropped,
            } => StreamEvent::Started {
                user: user.into(),
                reply: reply.into(),
                dropped,
            },
            domain::TurnEvent::Rewriting { reply } => StreamEvent::Rewriting {
                reply: reply.into(),
            },
            domain::TurnEvent::Text(text) => StreamEvent::Text { text },
            domain::TurnEvent::Said { user } => StreamEvent::Said { user: user.into() },
            domain::TurnEvent::Speaking { reply, speaker } => StreamEvent::Speaking {
                reply: reply.into(),
                speaker,
            },
        }
    }
}
