//! Undo instead of loss: deleting a Message, a Memory or a Persona moves its row, as JSON, into
//! the `deleted` table in the same transaction, and `undo_delete` puts it back. Characters and
//! Sessions have their own trash (`deleted_at`); this is the same promise for the small things,
//! without a `deleted_at` test in every query that reads them.
//!
//! A row comes back under its old id when that id is still free (so a Message returns to its
//! place in the Session), else under a new one. What it belonged to must still exist: a
//! Message whose Session was purged cannot come back, and says so.

use rusqlite::{params, OptionalExtension, Transaction};

use super::{Error, Result, Store};

/// What an undo brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undone {
    Message { id: i64, session_id: i64 },
    Memory { id: i64 },
    Persona { id: i64 },
}

/// A message row with its prompt record, thumb and arena turns, as JSON (`json_object` keeps
/// SQLite's own types).
const MESSAGE_ROW: &str =
    "SELECT json_object('id', m.id, 'session_id', m.session_id, 'role', m.role,
        'content', m.content, 'status', m.status, 'created_at', m.created_at, 'swipes', m.swipes,
        'speaker_id', m.speaker_id,
        'prompt', p.record, 'thumb', t.value, 'thumb_model', t.model, 'thumb_at', t.created_at,
        'arena', (SELECT json_group_array(json_object('id', a.id, 'a', a.a, 'b', a.b,
            'a_record', a.a_record, 'b_record', a.b_record, 'a_failed', a.a_failed,
            'b_failed', a.b_failed, 'choice', a.choice, 'created_at', a.created_at,
            'picked_at', a.picked_at)) FROM arena_turns a WHERE a.message_id = m.id))
    FROM messages m LEFT JOIN prompts p ON p.message_id = m.id
    LEFT JOIN thumbs t ON t.message_id = m.id
    WHERE m.id = ?1 AND m.status != 'streaming'";

const MEMORY_ROW: &str = "SELECT json_object('id', id, 'character_id', character_id,
        'session_id', session_id, 'kind', kind, 'content', content, 'message_id', message_id,
        'created_at', created_at, 'updated_at', updated_at)
    FROM memories WHERE id = ?1";

const PERSONA_ROW: &str = "SELECT json_object('id', id, 'name', name, 'description', description,
        'created_at', created_at,
        'sessions', (SELECT json_group_array(s.id) FROM sessions s WHERE s.persona_id = ?1))
    FROM personas WHERE id = ?1 AND is_default = 0";

impl Store {
    /// Deletes a message (not one being streamed); returns the id `undo_delete` takes.
    pub fn delete_message(&self, message_id: i64, now: i64) -> Result<i64> {
        self.delete_into_undo("message", MESSAGE_ROW, "messages", message_id, now)?
            .ok_or(Error::MessageBusy(message_id))
    }

    /// Deletes a memory; returns the id `undo_delete` takes.
    pub fn delete_memory(&self, id: i64, now: i64) -> Result<i64> {
        self.delete_into_undo("memory", MEMORY_ROW, "memories", id, now)?
            .ok_or(Error::MemoryNotFound(id))
    }

    /// Deletes a persona (never the default; its Sessions fall back to it); returns the id
    /// `undo_delete` takes.
    pub fn delete_persona(&self, id: i64, now: i64) -> Result<i64> {
        match self.delete_into_undo("persona", PERSONA_ROW, "personas", id, now)? {
            Some(undo) => Ok(undo),
            None if self.list_personas()?.iter().any(|p| p.id == id) => Err(Error::DefaultPersona),
            None => Err(Error::PersonaNotFound(id)),
        }
    }

    /// Puts a deleted row back (see the module doc).
    pub fn undo_delete(&self, undo_id: i64) -> Result<Undone> {
        let mut conn = self.conn();
        let tx = Store::write_tx(&mut conn)?;
        let (kind, row): (String, String) = tx
            .query_row(
                "SELECT kind, row FROM deleted WHERE id = ?1",
                [undo_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(Error::NothingToUndo)?;
        let undone = match kind.as_str() {
            "message" => restore_message(&tx, &row)?,
            "memory" => restore_memory(&tx, &row)?,
            _ => restore_persona(&tx, &row)?,
        };
        tx.execute("DELETE FROM deleted WHERE id = ?1", [undo_id])?;
        tx.commit()?;
        Ok(undone)
    }

    /// Forgets deletes older than `before` for good (the trash's 30 days); returns how many.
    pub fn purge_deleted(&self, before: i64) -> Result<usize> {
        Ok(self
            .conn()
            .execute("DELETE FROM deleted WHERE deleted_at < ?1", [before])?)
    }

    /// Whether the trash holds anything that went there before `before` (a Character, a
    /// Session, or a deleted Message, Memory or Persona): what a purge would remove for good.
    pub fn anything_expired(&self, before: i64) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM characters WHERE deleted_at < ?1)
                 OR EXISTS (SELECT 1 FROM sessions WHERE deleted_at < ?1)
                 OR EXISTS (SELECT 1 FROM deleted WHERE deleted_at < ?1)",
            [before],
            |r| r.get(0),
        )?)
    }

    fn delete_into_undo(
        &self,
        kind: &str,
        select_row: &str,
        table: &str,
        id: i64,
        now: i64,
    ) -> Result<Option<i64>> {
        let mut conn = self.conn();
        let tx = Store::write_tx(&mut conn)?;
        let Some(row): Option<String> = tx.query_row(select_row, [id], |r| r.get(0)).optional()?
        else {
            return Ok(None);
        };
        tx.execute(
            "INSERT INTO deleted (kind, row, deleted_at) VALUES (?1, ?2, ?3)",
            params![kind, row, now],
        )?;
        let undo_id = tx.last_insert_rowid();
        // `table` is one of three constants above, never input.
        tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), [id])?;
        tx.commit()?;
        Ok(Some(undo_id))
    }
}

/// The old id when it is free, else NULL (SQLite picks a new one).
fn free_id(tx: &Transaction<'_>, table: &str, id: i64) -> Result<Option<i64>> {
    let taken: bool = tx.query_row(
        &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?1)"),
        [id],
        |r| r.get(0),
    )?;
    Ok((!taken).then_some(id))
}

fn field_i64(row: &str, field: &str) -> Result<i64> {
    let v: serde_json::Value = serde_json::from_str(row).map_err(|e| Error::Corrupt {
        id: "deleted".into(),
        source: e,
    })?;
    v.get(field)
        .and_then(|f| f.as_i64())
        .ok_or(Error::NothingToUndo)
}

fn restore_message(tx: &Transaction<'_>, row: &str) -> Result<Undone> {
    let session_id = field_i64(row, "session_id")?;
    let alive: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ?1)",
        [session_id],
        |r| r.get(0),
    )?;
    if !alive {
        return Err(Error::SessionNotFound(session_id));
    }
    let id = free_id(tx, "messages", field_i64(row, "id")?)?;
    tx.execute(
        "INSERT INTO messages (id, session_id, role, content, status, created_at, swipes, speaker_id)
         SELECT ?2, j->>'session_id', j->>'role', j->>'content', j->>'status', j->>'created_at',
                j->>'swipes', j->>'speaker_id'
         FROM (SELECT ?1 AS j)",
        params![row, id],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO prompts (message_id, record) SELECT ?2, ?1->>'prompt' WHERE ?1->>'prompt' IS NOT NULL",
        params![row, id],
    )?;
    tx.execute(
        "INSERT INTO thumbs (message_id, value, model, created_at)
         SELECT ?2, ?1->>'thumb', ?1->>'thumb_model', ?1->>'thumb_at' WHERE ?1->>'thumb' IS NOT NULL",
        params![row, id],
    )?;
    tx.execute(
        "INSERT INTO arena_turns (id, session_id, message_id, a, b, a_record, b_record, a_failed,
                                  b_failed, choice, created_at, picked_at)
         SELECT CASE WHEN EXISTS (SELECT 1 FROM arena_turns WHERE id = t.value->>'id') THEN NULL
                     ELSE t.value->>'id' END,
                ?3, ?2, t.value->>'a', t.value->>'b', t.value->>'a_record', t.value->>'b_record',
                t.value->>'a_failed', t.value->>'b_failed', t.value->>'choice',
                t.value->>'created_at', t.value->>'picked_at'
         FROM json_each(coalesce(?1->'arena', '[]')) t",
        params![row, id, session_id],
    )?;
    Ok(Undone::Message { id, session_id })
}

fn restore_memory(tx: &Transaction<'_>, row: &str) -> Result<Undone> {
    let id = free_id(tx, "memories", field_i64(row, "id")?)?;
    // The Session it belonged to may be gone: the memory then comes back as the Character's.
    tx.execute(
        "INSERT INTO memories (id, character_id, session_id, kind, content, message_id,
                               created_at, updated_at)
         SELECT ?2, j->>'character_id',
                (SELECT id FROM sessions WHERE id = j->>'session_id'),
                j->>'kind', j->>'content', j->>'message_id', j->>'created_at', j->>'updated_at'
         FROM (SELECT ?1 AS j)",
        params![row, id],
    )?;
    Ok(Undone::Memory {
        id: tx.last_insert_rowid(),
    })
}

fn restore_persona(tx: &Transaction<'_>, row: &str) -> Result<Undone> {
    let id = free_id(tx, "personas", field_i64(row, "id")?)?;
    tx.execute(
        "INSERT INTO personas (id, name, description, is_default, created_at)
         SELECT ?2, j->>'name', j->>'description', 0, j->>'created_at' FROM (SELECT ?1 AS j)",
        params![row, id],
    )?;
    let id = tx.last_insert_rowid();
    // The Sessions that used it and still fall back to the default take it again.
    tx.execute(
        "UPDATE sessions SET persona_id = ?2
         WHERE persona_id IS NULL AND id IN (SELECT value FROM json_each(?1->'sessions'))",
        params![row, id],
    )?;
    Ok(Undone::Persona { id })
}
