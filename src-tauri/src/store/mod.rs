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
//! `streaming` by a process that is gone into `interrupted`, and leaves alone a reply another
//! live process is writing (`owner`).
//!
//! One connection behind a mutex: SQLite serialises writers anyway, every statement here is
//! short, and the desktop app and the CLI are the only processes sharing the file (WAL lets
//! them read while the other writes; `busy_timeout` covers write overlap).

mod arena;
mod backup;
mod characters;
mod eval_runs;
mod groups;
mod memories;
mod merge;
mod messages;
mod owner;
mod personas;
mod prompts;
mod ratings;
mod search;
mod sessions;
#[cfg(test)]
mod tests;
mod undo;

pub use arena::{ArenaResult, ArenaTurn};
pub use backup::{pending_migrations, snapshot_file, Copied, Counts, KNOWN_SCHEMA};
pub use characters::CharacterSummary;
pub use eval_runs::EvalRun;
pub use groups::{Group, Member, Strategy};
pub use memories::{Memory, MemoryKind};
pub use merge::MergeReport;
pub use messages::{Message, MessageStatus, Role};
pub use personas::Persona;
pub use ratings::{Averages, Rating, Scores};
pub use search::SearchHit;
pub use sessions::Session;
pub use undo::Undone;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// The migrations, in order. The database's `user_version` is the number applied; append only.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_sampling.sql"),
    include_str!("migrations/0003_gallery.sql"),
    include_str!("migrations/0004_memory.sql"),
    include_str!("migrations/0005_owner.sql"),
    include_str!("migrations/0006_undo.sql"),
    include_str!("migrations/0007_eval.sql"),
    include_str!("migrations/0008_ratings.sql"),
    include_str!("migrations/0009_arena.sql"),
    include_str!("migrations/0010_groups.sql"),
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
    /// The default persona cannot be deleted (a Session always has someone to be).
    #[error("the default persona cannot be deleted: make another one the default first")]
    DefaultPersona,
    /// No memory with this id.
    #[error("no memory with id {0}")]
    MemoryNotFound(i64),
    /// No message with this id (any more).
    #[error("that message is gone")]
    MessageNotFound(i64),
    /// The message does not exist or a reply is being written into it right now.
    #[error("message {0} cannot be changed now: it is gone, or a reply is being written into it")]
    MessageBusy(i64),
    /// A new Character's id is taken.
    #[error("a character with id '{0}' exists")]
    CharacterExists(String),
    /// Nothing to undo under this id (undone already, or forgotten with the trash).
    #[error("there is nothing to undo: it was undone already or the trash was emptied")]
    NothingToUndo,
    /// No session with this id.
    #[error("no session with id {0}")]
    SessionNotFound(i64),
    /// The disk is full; what was stored before is intact.
    #[error("the disk is full: free some space (nothing already saved was lost)")]
    DiskFull,
    /// The snapshot that must come before a migration could not be taken; nothing was changed.
    #[error("the database needs upgrading, but the snapshot taken first failed: {0}")]
    NoSnapshot(String),
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
        recover_streaming(&conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// A write transaction, begun IMMEDIATE: it takes the write lock at BEGIN, where the busy
    /// timeout applies. A deferred one that reads first (most here check a row exists before
    /// writing) and meanwhile loses the race to another process writing the same file (the
    /// CLI beside the window) cannot upgrade its stale read and fails at once with "database
    /// is locked".
    fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
        conn.transaction_with_behavior(TransactionBehavior::Immediate)
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
}

/// Marks `interrupted` the replies left `streaming` by a process that is gone; a reply another
/// live process is writing (the window, while this is the CLI) is left alone (see `owner`).
fn recover_streaming(conn: &Connection) -> Result<()> {
    let streaming: Vec<(i64, Option<String>)> = {
        let mut stmt = conn.prepare("SELECT id, owner FROM messages WHERE status = 'streaming'")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, writer) in streaming {
        if !writer.as_deref().is_some_and(owner::alive) {
            conn.execute(
                "UPDATE messages SET status = 'interrupted', owner = NULL WHERE id = ?1 AND status = 'streaming'",
                [id],
            )?;
        }
    }
    Ok(())
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
