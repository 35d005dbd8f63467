//! A reply to a conversation the caller holds rather than the store: the local API's stateless
//! requests, where a client sends the whole history each time (as OpenAI's API works). The
//! prompt is assembled exactly as a Session's (`assemble`: profile, Scenario, persona, lore,
//! the Character's own memories, the budgeted history), the reply tidied exactly as a stored
//! one; nothing is written anywhere.
//!
//! What the caller adds as instructions (a client's `system` messages) becomes notes beside the
//! Character's pinned memories, just before the newest message: it can steer the Character, never
//! replace its profile.

use crate::characters::{Character, Scenario};
use crate::engine::{ChatMessage, ChatRole, Engine, Sampling};
use crate::store::{self, MemoryKind, Message, MessageStatus, Role};

use super::assemble::{assemble, budget};
use super::context::Context;
use super::stream::{stream_detached, Detached};
use super::{prompt, Cancel, TurnError};

/// A conversation held by the caller.
pub struct Conversation {
    pub character: Character,
    pub scenario: Scenario,
    /// Who the user is.
    pub user: prompt::User,
    /// The Character's own memories (those every Session with it sees).
    pub memories: Vec<store::Memory>,
    /// The caller's messages, oldest first, the newest user message last.
    pub messages: Vec<ChatMessage>,
}

/// A reply written for a `Conversation`, and the exact size of the prompt it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct DetachedReply {
    pub reply: Detached,
    pub prompt_tokens: usize,
}

/// Writes the Character's reply to the newest user message of `conversation`, streaming each
/// piece to `on_text`. Stores nothing.
pub async fn reply(
    engine: &dyn Engine,
    conversation: Conversation,
    sampling: &Sampling,
    cancel: &Cancel,
    on_text: &mut (dyn FnMut(&str) + Send),
) -> Result<DetachedReply, TurnError> {
    let (ctx, newest) = context(conversation)?;
    let assembled = assemble(engine, &ctx, Some(&newest), budget(engine, sampling)).await?;
    let mut sampling = sampling.clone();
    for stop in prompt::stop_strings_for(&ctx.user) {
        if !sampling.stop.contains(&stop) {
            sampling.stop.push(stop);
        }
    }
    let prompt_tokens = assembled.record.tokens;
    let reply = stream_detached(
        engine,
        assembled.messages,
        &sampling,
        cancel,
        &ctx.character.name,
        on_text,
    )
    .await?;
    Ok(DetachedReply {
        reply,
        prompt_tokens,
    })
}

/// The `Context` a Session with this history would have (no id, nothing stored), and the newest
/// user message, which the turn sends. The caller's `system` messages become pinned notes.
fn context(c: Conversation) -> Result<(Context, String), TurnError> {
    let mut messages = c.messages;
    let newest = match messages.pop() {
        Some(m) if m.role == ChatRole::User && !m.content.trim().is_empty() => m.content,
        _ => return Err(TurnError::EmptyMessage),
    };
    let mut memories = c.memories;
    let mut history = Vec::new();
    for (i, m) in messages.into_iter().enumerate() {
        let id = i as i64 + 1;
        let role = match m.role {
            ChatRole::System => {
                memories.push(note(&c.character.id, id, m.content));
                continue;
            }
            ChatRole::User => Role::User,
            ChatRole::Assistant => Role::Character,
        };
        history.push(Message {
            id,
            session_id: 0,
            role,
            content: m.content,
            status: MessageStatus::Complete,
            created_at: 0,
            swipes: Vec::new(),
            swipe: 0,
            speaker: None,
        });
    }
    let session = store::Session {
        id: 0,
        character_id: c.character.id.clone(),
        scenario: c.scenario,
        title: String::new(),
        created_at: 0,
        updated_at: 0,
        n_messages: history.len() as i64,
        preview: String::new(),
        persona_id: None,
        members: Vec::new(),
    };
    let ctx = Context {
        session,
        character: c.character,
        user: c.user,
        messages: history,
        memories,
        cast: None,
    };
    Ok((ctx, newest))
}

/// A caller's instruction, kept as a pinned memory so it goes where pinned memories go.
fn note(character_id: &str, id: i64, content: String) -> store::Memory {
    store::Memory {
        id: -id,
        character_id: character_id.to_string(),
        session_id: Some(0),
        kind: MemoryKind::Pinned,
        content,
        message_id: None,
        created_at: 0,
        updated_at: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_messages_become_the_history_and_its_instructions_notes() {
        let character = crate::characters::builtin::all().remove(0);
        let messages = vec![
            ChatMessage::new(ChatRole::System, "Speak like a pirate."),
            ChatMessage::new(ChatRole::User, "Hello"),
            ChatMessage::new(ChatRole::Assistant, "Ahoy"),
            ChatMessage::new(ChatRole::User, "How are you?"),
        ];
        let (ctx, newest) = context(Conversation {
            character,
            scenario: Scenario::Interview,
            user: prompt::User::default(),
            memories: vec![],
            messages,
        })
        .unwrap();
        assert_eq!(newest, "How are you?");
        let roles: Vec<Role> = ctx.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Character]);
        assert_eq!(ctx.texts(MemoryKind::Pinned), ["Speak like a pirate."]);
        assert_eq!(ctx.session.scenario, Scenario::Interview);
        // Nothing to answer: the last message is not the user's.
        let c = ctx.character.clone();
        let none = context(Conversation {
            character: c,
            scenario: Scenario::ChitChat,
            user: prompt::User::default(),
            memories: vec![],
            messages: vec![ChatMessage::new(ChatRole::Assistant, "Hi")],
        });
        assert!(matches!(none, Err(TurnError::EmptyMessage)));
    }
}
