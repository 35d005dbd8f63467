//! Sessions: one conversation with a Character in one Scenario, its title, persona, Sampling
//! override, branches and trash.

use rusqlite::{params, OptionalExtension};

use super::messages::{insert_message_raw, MessageStatus, Role};
use super::{Error, Result, Store};
use crate::characters::Scenario;

/// One conversation between the user and a Character, in one Scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: i64,
    pub character_id: String,
    pub scenario: Scenario,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// How many messages it holds (the greeting included).
    pub n_messages: i64,
    /// The newest message, shortened, for lists.
    pub preview: String,
    /// Who the user is in it (`None`: the default persona).
    pub persona_id: Option<i64>,
    /// A group's members (Character ids) in their order; empty for a one-Character Session.
    pub members: Vec<String>,
}

impl Store {
    /// Starts a Session with `character_id` in `scenario`; `greeting`, if any, becomes its first
    /// message. One transaction: a session never exists without its greeting.
    pub fn create_session(
        &self,
        character_id: &str,
        scenario: Scenario,
        title: &str,
        greeting: Option<&str>,
        now: i64,
    ) -> Result<Session> {
        let mut conn = self.conn();
        let tx = Store::write_tx(&mut conn)?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM characters WHERE id = ?1",
                [character_id],
                |_| Ok(true),
            )
            .optional()?
            .unwrap_or(false);
        if !exists {
            return Err(Error::CharacterNotFound(character_id.to_string()));
        }
        tx.execute(
            "INSERT INTO sessions (character_id, scenario, title, created_at, updated_at, persona_id)
             VALUES (?1, ?2, ?3, ?4, ?4, (SELECT id FROM personas WHERE is_default = 1 ORDER BY id LIMIT 1))",
            params![character_id, scenario.as_str(), title, now],
        )?;
        let id = tx.last_insert_rowid();
        if let Some(g) = greeting.filter(|g| !g.trim().is_empty()) {
            insert_message_raw(&tx, id, Role::Character, g, MessageStatus::Complete, now)?;
        }
        tx.commit()?;
        drop(conn);
        self.get_session(id)
    }

    /// One Session.
    pub fn get_session(&self, id: i64) -> Result<Session> {
        let conn = self.conn();
        let s = conn
            .query_row(&session_select("WHERE s.id = ?1"), [id], session_from_row)
            .optional()?;
        s.ok_or(Error::SessionNotFound(id))
    }

    /// Sampling JSON set on a Session and on its Character (`None` where unset).
    pub fn sampling_for_session(
        &self,
        session_id: i64,
    ) -> Result<(Option<String>, Option<String>)> {
        let conn = self.conn();
        conn.query_row(
            "SELECT s.sampling, c.sampling FROM sessions s JOIN characters c ON c.id = s.character_id
             WHERE s.id = ?1",
            [session_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or(Error::SessionNotFound(session_id))
    }

    /// The Sampling JSON set on a Character, if any.
    pub fn character_sampling(&self, character_id: &str) -> Result<Option<String>> {
        let conn = self.conn();
        conn.query_row(
            "SELECT sampling FROM characters WHERE id = ?1",
            [character_id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| Error::CharacterNotFound(character_id.to_string()))
    }

    /// Sets (or, with `None`, clears) a Character's own Sampling JSON.
    pub fn set_character_sampling(&self, character_id: &str, json: Option<&str>) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE characters SET sampling = ?2 WHERE id = ?1",
            params![character_id, json],
        )?;
        if n == 0 {
            return Err(Error::CharacterNotFound(character_id.to_string()));
        }
        Ok(())
    }

    /// Sets (or, with `None`, clears) a Session's Sampling override.
    pub fn set_session_sampling(&self, session_id: i64, json: Option<&str>) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE sessions SET sampling = ?2 WHERE id = ?1",
            params![session_id, json],
        )?;
        if n == 0 {
            return Err(Error::SessionNotFound(session_id));
        }
        Ok(())
    }

    /// A Character's Sessions, the groups it is in among them, most recently active first.
    pub fn list_sessions(&self, character_id: &str) -> Result<Vec<Session>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&session_select(
            "WHERE (s.character_id = ?1
                    OR s.id IN (SELECT session_id FROM session_members WHERE character_id = ?1))
               AND s.deleted_at IS NULL ORDER BY s.updated_at DESC, s.id DESC",
        ))?;
        let rows = stmt.query_map([character_id], session_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A new Session with the messages of `message_id`'s Session up to and including it (same
    /// Character, Scenario and persona), in one transaction. Returns it.
    pub fn branch_session(&self, message_id: i64, now: i64) -> Result<Session> {
        let mut conn = self.conn();
        let tx = Store::write_tx(&mut conn)?;
        let source: Option<i64> = tx
            .query_row(
                "SELECT session_id FROM messages WHERE id = ?1",
                [message_id],
                |r| r.get(0),
            )
            .optional()?;
        let source = source.ok_or(Error::MessageBusy(message_id))?;
        tx.execute(
            "INSERT INTO sessions (character_id, scenario, title, created_at, updated_at, persona_id, sampling)
             SELECT character_id, scenario, title || ' (branch)', ?2, ?2, persona_id, sampling
             FROM sessions WHERE id = ?1",
            params![source, now],
        )?;
        let id = tx.last_insert_rowid();
        let before: i64 = tx.query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
            r.get(0)
        })?;
        tx.execute(
            "INSERT INTO messages (session_id, role, content, status, created_at, speaker_id)
             SELECT ?1, role, content, CASE status WHEN 'streaming' THEN 'interrupted' ELSE status END, created_at, speaker_id
             FROM messages WHERE session_id = ?2 AND id <= ?3 ORDER BY id",
            params![id, source, message_id],
        )?;
        // A group's branch is a group: the same members, each present for the same messages.
        super::groups::branch_group(&tx, source, id, before)?;
        tx.commit()?;
        drop(conn);
        self.get_session(id)
    }

    /// Renames a Session.
    pub fn rename_session(&self, session_id: i64, title: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE sessions SET title = ?2 WHERE id = ?1",
            params![session_id, title],
        )?;
        if n == 0 {
            return Err(Error::SessionNotFound(session_id));
        }
        Ok(())
    }

    /// Sets who the user is in a Session.
    pub fn set_session_persona(&self, session_id: i64, persona_id: i64) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE sessions SET persona_id = ?2 WHERE id = ?1",
            params![session_id, persona_id],
        )?;
        if n == 0 {
            return Err(Error::SessionNotFound(session_id));
        }
        Ok(())
    }

    /// Moves a Session to the trash (`restore_session` undoes it); its messages stay.
    pub fn trash_session(&self, session_id: i64, now: i64) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE sessions SET deleted_at = ?2 WHERE id = ?1",
            params![session_id, now],
        )?;
        if n == 0 {
            return Err(Error::SessionNotFound(session_id));
        }
        Ok(())
    }

    pub fn restore_session(&self, session_id: i64) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE sessions SET deleted_at = NULL WHERE id = ?1",
            [session_id],
        )?;
        if n == 0 {
            return Err(Error::SessionNotFound(session_id));
        }
        Ok(())
    }

    /// Deletes for good the Sessions trashed before `before` (unix ms), with their messages.
    pub fn purge_sessions(&self, before: i64) -> Result<usize> {
        Ok(self.conn().execute(
            "DELETE FROM sessions WHERE deleted_at IS NOT NULL AND deleted_at < ?1",
            [before],
        )?)
    }
}

pub(super) fn session_select(tail: &str) -> String {
    format!(
        "SELECT s.id, s.character_id, s.scenario, s.title, s.created_at, s.updated_at,
                (SELECT count(*) FROM messages m WHERE m.session_id = s.id),
                (SELECT substr(m.content, 1, 120) FROM messages m WHERE m.session_id = s.id ORDER BY m.id DESC LIMIT 1),
                s.persona_id,
                (SELECT group_concat(character_id, char(31))
                   FROM (SELECT character_id FROM session_members WHERE session_id = s.id ORDER BY position))
         FROM sessions s {tail}"
    )
}

pub(super) fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: r.get(0)?,
        character_id: r.get(1)?,
        scenario: Scenario::parse(&r.get::<_, String>(2)?).unwrap_or(Scenario::ChitChat),
        title: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
        n_messages: r.get(6)?,
        preview: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        persona_id: r.get(8)?,
        members: r
            .get::<_, Option<String>>(9)?
            .map(|m| m.split('\u{1f}').map(String::from).collect())
            .unwrap_or_default(),
    })
}
