//! `Context`: everything a Session's prompt is made from (the Session, its Character, the
//! user's persona, the stored messages and memories), read from the store in one place.

use crate::characters::Character;
use crate::store::{self, Message, Store};

use super::{prompt, TurnError};

/// Everything a Session's prompt is made from, read from the store.
pub struct Context {
    pub session: store::Session,
    pub character: Character,
    pub user: prompt::User,
    /// The stored messages, oldest first.
    pub messages: Vec<Message>,
    pub memories: Vec<store::Memory>,
    /// In a group, who else is in the room and how to write (`group::speaker_context`); it
    /// closes the system prompt.
    pub cast: Option<String>,
}

/// Reads a Session's `Context`.
pub fn context(store: &Store, session_id: i64) -> Result<Context, TurnError> {
    let session = store.get_session(session_id)?;
    let character = store.get_character(&session.character_id)?;
    let persona = store.session_persona(session_id)?;
    Ok(Context {
        character,
        user: prompt::User {
            name: persona.name,
            description: persona.description,
        },
        messages: store.list_messages(session_id)?,
        memories: store.memories_for_session(session_id)?,
        cast: None,
        session,
    })
}

impl Context {
    /// How many of the oldest stored messages the summary covers.
    pub fn summarised(&self) -> usize {
        let until = self
            .memories
            .iter()
            .filter(|m| {
                m.kind == store::MemoryKind::Summary && m.session_id == Some(self.session.id)
            })
            .filter_map(|m| m.message_id)
            .max();
        match until {
            Some(id) => self.messages.iter().take_while(|m| m.id <= id).count(),
            None => 0,
        }
    }

    pub(crate) fn texts(&self, kind: store::MemoryKind) -> Vec<String> {
        self.memories
            .iter()
            .filter(|m| m.kind == kind && !m.content.trim().is_empty())
            .map(|m| m.content.clone())
            .collect()
    }
}
