//! The library as the front ends read and keep it: Characters, Sessions, Messages, Memories,
//! Personas and search, each operation with the rules every front end must apply (a persona
//! needs a name, a memory or a title is not empty, text is trimmed). Most are one store call;
//! the point is that a front end needs nothing else.

use super::{now_ms, Troupe};
use crate::characters::{Character, Scenario};
use crate::conversation::assemble::{assemble, budget, CONTEXT_CAP};
use crate::conversation::context::context;
use crate::conversation::prompt::{self, PromptRecord};
use crate::conversation::{forms, suggested_questions, TurnError};
use crate::settings::Settings;
use crate::store::{
    self, CharacterSummary, Memory, MemoryKind, Message, Persona, SearchHit, Session, Undone,
};

/// Why an operation on the library was refused, or failed. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Text that must not be empty was (a memory, a title, an edited message).
    #[error("{0}")]
    Empty(&'static str),
    /// A value that is not acceptable (a persona without a name).
    #[error("{0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The editor's live preview of a Character: its profile text, the opening prompt of a new
/// Session as the model reads it, and what must be fixed.
#[derive(Debug, Clone)]
pub struct Preview {
    pub profile_text: String,
    pub prose: String,
    /// The prompt rendered with the model's template, or the messages one after another when
    /// no model is ready.
    pub prompt: String,
    pub tokens: Option<usize>,
    pub exact: bool,
    pub context_tokens: usize,
    /// Why the prompt is not rendered exactly, if it is not.
    pub note: Option<String>,
    /// (field, message) pairs.
    pub problems: Vec<(String, String)>,
}

impl Troupe {
    // ---- Characters ----------------------------------------------------------------------

    /// The gallery: every Character not in the trash, most recently chatted first.
    pub fn characters(&self) -> Result<Vec<CharacterSummary>, store::Error> {
        self.store.list_characters()
    }

    pub fn character(&self, id: &str) -> Result<Character, store::Error> {
        self.store.get_character(id)
    }

    /// One Character's gallery card.
    pub fn character_summary(&self, id: &str) -> Result<CharacterSummary, store::Error> {
        self.store
            .list_characters()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| store::Error::CharacterNotFound(id.to_string()))
    }

    pub fn trash(&self) -> Result<Vec<CharacterSummary>, store::Error> {
        self.store.list_trash()
    }

    pub fn set_favourite(&self, id: &str, favourite: bool) -> Result<(), store::Error> {
        self.store.set_favourite(id, favourite)
    }

    pub fn restore_character(&self, id: &str) -> Result<(), store::Error> {
        self.store.restore_character(id)
    }

    /// Ids of the Characters whose name or profile text contains `query`.
    pub fn search_characters(&self, query: &str) -> Result<Vec<String>, store::Error> {
        self.store.search_characters(query)
    }

    /// Questions to ask in an interview, drawn from the Character's profile.
    pub fn suggested_questions(&self, character_id: &str) -> Result<Vec<String>, store::Error> {
        Ok(suggested_questions(
            &self.store.get_character(character_id)?,
        ))
    }

    /// The editor's preview of `c` (edited, maybe unsaved) opening a Session in `scenario`.
    pub async fn preview(&self, c: &Character, scenario: Scenario) -> Preview {
        let messages = prompt::opening(c, scenario);
        let mut context = CONTEXT_CAP;
        let (rendered, note) = match self.engine.engine() {
            Ok(engine) => {
                context = engine.info().context_length.min(context);
                match engine.render_prompt(&messages).await {
                    Ok(r) => (Some(r), None),
                    Err(e) => (None, Some(e.to_string())),
                }
            }
            Err(e) => (None, Some(e.to_string())),
        };
        let mut problems: Vec<(String, String)> = c
            .problems()
            .into_iter()
            .map(|p| (p.field, p.message))
            .collect();
        if let Some(r) = &rendered {
            // The opening must leave room for a conversation: the reply and a few turns.
            if r.tokens + 1024 > context {
                problems.push((
                    "prompt".into(),
                    format!(
                        "The opening prompt takes {} of the model's {context} tokens, leaving too \
                         little for the conversation; shorten the profile or the example dialogue.",
                        r.tokens
                    ),
                ));
            }
        }
        let fallback = || {
            messages
                .iter()
                .map(|m| format!("[{}]\n{}", m.role.as_str(), m.content))
                .collect::<Vec<_>>()
                .join("\n\n")
        };
        Preview {
            profile_text: c.profile.text(&c.name),
            prose: c.profile.to_prose(&c.name),
            prompt: rendered
                .as_ref()
                .map(|r| r.text.clone())
                .unwrap_or_else(fallback),
            tokens: rendered.as_ref().map(|r| r.tokens),
            exact: rendered.as_ref().is_some_and(|r| r.exact),
            context_tokens: context,
            note,
            problems,
        }
    }

    /// Has the model retell `c`'s profile as a summary, paraphrase or self-introduction.
    /// Nothing is saved.
    pub async fn write_profile_form(
        &self,
        c: &Character,
        form: crate::characters::ProfileForm,
        cancel: &crate::conversation::Cancel,
    ) -> Result<String, forms::FormError> {
        let engine = self.engine.engine()?;
        forms::write(engine.as_ref(), c, form, cancel).await
    }

    // ---- Sessions ------------------------------------------------------------------------

    /// A Character's Sessions, most recent first.
    pub fn sessions(&self, character_id: &str) -> Result<Vec<Session>, store::Error> {
        self.store.list_sessions(character_id)
    }

    pub fn session(&self, id: i64) -> Result<Session, store::Error> {
        self.store.get_session(id)
    }

    pub fn rename_session(&self, session_id: i64, title: &str) -> Result<(), Error> {
        let title = title.trim();
        if title.is_empty() {
            return Err(Error::Empty("A conversation needs a title."));
        }
        Ok(self.store.rename_session(session_id, title)?)
    }

    /// Moves a Session to the trash; `restore_session` undoes it.
    pub fn trash_session(&self, session_id: i64) -> Result<(), store::Error> {
        self.store.trash_session(session_id, now_ms())
    }

    pub fn restore_session(&self, session_id: i64) -> Result<(), store::Error> {
        self.store.restore_session(session_id)
    }

    /// A new Session with the messages of this one up to `message_id`.
    pub fn branch_session(&self, message_id: i64) -> Result<Session, store::Error> {
        self.store.branch_session(message_id, now_ms())
    }

    /// Who the user is in `session_id` from now on.
    pub fn set_session_persona(
        &self,
        session_id: i64,
        persona_id: i64,
    ) -> Result<(), store::Error> {
        self.store.set_session_persona(session_id, persona_id)
    }

    // ---- Messages ------------------------------------------------------------------------

    pub fn messages(&self, session_id: i64) -> Result<Vec<Message>, store::Error> {
        self.store.list_messages(session_id)
    }

    /// The newest `limit` messages of a Session (what opening it shows first).
    pub fn recent_messages(
        &self,
        session_id: i64,
        limit: usize,
    ) -> Result<Vec<Message>, store::Error> {
        self.store.recent_messages(session_id, limit)
    }

    /// Edits a message's text; refused while a reply is being written into it.
    pub fn edit_message(&self, message_id: i64, content: &str) -> Result<(), Error> {
        if content.trim().is_empty() {
            return Err(Error::Empty("The message is empty; delete it instead."));
        }
        Ok(self.store.edit_message(message_id, content.trim())?)
    }

    /// Deletes a message; refused while a reply is being written into it. Returns the id
    /// `undo_delete` takes.
    pub fn delete_message(&self, message_id: i64) -> Result<i64, store::Error> {
        self.store.delete_message(message_id, now_ms())
    }

    /// Brings back a deleted Message, Memory or Persona (`delete_*` returned `undo_id`).
    pub fn undo_delete(&self, undo_id: i64) -> Result<Undone, store::Error> {
        self.store.undo_delete(undo_id)
    }

    /// Shows another version (swipe) of a reply written more than once.
    pub fn select_swipe(&self, message_id: i64, index: usize) -> Result<Message, store::Error> {
        self.store.select_swipe(message_id, index)
    }

    /// Messages matching `query` (all words; `word*` a prefix), newest first.
    pub fn search_messages(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<SearchHit>, store::Error> {
        self.store.search_messages(query, limit)
    }

    /// What the reply `message_id` was given; `None` for replies from before prompts were kept.
    pub fn prompt_record(&self, message_id: i64) -> Result<Option<PromptRecord>, store::Error> {
        Ok(self
            .store
            .prompt_record(message_id)?
            .and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// The prompt the next reply of `session_id` would get for `message` (none: up to the
    /// history), with the engine that is running.
    pub async fn next_prompt(
        &self,
        settings: &Settings,
        session_id: i64,
        message: Option<&str>,
    ) -> Result<PromptRecord, TurnError> {
        if self.store.group(session_id)?.is_some() {
            // In a group every member's prompt differs: the host's stands for it.
            let host = self.store.get_session(session_id)?.character_id;
            return self
                .group_prompt(settings, session_id, &host, message)
                .await;
        }
        let engine = self.engine.engine()?;
        let sampling = super::sampling_for_session(&self.store, settings, session_id)?;
        let ctx = context(&self.store, session_id)?;
        let budget = budget(engine.as_ref(), &sampling);
        Ok(assemble(engine.as_ref(), &ctx, message, budget)
            .await?
            .record)
    }

    // ---- Personas ------------------------------------------------------------------------

    pub fn personas(&self) -> Result<Vec<Persona>, store::Error> {
        self.store.list_personas()
    }

    /// Saves a persona (new when its id is 0); it needs a name.
    pub fn save_persona(&self, persona: &Persona) -> Result<Persona, Error> {
        if persona.name.trim().is_empty() {
            return Err(Error::Invalid("A persona needs a name."));
        }
        let persona = Persona {
            name: persona.name.trim().to_string(),
            ..persona.clone()
        };
        Ok(self.store.save_persona(&persona, now_ms())?)
    }

    /// Deletes a persona (never the default); returns the id `undo_delete` takes.
    pub fn delete_persona(&self, id: i64) -> Result<i64, store::Error> {
        self.store.delete_persona(id, now_ms())
    }

    // ---- Memories ------------------------------------------------------------------------

    /// What a Session's prompt remembers: the summary, pinned memories and facts.
    pub fn memories(&self, session_id: i64) -> Result<Vec<Memory>, store::Error> {
        self.store.memories_for_session(session_id)
    }

    /// Pins a memory: `content`, or when it is empty the text of `message_id`; for this
    /// Session, or for every Session with its Character (`for_character`).
    pub fn pin_memory(
        &self,
        session_id: i64,
        content: &str,
        message_id: Option<i64>,
        for_character: bool,
    ) -> Result<Memory, Error> {
        let s = self.store.get_session(session_id)?;
        let content = match (content.trim(), message_id) {
            ("", Some(id)) => self
                .store
                .get_message(id)?
                .map(|m| m.content)
                .unwrap_or_default(),
            (text, _) => text.to_string(),
        };
        if content.trim().is_empty() {
            return Err(Error::Empty("An empty memory: nothing was pinned."));
        }
        Ok(self.store.add_memory(
            &s.character_id,
            (!for_character).then_some(session_id),
            MemoryKind::Pinned,
            content.trim(),
            message_id,
            now_ms(),
        )?)
    }

    pub fn update_memory(&self, id: i64, content: &str) -> Result<(), store::Error> {
        self.store.update_memory(id, content.trim(), now_ms())
    }

    /// Deletes a memory; returns the id `undo_delete` takes.
    pub fn delete_memory(&self, id: i64) -> Result<i64, store::Error> {
        self.store.delete_memory(id, now_ms())
    }
}
