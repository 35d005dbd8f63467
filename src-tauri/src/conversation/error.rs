//! `TurnError`: why a turn (or a summary, or a prompt) did not produce what was asked. Shared by
//! `turn`, `assemble` and `memory`, so none of them imports another for it.

use crate::engine;
use crate::store::{self, Message};

/// Why a turn did not produce a reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TurnError {
    /// A reply is already being written in this Session (one at a time).
    #[error("a reply is already being written in this session")]
    Busy,
    /// Nothing to send.
    #[error("the message is empty")]
    EmptyMessage,
    /// The message cannot fit the model's context even with no history; nothing was stored.
    #[error("the message is too long: with the character's profile it needs {needed} tokens, and this model has room for {budget}; shorten it or split it")]
    MessageTooLong { needed: usize, budget: usize },
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// Regenerate or continue asked of a message that is not the conversation's last reply.
    #[error("{0}")]
    NotAReply(String),
    /// A group has nobody to answer: every member is muted, away or in the trash.
    #[error("nobody in this group can answer: every member is muted, has left or is in the trash; unmute one or ask one by name")]
    NoSpeaker,
    /// The engine failed after the reply began; the partial reply is stored as interrupted.
    #[error("the reply stopped early: {reason}")]
    Failed { reply: Message, reason: String },
}
