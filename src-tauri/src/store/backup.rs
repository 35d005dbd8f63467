//! Whole copies of the database: the SQL half of `backup` (which owns the files).
//!
//! A snapshot is `VACUUM INTO` on a connection of its own: a read transaction, so in WAL mode it
//! never blocks a writer (a reply streaming meanwhile keeps committing), and the copy is one
//! consistent moment, compacted, never a half-written file copy. A restore is SQLite's backup
//! API run into the store's own connection: the live file's pages are replaced in one go, under
//! the write lock, and every connection open on it (the window's, while the CLI restores) reads
//! the restored library next.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, MAIN_DB};

use super::{Result, Store, MIGRATIONS};

/// The schema version this build writes (the number of migrations).
pub const KNOWN_SCHEMA: i64 = MIGRATIONS.len() as i64;

/// How much a library holds, as a snapshot's manifest and the Backups list show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub characters: i64,
    pub sessions: i64,
    pub messages: i64,
    pub memories: i64,
    pub personas: i64,
}

/// What a snapshot holds, read from the copy itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub schema: i64,
    pub counts: Counts,
    /// The avatar files its Characters name.
    pub avatars: Vec<String>,
}

/// Writes a consistent copy of the database at `db` to `dest`, which must not exist, and says
/// what the copy holds. Works on a database of any schema (the one about to be migrated too).
pub fn snapshot_file(db: &Path, dest: &Path) -> Result<Copied> {
    {
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(30))?;
        let dest = dest
            .to_str()
            .ok_or_else(|| rusqlite::Error::InvalidPath(dest.to_path_buf()))?;
        conn.execute("VACUUM INTO ?1", [dest])?;
    }
    let copy = Connection::open_with_flags(dest, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(Copied {
        schema: copy.query_row("PRAGMA user_version", [], |r| r.get(0))?,
        counts: count_rows(&copy),
        avatars: avatar_names(&copy)?,
    })
}

/// The schema version of the database at `db` when it exists, holds data and is older than
/// this build (opening it will migrate it); `None` otherwise.
pub fn pending_migrations(db: &Path) -> Result<Option<i64>> {
    if !db.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok((found > 0 && found < KNOWN_SCHEMA).then_some(found))
}

/// Row counts; a table an old schema lacks counts 0.
fn count_rows(conn: &Connection) -> Counts {
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap_or(0)
    };
    Counts {
        characters: count("characters"),
        sessions: count("sessions"),
        messages: count("messages"),
        memories: count("memories"),
        personas: count("personas"),
    }
}

fn avatar_names(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT data->>'avatar' FROM characters WHERE data->>'avatar' IS NOT NULL",
    )?;
    let names = stmt.query_map([], |r| r.get(0))?;
    Ok(names.collect::<rusqlite::Result<_>>()?)
}

impl Store {
    /// How many Characters (trash included), Sessions, Messages, Memories and Personas there are.
    pub fn counts(&self) -> Counts {
        count_rows(&self.conn())
    }

    /// Replaces this database's whole content with the database at `src` (already migrated to
    /// this build's schema: see `backup::restore`).
    pub fn restore_from(&self, src: &Path) -> Result<()> {
        let mut conn = self.conn();
        conn.restore(MAIN_DB, src, None::<fn(rusqlite::backup::Progress)>)?;
        Ok(())
    }

    /// Marks `interrupted` every reply still `streaming`: a copy of the library has nobody
    /// writing into it, whoever wrote the original.
    pub fn freeze_streaming(&self) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE messages SET status = 'interrupted', owner = NULL WHERE status = 'streaming'",
            [],
        )?)
    }
}
