//! Messages and their swipes: a Session's lines, the reply being streamed into its row, and
//! every version of a reply written again.
//!
//! Crash safety lives here: `append_to_message` commits each piece of a streamed reply before
//! the caller shows it, and a reply row is `streaming` only while a process writes it.

use rusqlite::{params, OptionalExtension};

use super::{owner, Error, Result, Store};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Character,
}

impl Role {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Character => "character",
        }
    }
    pub(super) fn parse(s: &str) -> Role {
        if s == "user" {
            Role::User
        } else {
            Role::Character
        }
    }
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    /// Written in full.
    Complete,
    /// A reply being generated right now.
    Streaming,
    /// A reply that stopped early: the user pressed Stop, the engine failed, or the app died.
    Interrupted,
}

impl MessageStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Streaming => "streaming",
            MessageStatus::Interrupted => "interrupted",
        }
    }
    pub(super) fn parse(s: &str) -> MessageStatus {
        match s {
            "streaming" => MessageStatus::Streaming,
            "interrupted" => MessageStatus::Interrupted,
            _ => MessageStatus::Complete,
        }
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: i64,
    pub session_id: i64,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub created_at: i64,
    /// Every version of a reply written again (empty when written once); `content` is
    /// `swipes[swipe]`.
    pub swipes: Vec<String>,
    pub swipe: usize,
    /// In a group: the member (a Character id) who wrote this reply.
    pub speaker: Option<String>,
}

/// Copies a message's text into the version its `swipes` shows.
pub(super) const SYNC_SWIPE: &str = "UPDATE messages
     SET swipes = json_set(swipes, '$.all[' || json_extract(swipes, '$.at') || ']', content)
     WHERE id = ?1 AND swipes IS NOT NULL";

/// The JSON of the `swipes` column.
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub(super) struct Swipes {
    all: Vec<String>,
    at: usize,
}

impl Store {
    /// The newest `limit` messages of a Session, oldest first (what opening it shows).
    pub fn recent_messages(&self, session_id: i64, limit: usize) -> Result<Vec<Message>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT * FROM (SELECT id, session_id, role, content, status, created_at, swipes, speaker_id FROM messages
                            WHERE session_id = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![session_id, limit as i64], message_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Starts writing a reply again: its current text is kept as a swipe, and the row becomes a
    /// `streaming` one with no text. `keep_swipe` records the new version when it is done.
    pub fn begin_rewrite(&self, message_id: i64) -> Result<Message> {
        let mut conn = self.conn();
        let tx = Store::write_tx(&mut conn)?;
        let row: Option<(String, String, Option<String>)> = tx
            .query_row(
                "SELECT content, status, swipes FROM messages WHERE id = ?1",
                [message_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((content, status, swipes)) = row.filter(|r| r.1 != "streaming") else {
            return Err(Error::MessageBusy(message_id));
        };
        let mut s: Swipes = swipes
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        if s.all.is_empty() {
            s.all.push(content);
        }
        let _ = status;
        tx.execute(
            "UPDATE messages SET content = '', status = 'streaming', swipes = ?2, owner = ?3 WHERE id = ?1",
            params![message_id, serde_json::to_string(&s).expect("serialises"), owner::me()],
        )?;
        tx.commit()?;
        drop(conn);
        self.get_message(message_id)?
            .ok_or(Error::MessageBusy(message_id))
    }

    /// Records a rewritten reply's text as its newest swipe, and shows it.
    pub fn keep_swipe(&self, message_id: i64) -> Result<()> {
        let mut conn = self.conn();
        let tx = Store::write_tx(&mut conn)?;
        let row: Option<(String, Option<String>)> = tx
            .query_row(
                "SELECT content, swipes FROM messages WHERE id = ?1",
                [message_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((content, Some(json))) = row {
            let mut s: Swipes = serde_json::from_str(&json).unwrap_or_default();
            s.all.push(content);
            s.at = s.all.len() - 1;
            tx.execute(
                "UPDATE messages SET swipes = ?2 WHERE id = ?1",
                params![message_id, serde_json::to_string(&s).expect("serialises")],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Shows another version of a reply written more than once.
    pub fn select_swipe(&self, message_id: i64, index: usize) -> Result<Message> {
        let m = self
            .get_message(message_id)?
            .filter(|m| m.status != MessageStatus::Streaming)
            .ok_or(Error::MessageBusy(message_id))?;
        let Some(text) = m.swipes.get(index) else {
            return Ok(m);
        };
        let s = Swipes {
            all: m.swipes.clone(),
            at: index,
        };
        self.conn().execute(
            "UPDATE messages SET content = ?2, swipes = ?3 WHERE id = ?1",
            params![
                message_id,
                text,
                serde_json::to_string(&s).expect("serialises")
            ],
        )?;
        self.get_message(message_id)?
            .ok_or(Error::MessageBusy(message_id))
    }

    /// After a continuation: the version shown gets the longer text (a reply written more than
    /// once keeps each version whole).
    pub fn sync_swipe(&self, message_id: i64) -> Result<()> {
        self.conn().execute(SYNC_SWIPE, [message_id])?;
        Ok(())
    }

    /// Marks a reply `streaming` again, keeping its text, for a continuation.
    pub fn begin_continue(&self, message_id: i64) -> Result<Message> {
        let n = self.conn().execute(
            "UPDATE messages SET status = 'streaming', owner = ?2 WHERE id = ?1 AND status != 'streaming'",
            params![message_id, owner::me()],
        )?;
        if n == 0 {
            return Err(Error::MessageBusy(message_id));
        }
        self.get_message(message_id)?
            .ok_or(Error::MessageBusy(message_id))
    }

    /// Appends many messages to a Session in one transaction (imports and benchmarks).
    pub fn insert_messages_bulk(
        &self,
        session_id: i64,
        rows: &[(Role, String)],
        status: MessageStatus,
        now: i64,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = Store::write_tx(&mut conn)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO messages (session_id, role, content, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (role, content) in rows {
                stmt.execute(params![
                    session_id,
                    role.as_str(),
                    content,
                    status.as_str(),
                    now
                ])?;
            }
        }
        tx.execute(
            "UPDATE sessions SET updated_at = ?2 WHERE id = ?1",
            params![session_id, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Rewrites a message's text (an edit by the user).
    pub fn edit_message(&self, message_id: i64, content: &str) -> Result<()> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE messages SET content = ?2 WHERE id = ?1 AND status != 'streaming'",
            params![message_id, content],
        )?;
        if n == 0 {
            return Err(Error::MessageBusy(message_id));
        }
        // The version shown of a reply written more than once is the one edited.
        conn.execute(SYNC_SWIPE, [message_id])?;
        Ok(())
    }

    /// Every message of a Session, oldest first.
    pub fn list_messages(&self, session_id: i64) -> Result<Vec<Message>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, session_id, role, content, status, created_at, swipes, speaker_id FROM messages
             WHERE session_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([session_id], message_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Appends a message to a Session and touches the Session's activity time.
    pub fn insert_message(
        &self,
        session_id: i64,
        role: Role,
        content: &str,
        status: MessageStatus,
        now: i64,
    ) -> Result<Message> {
        let mut conn = self.conn();
        let tx = Store::write_tx(&mut conn)?;
        let exists: bool = tx
            .query_row("SELECT 1 FROM sessions WHERE id = ?1", [session_id], |_| {
                Ok(true)
            })
            .optional()?
            .unwrap_or(false);
        if !exists {
            return Err(Error::SessionNotFound(session_id));
        }
        let id = insert_message_raw(&tx, session_id, role, content, status, now)?;
        tx.commit()?;
        Ok(Message {
            id,
            session_id,
            role,
            content: content.to_string(),
            status,
            created_at: now,
            swipes: vec![],
            swipe: 0,
            speaker: None,
        })
    }

    /// Appends `piece` to a streaming message, committed before it returns (see module doc).
    /// Only a row still `streaming` changes: one a user edited after another process marked it
    /// interrupted is theirs.
    pub fn append_to_message(&self, message_id: i64, piece: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE messages SET content = content || ?2 WHERE id = ?1 AND status = 'streaming'",
            params![message_id, piece],
        )?;
        Ok(())
    }

    /// Ends a streaming message: sets its final text and status, and forgets its writer (a row
    /// no longer `streaming` is left as it is).
    pub fn finish_message(
        &self,
        message_id: i64,
        content: &str,
        status: MessageStatus,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE messages SET content = ?2, status = ?3, owner = NULL
             WHERE id = ?1 AND status = 'streaming'",
            params![message_id, content, status.as_str()],
        )?;
        Ok(())
    }

    /// One message.
    pub fn get_message(&self, message_id: i64) -> Result<Option<Message>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, session_id, role, content, status, created_at, swipes, speaker_id FROM messages WHERE id = ?1",
                [message_id],
                message_from_row,
            )
            .optional()?)
    }
}

pub(super) fn insert_message_raw(
    tx: &rusqlite::Transaction<'_>,
    session_id: i64,
    role: Role,
    content: &str,
    status: MessageStatus,
    now: i64,
) -> Result<i64> {
    let writer = (status == MessageStatus::Streaming).then(owner::me);
    tx.execute(
        "INSERT INTO messages (session_id, role, content, status, created_at, owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![session_id, role.as_str(), content, status.as_str(), now, writer],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "UPDATE sessions SET updated_at = ?2 WHERE id = ?1",
        params![session_id, now],
    )?;
    Ok(id)
}

pub(super) fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        session_id: r.get(1)?,
        role: Role::parse(&r.get::<_, String>(2)?),
        content: r.get(3)?,
        status: MessageStatus::parse(&r.get::<_, String>(4)?),
        created_at: r.get(5)?,
        swipes: Default::default(),
        swipe: 0,
        speaker: r.get(7)?,
    })
    .map(|mut m| {
        if let Some(s) = r
            .get::<_, Option<String>>(6)
            .ok()
            .flatten()
            .and_then(|j| serde_json::from_str::<Swipes>(&j).ok())
        {
            m.swipes = s.all;
            m.swipe = s.at;
        }
        m
    })
}
