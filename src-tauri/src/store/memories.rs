//! Memories: the rolling summary's chunks, pinned memories and facts about the user, per
//! Session or per Character.

use rusqlite::params;

use super::{Error, Result, Store};

/// What kind of thing a Memory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    /// A chunk of the rolling summary of what fell out of the prompt's window.
    Summary,
    /// Something the user pinned (a message) or wrote, kept in every prompt.
    Pinned,
    /// Something the user said about themselves (companionship Sessions).
    Fact,
}

impl MemoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryKind::Summary => "summary",
            MemoryKind::Pinned => "pinned",
            MemoryKind::Fact => "fact",
        }
    }
    pub fn parse(s: &str) -> Option<MemoryKind> {
        [MemoryKind::Summary, MemoryKind::Pinned, MemoryKind::Fact]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One stored Memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub id: i64,
    pub character_id: String,
    /// `None`: the Character's, seen by every Session with it.
    pub session_id: Option<i64>,
    pub kind: MemoryKind,
    pub content: String,
    /// Pinned: the message pinned; summary: the last message it covers.
    pub message_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Store {
    /// The memories a Session's prompt uses: its own and its Character's, oldest first.
    pub fn memories_for_session(&self, session_id: i64) -> Result<Vec<Memory>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT m.id, m.character_id, m.session_id, m.kind, m.content, m.message_id, m.created_at, m.updated_at
             FROM memories m JOIN sessions s ON s.id = ?1
             WHERE m.session_id = ?1 OR (m.session_id IS NULL AND m.character_id = s.character_id)
             ORDER BY m.id",
        )?;
        let rows = stmt.query_map([session_id], memory_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every memory of a Character, across its Sessions, oldest first.
    pub fn memories_for_character(&self, character_id: &str) -> Result<Vec<Memory>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, character_id, session_id, kind, content, message_id, created_at, updated_at
             FROM memories WHERE character_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([character_id], memory_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds a memory to a Session (or, with `session_id` `None`, to the Character).
    pub fn add_memory(
        &self,
        character_id: &str,
        session_id: Option<i64>,
        kind: MemoryKind,
        content: &str,
        message_id: Option<i64>,
        now: i64,
    ) -> Result<Memory> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO memories (character_id, session_id, kind, content, message_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![character_id, session_id, kind.as_str(), content, message_id, now],
        )?;
        let id = conn.last_insert_rowid();
        Ok(Memory {
            id,
            character_id: character_id.to_string(),
            session_id,
            kind,
            content: content.to_string(),
            message_id,
            created_at: now,
            updated_at: now,
        })
    }

    pub fn update_memory(&self, id: i64, content: &str, now: i64) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE memories SET content = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, content, now],
        )?;
        if n == 0 {
            return Err(Error::MemoryNotFound(id));
        }
        Ok(())
    }
}

pub(super) fn memory_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Memory> {
    Ok(Memory {
        id: r.get(0)?,
        character_id: r.get(1)?,
        session_id: r.get(2)?,
        kind: MemoryKind::parse(&r.get::<_, String>(3)?).unwrap_or(MemoryKind::Pinned),
        content: r.get(4)?,
        message_id: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}
