//! Arena turns: a reply written by two contenders, kept as the two versions of one message,
//! and which the person picked. What a contender is and how results add up is `app::arena`'s.

use rusqlite::{params, OptionalExtension};

use super::{Result, Store};

/// One compared turn.
#[derive(Debug, Clone, PartialEq)]
pub struct ArenaTurn {
    pub id: i64,
    pub session_id: i64,
    /// The reply: version 0 is A, version 1 is B.
    pub message_id: i64,
    pub a: String,
    pub b: String,
    pub a_record: Option<String>,
    pub b_record: Option<String>,
    pub a_failed: Option<String>,
    pub b_failed: Option<String>,
    /// "a", "b", "tie" or "bad"; `None` until picked.
    pub choice: Option<String>,
    pub created_at: i64,
}

/// A picked turn with what the results are split by.
#[derive(Debug, Clone, PartialEq)]
pub struct ArenaResult {
    pub a: String,
    pub b: String,
    pub choice: String,
    /// "celebrity", "daily_life" or "fictional".
    pub category: String,
    /// "chit_chat", "interview" or "companionship".
    pub scenario: String,
}

const COLUMNS: &str = "id, session_id, message_id, a, b, a_record, b_record, a_failed, b_failed, \
                       choice, created_at";

fn turn(r: &rusqlite::Row<'_>) -> rusqlite::Result<ArenaTurn> {
    Ok(ArenaTurn {
        id: r.get(0)?,
        session_id: r.get(1)?,
        message_id: r.get(2)?,
        a: r.get(3)?,
        b: r.get(4)?,
        a_record: r.get(5)?,
        b_record: r.get(6)?,
        a_failed: r.get(7)?,
        b_failed: r.get(8)?,
        choice: r.get(9)?,
        created_at: r.get(10)?,
    })
}

impl Store {
    /// Keeps a compared turn (not yet picked); returns its id.
    pub fn insert_arena_turn(&self, t: &ArenaTurn) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO arena_turns (session_id, message_id, a, b, a_record, b_record, a_failed,
                                      b_failed, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                t.session_id,
                t.message_id,
                t.a,
                t.b,
                t.a_record,
                t.b_record,
                t.a_failed,
                t.b_failed,
                t.created_at
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The latest compared turn of a Session, picked or not.
    pub fn latest_arena_turn(&self, session_id: i64) -> Result<Option<ArenaTurn>> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM arena_turns WHERE session_id = ?1
                     ORDER BY id DESC LIMIT 1"
                ),
                [session_id],
                turn,
            )
            .optional()?)
    }

    /// The compared turns of a Session, oldest first.
    pub fn arena_turns(&self, session_id: i64) -> Result<Vec<ArenaTurn>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM arena_turns WHERE session_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([session_id], turn)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records the person's choice and shows the chosen version (A for a tie or both bad), in
    /// one transaction.
    pub fn pick_arena_turn(&self, id: i64, choice: &str, now: i64) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let message: i64 = tx.query_row(
            "SELECT message_id FROM arena_turns WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?;
        tx.execute(
            "UPDATE arena_turns SET choice = ?2, picked_at = ?3 WHERE id = ?1",
            params![id, choice, now],
        )?;
        let shown = i64::from(choice == "b");
        tx.execute(
            "UPDATE messages SET swipes = json_set(swipes, '$.at', ?2),
                    content = json_extract(swipes, '$.all[' || ?2 || ']')
             WHERE id = ?1 AND swipes IS NOT NULL",
            params![message, shown],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Picked turns of one Character's Sessions or all, oldest first; trash left out.
    pub fn picked_arena_turns(&self, character_id: Option<&str>) -> Result<Vec<ArenaTurn>> {
        let conn = self.conn();
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {cols} FROM arena_turns t JOIN sessions s ON s.id = t.session_id
             WHERE t.choice IS NOT NULL AND s.deleted_at IS NULL
               AND (?1 IS NULL OR s.character_id = ?1)
             ORDER BY t.id"
        ))?;
        let rows = stmt.query_map([character_id], turn)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every picked turn, with its Character's category and its Session's scenario.
    pub fn arena_results(&self) -> Result<Vec<ArenaResult>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT t.a, t.b, t.choice, c.category, s.scenario FROM arena_turns t
             JOIN sessions s ON s.id = t.session_id JOIN characters c ON c.id = s.character_id
             WHERE t.choice IS NOT NULL ORDER BY t.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ArenaResult {
                a: r.get(0)?,
                b: r.get(1)?,
                choice: r.get(2)?,
                category: r.get(3)?,
                scenario: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
