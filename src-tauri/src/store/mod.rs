//! The store: every Character, Session and Message, in one SQLite file.
//!
//! `Store` owns the connection, its pragmas (WAL, `synchronous=NORMAL`, foreign keys, busy
//! timeout), the versioned migrations in `store/migrations/` and every SQL statement in the
//! crate. Callers get domain types and `store::Error`, never rusqlite types.
//!
//! Crash safety is a property of this module: a streamed reply is a `streaming` row whose
//! content is rewritten, in its own committed transaction, before each piece is shown to the
//! user (`append_to_message`). With WAL and `synchronous=NORMAL` a killed process loses no
//! committed transaction, so whatever was shown is on disk. `Store::open` turns rows left
//! `streaming` by a crash into `interrupted`.
//!
//! One connection behind a mutex: SQLite serialises writers anyway, every statement here is
//! short, and the desktop app and the CLI are the only processes sharing the file (WAL lets
//! them read while the other writes; `busy_timeout` covers write overlap).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use crate::characters::{Category, Character};
use crate::conversation::Scenario;

/// The migrations, in order. The database's `user_version` is the number applied; append only.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_sampling.sql"),
    include_str!("migrations/0003_gallery.sql"),
    include_str!("migrations/0004_memory.sql"),
];

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database file could not be opened or is not a database.
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    /// The database was written by a newer Troupe; we refuse to touch it rather than damage it.
    #[error("the database is from a newer Troupe (schema {found}, this build knows {known}); update Troupe")]
    TooNew { found: i64, known: i64 },
    /// A migration failed; nothing of it was applied.
    #[error("database migration {version} failed: {source}")]
    Migration {
        version: i64,
        source: rusqlite::Error,
    },
    /// No character with this id.
    #[error("no character with id '{0}'")]
    CharacterNotFound(String),
    /// No persona with this id.
    #[error("no persona with id {0}")]
    PersonaNotFound(i64),
    /// No memory with this id.
    #[error("no memory with id {0}")]
    MemoryNotFound(i64),
    /// The message does not exist or a reply is being written into it right now.
    #[error("message {0} cannot be changed now: it is gone, or a reply is being written into it")]
    MessageBusy(i64),
    /// A new Character's id is taken.
    #[error("a character with id '{0}' exists")]
    CharacterExists(String),
    /// No session with this id.
    #[error("no session with id {0}")]
    SessionNotFound(i64),
    /// The disk is full; what was stored before is intact.
    #[error("the disk is full: free some space (nothing already saved was lost)")]
    DiskFull,
    /// Any other SQLite failure.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// A stored character's JSON no longer parses.
    #[error("stored character '{id}' is damaged: {source}")]
    Corrupt {
        id: String,
        source: serde_json::Error,
    },
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => Error::DiskFull,
            _ => Error::Sqlite(e),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Character,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Character => "character",
        }
    }
    fn parse(s: &str) -> Role {
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
    fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Streaming => "streaming",
            MessageStatus::Interrupted => "interrupted",
        }
    }
    fn parse(s: &str) -> MessageStatus {
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
}

/// Copies a message's text into the version its `swipes` shows.
const SYNC_SWIPE: &str = "UPDATE messages
     SET swipes = json_set(swipes, '$.all[' || json_extract(swipes, '$.at') || ']', content)
     WHERE id = ?1 AND swipes IS NOT NULL";

/// The JSON of the `swipes` column.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Swipes {
    all: Vec<String>,
    at: usize,
}

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
}

/// Who the user is in a Session: a name the Character uses and a description it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Persona {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub is_default: bool,
}

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

/// A message found by full-text search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub message_id: i64,
    pub session_id: i64,
    pub character_id: String,
    pub character_name: String,
    pub role: Role,
    /// The text around the match, the matched words between `[` and `]`.
    pub snippet: String,
    pub created_at: i64,
}

/// What the gallery shows of a Character: enough to draw a card, not the whole profile.
#[derive(Debug, Clone, PartialEq)]
pub struct CharacterSummary {
    pub id: String,
    pub name: String,
    pub category: Category,
    pub tagline: String,
    pub avatar: Option<String>,
    /// When the user last chatted with it (unix ms), if ever.
    pub last_chat_at: Option<i64>,
    pub tags: Vec<String>,
    pub favourite: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// When it went to the trash (unix ms); `None` for a Character in the gallery.
    pub deleted_at: Option<i64>,
}

/// The database. See the module doc for its guarantees.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies pending migrations in one
    /// transaction each, and marks replies left `streaming` by a crash as `interrupted`.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(|source| Error::Open {
            path: path.display().to_string(),
            source,
        })?;
        Store::from_connection(conn, &path.display().to_string())
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory().map_err(|source| Error::Open {
            path: ":memory:".into(),
            source,
        })?;
        Store::from_connection(conn, ":memory:")
    }

    fn from_connection(mut conn: Connection, path: &str) -> Result<Store> {
        let open_err = |source| Error::Open {
            path: path.to_string(),
            source,
        };
        // journal_mode answers with a row, so it is queried rather than executed.
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;",
        )
        .map_err(open_err)?;
        migrate(&mut conn)?;
        conn.execute(
            "UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'",
            [],
        )?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back on drop), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The schema version this database is at.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// FTS5's own check that the search index matches the messages it indexes (an error when
    /// a trigger got out of step).
    pub fn check_search_index(&self) -> Result<()> {
        self.conn().execute(
            "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )?;
        Ok(())
    }

    /// `PRAGMA integrity_check`: `Ok(())` when SQLite says "ok".
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    // ---- characters -------------------------------------------------------------------

    /// Inserts a Character unless one with its id exists. Returns whether it was inserted.
    /// Built-ins are installed through this, so an update never overwrites the user's edits.
    /// A built-in the user removed for good (emptied from the trash) is not installed again.
    pub fn insert_character_if_absent(
        &self,
        c: &Character,
        builtin: bool,
        now: i64,
    ) -> Result<bool> {
        let data = serde_json::to_string(c).expect("a Character always serialises");
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO characters (id, name, category, data, builtin, created_at, updated_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6
             WHERE NOT ?5 OR NOT EXISTS (SELECT 1 FROM removed_builtins WHERE id = ?1)",
            params![c.id, c.name, c.category.as_str(), data, builtin, now],
        )?;
        Ok(n == 1)
    }

    /// The gallery's view of every Character not in the trash, most recently chatted first,
    /// then by name. Only the columns a card draws: the profiles stay in the database.
    pub fn list_characters(&self) -> Result<Vec<CharacterSummary>> {
        self.summaries(
            "WHERE c.deleted_at IS NULL ORDER BY 6 IS NULL, 6 DESC, c.name COLLATE NOCASE",
        )
    }

    /// The Characters in the trash, most recently deleted first.
    pub fn list_trash(&self) -> Result<Vec<CharacterSummary>> {
        self.summaries("WHERE c.deleted_at IS NOT NULL ORDER BY c.deleted_at DESC")
    }

    fn summaries(&self, tail: &str) -> Result<Vec<CharacterSummary>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT c.id, c.name, c.category, json_extract(c.data, '$.tagline'),
                    json_extract(c.data, '$.avatar'),
                    (SELECT max(s.updated_at) FROM sessions s WHERE s.character_id = c.id),
                    json_extract(c.data, '$.tags'), c.favourite, c.created_at, c.updated_at,
                    c.deleted_at
             FROM characters c {tail}"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(CharacterSummary {
                id: r.get(0)?,
                name: r.get(1)?,
                category: Category::parse(&r.get::<_, String>(2)?).unwrap_or(Category::Fictional),
                tagline: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                avatar: r.get(4)?,
                last_chat_at: r.get(5)?,
                tags: r
                    .get::<_, Option<String>>(6)?
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default(),
                favourite: r.get(7)?,
                created_at: r.get(8)?,
                updated_at: r.get(9)?,
                deleted_at: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Ids of the Characters (not in the trash) whose name, tagline, tags, description or any
    /// profile field contains `query`, ignoring case (ASCII). Hundreds of rows: a scan is fast.
    pub fn search_characters(&self, query: &str) -> Result<Vec<String>> {
        let pattern = format!(
            "%{}%",
            query
                .trim()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT c.id FROM characters c WHERE c.deleted_at IS NULL AND (
                 c.name LIKE ?1 ESCAPE '\\'
                 OR EXISTS (SELECT 1 FROM json_tree(c.data) t
                            WHERE t.type = 'text'
                              AND (t.path LIKE '$.profile%' OR t.path = '$.tags'
                                   OR t.fullkey IN ('$.tagline', '$.description', '$.personality', '$.setting'))
                              AND t.value LIKE ?1 ESCAPE '\\'))
             ORDER BY c.name COLLATE NOCASE",
        )?;
        let rows = stmt.query_map([pattern], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks a Character as a favourite, or not.
    pub fn set_favourite(&self, id: &str, favourite: bool) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE characters SET favourite = ?2 WHERE id = ?1",
            params![id, favourite],
        )?;
        if n == 0 {
            return Err(Error::CharacterNotFound(id.to_string()));
        }
        Ok(())
    }

    /// Moves a Character to the trash: it leaves the gallery, keeping its Sessions.
    pub fn trash_character(&self, id: &str, now: i64) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE characters SET deleted_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        if n == 0 {
            return Err(Error::CharacterNotFound(id.to_string()));
        }
        Ok(())
    }

    /// Brings a Character back from the trash, as it was.
    pub fn restore_character(&self, id: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE characters SET deleted_at = NULL WHERE id = ?1",
            [id],
        )?;
        if n == 0 {
            return Err(Error::CharacterNotFound(id.to_string()));
        }
        Ok(())
    }

    /// Deletes for good the trashed Characters deleted before `before` (unix ms; `i64::MAX`
    /// for all of them), with their Sessions and Messages, in one transaction. Returns them, so
    /// the caller can remove their avatar files. A removed built-in is remembered, so it is not
    /// installed again.
    pub fn purge_trash(&self, before: i64, now: i64) -> Result<Vec<Character>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let gone: Vec<(String, String, bool)> = {
            let mut stmt = tx.prepare(
                "SELECT id, data, builtin FROM characters WHERE deleted_at IS NOT NULL AND deleted_at < ?1",
            )?;
            let rows = stmt.query_map([before], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (id, _, builtin) in &gone {
            if *builtin {
                tx.execute(
                    "INSERT OR REPLACE INTO removed_builtins (id, removed_at) VALUES (?1, ?2)",
                    params![id, now],
                )?;
            }
            tx.execute("DELETE FROM characters WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(gone
            .into_iter()
            .filter_map(|(_, data, _)| serde_json::from_str(&data).ok())
            .collect())
    }

    /// Inserts a new, user-made Character; fails if its id is taken.
    pub fn insert_character(&self, c: &Character, now: i64) -> Result<()> {
        if !self.insert_character_if_absent(c, false, now)? {
            return Err(Error::CharacterExists(c.id.clone()));
        }
        Ok(())
    }

    /// One whole Character.
    /// Whether a Character with this id exists.
    pub fn has_character(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM characters WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Saves an edited Character (its id must exist).
    pub fn update_character(&self, c: &Character, now: i64) -> Result<()> {
        let data = serde_json::to_string(c).expect("a Character always serialises");
        let n = self.conn().execute(
            "UPDATE characters SET name = ?2, category = ?3, data = ?4, updated_at = ?5 WHERE id = ?1",
            params![c.id, c.name, c.category.as_str(), data, now],
        )?;
        if n == 0 {
            return Err(Error::CharacterNotFound(c.id.clone()));
        }
        Ok(())
    }

    pub fn get_character(&self, id: &str) -> Result<Character> {
        let data: Option<String> = self
            .conn()
            .query_row("SELECT data FROM characters WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        let data = data.ok_or_else(|| Error::CharacterNotFound(id.to_string()))?;
        serde_json::from_str(&data).map_err(|source| Error::Corrupt {
            id: id.to_string(),
            source,
        })
    }

    // ---- sessions -----------------------------------------------------------------------

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
        let tx = conn.transaction()?;
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

    /// A Character's Sessions, most recently active first.
    pub fn list_sessions(&self, character_id: &str) -> Result<Vec<Session>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&session_select(
            "WHERE s.character_id = ?1 AND s.deleted_at IS NULL ORDER BY s.updated_at DESC, s.id DESC",
        ))?;
        let rows = stmt.query_map([character_id], session_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A new Session with the messages of `message_id`'s Session up to and including it (same
    /// Character, Scenario and persona), in one transaction. Returns it.
    pub fn branch_session(&self, message_id: i64, now: i64) -> Result<Session> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
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
        tx.execute(
            "INSERT INTO messages (session_id, role, content, status, created_at)
             SELECT ?1, role, content, CASE status WHEN 'streaming' THEN 'interrupted' ELSE status END, created_at
             FROM messages WHERE session_id = ?2 AND id <= ?3 ORDER BY id",
            params![id, source, message_id],
        )?;
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

    // ---- personas -----------------------------------------------------------------------

    pub fn list_personas(&self) -> Result<Vec<Persona>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, description, is_default FROM personas ORDER BY is_default DESC, name COLLATE NOCASE",
        )?;
        let rows = stmt.query_map([], persona_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The persona of a Session (the default one when it has none).
    pub fn session_persona(&self, session_id: i64) -> Result<Persona> {
        let conn = self.conn();
        conn.query_row(
            "SELECT p.id, p.name, p.description, p.is_default FROM personas p
             WHERE p.id = coalesce((SELECT persona_id FROM sessions WHERE id = ?1),
                                   (SELECT id FROM personas WHERE is_default = 1 ORDER BY id LIMIT 1))",
            [session_id],
            persona_from_row,
        )
        .optional()?
        .ok_or(Error::SessionNotFound(session_id))
    }

    /// Adds a persona (made the default when `is_default`, or when it is the only one).
    pub fn save_persona(&self, p: &Persona, now: i64) -> Result<Persona> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if p.is_default {
            tx.execute("UPDATE personas SET is_default = 0", [])?;
        }
        let id = if p.id > 0 {
            let n = tx.execute(
                "UPDATE personas SET name = ?2, description = ?3, is_default = ?4 OR is_default WHERE id = ?1",
                params![p.id, p.name, p.description, p.is_default],
            )?;
            if n == 0 {
                return Err(Error::PersonaNotFound(p.id));
            }
            p.id
        } else {
            tx.execute(
                "INSERT INTO personas (name, description, is_default, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![p.name, p.description, p.is_default, now],
            )?;
            tx.last_insert_rowid()
        };
        tx.commit()?;
        Ok(Persona { id, ..p.clone() })
    }

    /// Deletes a persona; its Sessions fall back to the default. The default cannot go.
    pub fn delete_persona(&self, id: i64) -> Result<()> {
        self.conn().execute(
            "DELETE FROM personas WHERE id = ?1 AND is_default = 0",
            [id],
        )?;
        Ok(())
    }

    // ---- memories -----------------------------------------------------------------------

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

    pub fn delete_memory(&self, id: i64) -> Result<()> {
        self.conn()
            .execute("DELETE FROM memories WHERE id = ?1", [id])?;
        Ok(())
    }

    // ---- prompts ------------------------------------------------------------------------

    /// Keeps what a reply was given (JSON), for the prompt inspector.
    pub fn save_prompt_record(&self, message_id: i64, record: &str) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO prompts (message_id, record) VALUES (?1, ?2)",
            params![message_id, record],
        )?;
        Ok(())
    }

    pub fn prompt_record(&self, message_id: i64) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT record FROM prompts WHERE message_id = ?1",
                [message_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    // ---- search -------------------------------------------------------------------------

    /// Messages matching `query` (words, all required; a trailing `*` matches a prefix), newest
    /// first, in Sessions not in the trash. The query is taken as plain words: FTS5 syntax in
    /// it is quoted away, so any text is a valid query.
    pub fn search_messages(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        let fts = fts_query(query);
        if fts.is_empty() {
            return Ok(vec![]);
        }
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT m.id, m.session_id, s.character_id, c.name, m.role,
                    snippet(messages_fts, 0, '[', ']', '…', 12), m.created_at
             FROM messages_fts f
             JOIN messages m ON m.id = f.rowid
             JOIN sessions s ON s.id = m.session_id
             JOIN characters c ON c.id = s.character_id
             WHERE messages_fts MATCH ?1 AND s.deleted_at IS NULL AND c.deleted_at IS NULL
             ORDER BY f.rowid DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![fts, limit as i64], |r| {
            Ok(SearchHit {
                message_id: r.get(0)?,
                session_id: r.get(1)?,
                character_id: r.get(2)?,
                character_name: r.get(3)?,
                role: Role::parse(&r.get::<_, String>(4)?),
                snippet: r.get(5)?,
                created_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- messages -----------------------------------------------------------------------

    /// The newest `limit` messages of a Session, oldest first (what opening it shows).
    pub fn recent_messages(&self, session_id: i64, limit: usize) -> Result<Vec<Message>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT * FROM (SELECT id, session_id, role, content, status, created_at, swipes FROM messages
                            WHERE session_id = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![session_id, limit as i64], message_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Starts writing a reply again: its current text is kept as a swipe, and the row becomes a
    /// `streaming` one with no text. `keep_swipe` records the new version when it is done.
    pub fn begin_rewrite(&self, message_id: i64) -> Result<Message> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
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
            "UPDATE messages SET content = '', status = 'streaming', swipes = ?2 WHERE id = ?1",
            params![message_id, serde_json::to_string(&s).expect("serialises")],
        )?;
        tx.commit()?;
        drop(conn);
        self.get_message(message_id)?
            .ok_or(Error::MessageBusy(message_id))
    }

    /// Records a rewritten reply's text as its newest swipe, and shows it.
    pub fn keep_swipe(&self, message_id: i64) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
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
            "UPDATE messages SET status = 'streaming' WHERE id = ?1 AND status != 'streaming'",
            [message_id],
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
        let tx = conn.transaction()?;
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

    /// Deletes a message (not one being streamed).
    pub fn delete_message(&self, message_id: i64) -> Result<()> {
        let n = self.conn().execute(
            "DELETE FROM messages WHERE id = ?1 AND status != 'streaming'",
            [message_id],
        )?;
        if n == 0 {
            return Err(Error::MessageBusy(message_id));
        }
        Ok(())
    }

    /// Every message of a Session, oldest first.
    pub fn list_messages(&self, session_id: i64) -> Result<Vec<Message>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, session_id, role, content, status, created_at, swipes FROM messages
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
        let tx = conn.transaction()?;
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
        })
    }

    /// Appends `piece` to a streaming message, committed before it returns (see module doc).
    pub fn append_to_message(&self, message_id: i64, piece: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE messages SET content = content || ?2 WHERE id = ?1",
            params![message_id, piece],
        )?;
        Ok(())
    }

    /// Ends a streaming message: sets its final text and status.
    pub fn finish_message(
        &self,
        message_id: i64,
        content: &str,
        status: MessageStatus,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE messages SET content = ?2, status = ?3 WHERE id = ?1",
            params![message_id, content, status.as_str()],
        )?;
        Ok(())
    }

    /// One message.
    pub fn get_message(&self, message_id: i64) -> Result<Option<Message>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, session_id, role, content, status, created_at, swipes FROM messages WHERE id = ?1",
                [message_id],
                message_from_row,
            )
            .optional()?)
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > known {
        return Err(Error::TooNew { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i64 + 1;
        let tx = conn
            .transaction()
            .map_err(|source| Error::Migration { version, source })?;
        tx.execute_batch(sql)
            .and_then(|_| tx.pragma_update(None, "user_version", version))
            .and_then(|_| tx.commit())
            .map_err(|source| Error::Migration { version, source })?;
    }
    Ok(())
}

fn insert_message_raw(
    tx: &rusqlite::Transaction<'_>,
    session_id: i64,
    role: Role,
    content: &str,
    status: MessageStatus,
    now: i64,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO messages (session_id, role, content, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![session_id, role.as_str(), content, status.as_str(), now],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "UPDATE sessions SET updated_at = ?2 WHERE id = ?1",
        params![session_id, now],
    )?;
    Ok(id)
}

fn session_select(tail: &str) -> String {
    format!(
        "SELECT s.id, s.character_id, s.scenario, s.title, s.created_at, s.updated_at,
                (SELECT count(*) FROM messages m WHERE m.session_id = s.id),
                (SELECT substr(m.content, 1, 120) FROM messages m WHERE m.session_id = s.id ORDER BY m.id DESC LIMIT 1),
                s.persona_id
         FROM sessions s {tail}"
    )
}

fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
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
    })
}

fn persona_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Persona> {
    Ok(Persona {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        is_default: r.get(3)?,
    })
}

fn memory_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Memory> {
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

/// Plain words as an FTS5 query: each word quoted (so `AND`, `-`, `:` and quotes are text),
/// all required; a word ending in `*` stays a prefix search.
fn fts_query(query: &str) -> String {
    query
        .split_whitespace()
        .filter_map(|w| {
            let prefix = w.ends_with('*');
            let word: String = w
                .trim_end_matches('*')
                .chars()
                .filter(|c| *c != '"')
                .collect();
            if word.chars().all(|c| !c.is_alphanumeric()) {
                return None;
            }
            Some(if prefix {
                format!("\"{word}\"*")
            } else {
                format!("\"{word}\"")
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        session_id: r.get(1)?,
        role: Role::parse(&r.get::<_, String>(2)?),
        content: r.get(3)?,
        status: MessageStatus::parse(&r.get::<_, String>(4)?),
        created_at: r.get(5)?,
        swipes: Default::default(),
        swipe: 0,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::characters::builtin;

    fn store_with_builtins() -> Store {
        let store = Store::open_in_memory().unwrap();
        for c in builtin::all() {
            store.insert_character_if_absent(&c, true, 1).unwrap();
        }
        store
    }

    #[test]
    fn session_starts_with_the_greeting() {
        let store = store_with_builtins();
        let c = builtin::all().remove(0);
        let s = store
            .create_session(&c.id, Scenario::Interview, "t", Some("Hello there"), 10)
            .unwrap();
        let msgs = store.list_messages(s.id).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].role, Role::Character);
        assert_eq!(msgs[0].content, "Hello there");
        assert_eq!(s.scenario, Scenario::Interview);
        assert_eq!(s.n_messages, 1);
    }

    #[test]
    fn streaming_message_grows_and_finishes() {
        let store = store_with_builtins();
        let c = builtin::all().remove(0);
        let s = store
            .create_session(&c.id, Scenario::ChitChat, "t", None, 10)
            .unwrap();
        let m = store
            .insert_message(s.id, Role::Character, "", MessageStatus::Streaming, 11)
            .unwrap();
        store.append_to_message(m.id, "Hel").unwrap();
        store.append_to_message(m.id, "lo").unwrap();
        assert_eq!(store.get_message(m.id).unwrap().unwrap().content, "Hello");
        store
            .finish_message(m.id, "Hello!", MessageStatus::Complete)
            .unwrap();
        let got = store.get_message(m.id).unwrap().unwrap();
        assert_eq!(
            (got.content.as_str(), got.status),
            ("Hello!", MessageStatus::Complete)
        );
    }

    #[test]
    fn builtins_never_overwrite_user_edits() {
        let store = store_with_builtins();
        let mut c = builtin::all().remove(0);
        c.name = "Edited by the user".into();
        assert!(!store.insert_character_if_absent(&c, true, 2).unwrap());
        assert_ne!(
            store.get_character(&c.id).unwrap().name,
            "Edited by the user"
        );
    }

    #[test]
    fn unknown_ids_are_typed_errors() {
        let store = store_with_builtins();
        assert!(matches!(
            store.get_character("nobody"),
            Err(Error::CharacterNotFound(_))
        ));
        assert!(matches!(
            store.create_session("nobody", Scenario::ChitChat, "t", None, 1),
            Err(Error::CharacterNotFound(_))
        ));
        assert!(matches!(
            store.insert_message(99, Role::User, "x", MessageStatus::Complete, 1),
            Err(Error::SessionNotFound(99))
        ));
    }

    #[test]
    fn trash_keeps_sessions_until_purged_and_removed_builtins_stay_removed() {
        let store = store_with_builtins();
        let c = builtin::all().remove(0);
        let s = store
            .create_session(&c.id, Scenario::ChitChat, "t", Some("hi"), 5)
            .unwrap();
        store.trash_character(&c.id, 100).unwrap();
        assert!(store
            .list_characters()
            .unwrap()
            .iter()
            .all(|x| x.id != c.id));
        assert_eq!(store.list_trash().unwrap()[0].deleted_at, Some(100));
        assert!(store.search_characters(&c.name).unwrap().is_empty());
        // Purging what was deleted before 100 leaves it; restoring brings it back whole.
        assert!(store.purge_trash(100, 200).unwrap().is_empty());
        store.restore_character(&c.id).unwrap();
        assert!(store
            .list_characters()
            .unwrap()
            .iter()
            .any(|x| x.id == c.id));
        assert_eq!(store.list_messages(s.id).unwrap().len(), 1);

        store.trash_character(&c.id, 300).unwrap();
        let gone = store.purge_trash(i64::MAX, 400).unwrap();
        assert_eq!(gone.len(), 1);
        assert!(matches!(
            store.get_session(s.id),
            Err(Error::SessionNotFound(_))
        ));
        assert!(!store.insert_character_if_absent(&c, true, 500).unwrap());
        assert!(!store.has_character(&c.id).unwrap());
    }

    #[test]
    fn search_finds_profile_text_but_not_field_names() {
        let store = store_with_builtins();
        let ada = store.get_character("ada-lovelace").unwrap();
        let word = ada
            .profile
            .attributes
            .achievements
            .split_whitespace()
            .find(|w| w.len() > 7)
            .unwrap()
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_uppercase();
        assert!(store.search_characters(&word).unwrap().contains(&ada.id));
        assert!(store
            .search_characters("interaction_patterns")
            .unwrap()
            .is_empty());
        assert!(store.search_characters("100%_").unwrap().is_empty());
        assert_eq!(store.search_characters("ada").unwrap()[0], "ada-lovelace");
    }

    #[test]
    fn search_follows_every_change_and_takes_any_text() {
        let store = store_with_builtins();
        let c = builtin::all().remove(0);
        let s = store
            .create_session(
                &c.id,
                Scenario::ChitChat,
                "t",
                Some("Welcome to the orchard"),
                1,
            )
            .unwrap();
        let found = |q: &str| -> Vec<i64> {
            store
                .search_messages(q, 10)
                .unwrap()
                .into_iter()
                .map(|h| h.message_id)
                .collect()
        };
        let greeting = store.list_messages(s.id).unwrap()[0].id;
        assert_eq!(found("orchard"), [greeting]);
        // A streamed reply is found once it is finished, by its final text.
        let r = store
            .insert_message(s.id, Role::Character, "", MessageStatus::Streaming, 2)
            .unwrap();
        store.append_to_message(r.id, "The pears are ").unwrap();
        assert!(found("pears").is_empty());
        store
            .finish_message(r.id, "The pears are ripe.", MessageStatus::Complete)
            .unwrap();
        assert_eq!(found("pears ripe"), [r.id]);
        assert_eq!(found("pea*"), [r.id]);
        store.edit_message(r.id, "The plums are ripe.").unwrap();
        assert!(found("pears").is_empty());
        assert_eq!(found("PLUMS"), [r.id]);
        // FTS syntax is text here: none of these is an error.
        for q in ["\"", "AND", "plums -ripe", "a:b", "(", "*", "NEAR(x y)", ""] {
            store.search_messages(q, 10).unwrap();
        }
        let hit = &store.search_messages("plums", 10).unwrap()[0];
        assert_eq!(hit.snippet, "The [plums] are ripe.");
        assert_eq!(hit.character_id, c.id);
        store.delete_message(r.id).unwrap();
        assert!(found("plums").is_empty());
        // A trashed Session's messages are not found; restored, they are; purged, they are gone
        // from the index too.
        store.trash_session(s.id, 5).unwrap();
        assert!(found("orchard").is_empty());
        assert_eq!(
            store.purge_sessions(5).unwrap(),
            0,
            "only sessions trashed before 5"
        );
        store.restore_session(s.id).unwrap();
        assert_eq!(found("orchard"), [greeting]);
        // A streaming row cannot be edited or deleted under the writer.
        let r = store
            .insert_message(s.id, Role::Character, "x", MessageStatus::Streaming, 6)
            .unwrap();
        assert!(matches!(
            store.edit_message(r.id, "y"),
            Err(Error::MessageBusy(_))
        ));
        assert!(matches!(
            store.delete_message(r.id),
            Err(Error::MessageBusy(_))
        ));
        // Through all of that, the index stayed in step with the messages.
        store
            .finish_message(r.id, "x done", MessageStatus::Complete)
            .unwrap();
        store.check_search_index().unwrap();
    }

    #[test]
    fn a_branch_copies_the_messages_up_to_the_one_chosen() {
        let store = store_with_builtins();
        let c = builtin::all().remove(0);
        let s = store
            .create_session(&c.id, Scenario::Interview, "Talk", Some("Hello"), 1)
            .unwrap();
        let a = store
            .insert_message(s.id, Role::User, "one", MessageStatus::Complete, 2)
            .unwrap();
        store
            .insert_message(s.id, Role::Character, "two", MessageStatus::Complete, 3)
            .unwrap();
        let greeting = store.list_messages(s.id).unwrap()[0].id;
        let b = store.branch_session(a.id, 10).unwrap();
        assert_eq!(
            (b.scenario, b.title.as_str(), b.n_messages),
            (Scenario::Interview, "Talk (branch)", 2)
        );
        let g = store.branch_session(greeting, 11).unwrap();
        assert_eq!(store.list_messages(g.id).unwrap()[0].content, "Hello");
        assert_eq!(
            store.list_messages(s.id).unwrap().len(),
            3,
            "the original is untouched"
        );
        assert_eq!(
            store
                .recent_messages(s.id, 2)
                .unwrap()
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>(),
            ["one", "two"]
        );
    }

    #[test]
    fn personas_default_and_memories_reach_their_sessions() {
        let store = store_with_builtins();
        let c = builtin::all().remove(0);
        let s = store
            .create_session(&c.id, Scenario::Companionship, "t", None, 1)
            .unwrap();
        assert_eq!(store.session_persona(s.id).unwrap().name, "User");
        let sam = store
            .save_persona(
                &Persona {
                    id: 0,
                    name: "Sam".into(),
                    description: "A nurse.".into(),
                    is_default: true,
                },
                2,
            )
            .unwrap();
        let s2 = store
            .create_session(&c.id, Scenario::Companionship, "t", None, 3)
            .unwrap();
        assert_eq!(store.session_persona(s2.id).unwrap().name, "Sam");
        assert_eq!(store.session_persona(s.id).unwrap().name, "User");
        store.delete_persona(sam.id).unwrap();
        assert_eq!(
            store.list_personas().unwrap().len(),
            2,
            "the default cannot be deleted"
        );
        store
            .add_memory(
                &c.id,
                Some(s.id),
                MemoryKind::Fact,
                "I have a dog.",
                None,
                4,
            )
            .unwrap();
        store
            .add_memory(&c.id, None, MemoryKind::Pinned, "Call me Sam.", None, 5)
            .unwrap();
        let kinds = |sid| -> Vec<&'static str> {
            store
                .memories_for_session(sid)
                .unwrap()
                .iter()
                .map(|m| m.kind.as_str())
                .collect()
        };
        assert_eq!(kinds(s.id), ["fact", "pinned"]);
        assert_eq!(
            kinds(s2.id),
            ["pinned"],
            "the Character's memory reaches every Session"
        );
    }

    #[test]
    fn gallery_lists_recently_chatted_first() {
        let store = store_with_builtins();
        let all = builtin::all();
        let last = all.last().unwrap();
        store
            .create_session(&last.id, Scenario::ChitChat, "t", Some("hi"), 500)
            .unwrap();
        let list = store.list_characters().unwrap();
        assert_eq!(list.len(), all.len());
        assert_eq!(list[0].id, last.id);
        assert_eq!(list[0].last_chat_at, Some(500));
    }
}
