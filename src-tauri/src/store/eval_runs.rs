//! Evaluation runs: each kept with its report (JSON, as `eval::Report` writes it), newest
//! first per Character. The store keeps the text; `eval` owns its shape.

use rusqlite::params;

use super::{Result, Store};

/// One kept evaluation run.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRun {
    pub id: i64,
    /// `None`: a run over several Characters.
    pub character_id: Option<String>,
    pub model: String,
    pub setup: String,
    /// `eval::Report` as JSON.
    pub report: String,
    pub created_at: i64,
}

impl Store {
    /// Keeps a run; returns its id.
    pub fn save_eval_run(
        &self,
        character_id: Option<&str>,
        model: &str,
        setup: &str,
        report: &str,
        now: i64,
    ) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO eval_runs (character_id, model, setup, report, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![character_id, model, setup, report, now],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The runs of `character_id` (or, with `None`, those over several Characters), newest
    /// first, at most `limit`.
    pub fn eval_runs(&self, character_id: Option<&str>, limit: usize) -> Result<Vec<EvalRun>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, character_id, model, setup, report, created_at FROM eval_runs
             WHERE character_id IS ?1 ORDER BY created_at DESC, id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![character_id, limit as i64], |r| {
            Ok(EvalRun {
                id: r.get(0)?,
                character_id: r.get(1)?,
                model: r.get(2)?,
                setup: r.get(3)?,
                report: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets a run.
    pub fn delete_eval_run(&self, id: i64) -> Result<()> {
        self.conn()
            .execute("DELETE FROM eval_runs WHERE id = ?1", [id])?;
        Ok(())
    }
}
