//! Ratings by the person: a Session's seven pointwise scores (the paper's human evaluation) and
//! thumbs on single replies, each with the model and setup that wrote the replies, and their
//! averages per model. What the scores mean and which are valid is `eval::rating`'s; the store
//! keeps them (and SQL refuses a score outside 1–5).

use rusqlite::{params, OptionalExtension};

use super::{Result, Store};

/// The seven metrics, 1 to 5, in the paper's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    pub consistency: u8,
    pub human_likeness: u8,
    pub engagement: u8,
    pub quality: u8,
    pub safety: u8,
    pub correctness: u8,
    pub overall: u8,
}

impl Scores {
    pub fn as_array(&self) -> [u8; 7] {
        [
            self.consistency,
            self.human_likeness,
            self.engagement,
            self.quality,
            self.safety,
            self.correctness,
            self.overall,
        ]
    }
}

/// A Session's rating.
#[derive(Debug, Clone, PartialEq)]
pub struct Rating {
    pub session_id: i64,
    pub model: String,
    /// How the prompt was built and sampled (JSON).
    pub setup: String,
    pub scores: Scores,
    pub comment: String,
    pub created_at: i64,
}

/// The average scores of the rated Sessions of one Character (or all) and model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Averages {
    pub model: String,
    pub sessions: usize,
    /// In the order of `Scores::as_array`.
    pub means: [f64; 7],
    pub thumbs_up: usize,
    pub thumbs_down: usize,
}

impl Store {
    /// Rates a Session; rating it again replaces the rating.
    pub fn save_rating(&self, r: &Rating) -> Result<()> {
        let s = r.scores;
        self.conn().execute(
            "INSERT OR REPLACE INTO ratings (session_id, model, setup, consistency, human_likeness,
                engagement, quality, safety, correctness, overall, comment, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                r.session_id,
                r.model,
                r.setup,
                s.consistency,
                s.human_likeness,
                s.engagement,
                s.quality,
                s.safety,
                s.correctness,
                s.overall,
                r.comment,
                r.created_at
            ],
        )?;
        Ok(())
    }

    pub fn rating(&self, session_id: i64) -> Result<Option<Rating>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT session_id, model, setup, consistency, human_likeness, engagement, quality,
                        safety, correctness, overall, comment, created_at
                 FROM ratings WHERE session_id = ?1",
                [session_id],
                |r| {
                    Ok(Rating {
                        session_id: r.get(0)?,
                        model: r.get(1)?,
                        setup: r.get(2)?,
                        scores: Scores {
                            consistency: r.get(3)?,
                            human_likeness: r.get(4)?,
                            engagement: r.get(5)?,
                            quality: r.get(6)?,
                            safety: r.get(7)?,
                            correctness: r.get(8)?,
                            overall: r.get(9)?,
                        },
                        comment: r.get(10)?,
                        created_at: r.get(11)?,
                    })
                },
            )
            .optional()?)
    }

    /// Thumbs up (1), down (-1) or neither (0, which removes it) on a reply.
    pub fn set_thumb(&self, message_id: i64, value: i8, model: &str, now: i64) -> Result<()> {
        let conn = self.conn();
        if value == 0 {
            conn.execute("DELETE FROM thumbs WHERE message_id = ?1", [message_id])?;
        } else {
            conn.execute(
                "INSERT OR REPLACE INTO thumbs (message_id, value, model, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![message_id, value.signum(), model, now],
            )?;
        }
        Ok(())
    }

    /// The thumbs on a Session's replies: (message id, 1 or -1).
    pub fn thumbs(&self, session_id: i64) -> Result<Vec<(i64, i8)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT t.message_id, t.value FROM thumbs t JOIN messages m ON m.id = t.message_id
             WHERE m.session_id = ?1 ORDER BY t.message_id",
        )?;
        let rows = stmt.query_map([session_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Rated Sessions for exported training data: (session id, Character id, overall score),
    /// of one Character or all, oldest first. Sessions in the trash are left out.
    pub fn rated_sessions(&self, character_id: Option<&str>) -> Result<Vec<(i64, String, u8)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT s.id, s.character_id, r.overall FROM ratings r
             JOIN sessions s ON s.id = r.session_id
             WHERE s.deleted_at IS NULL AND (?1 IS NULL OR s.character_id = ?1)
             ORDER BY s.id",
        )?;
        let rows = stmt.query_map([character_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Sessions with a reply written more than once (swipes), of one Character or all, oldest
    /// first; trash left out.
    pub fn sessions_with_swipes(&self, character_id: Option<&str>) -> Result<Vec<i64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT s.id FROM messages m JOIN sessions s ON s.id = m.session_id
             WHERE m.swipes IS NOT NULL AND s.deleted_at IS NULL
               AND (?1 IS NULL OR s.character_id = ?1)
             ORDER BY s.id",
        )?;
        let rows = stmt.query_map([character_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A Character's ratings and thumbs (or, with `None`, every Character's) averaged per model,
    /// the most rated model first. Sessions in the trash count too: the person rated them.
    pub fn rating_averages(&self, character_id: Option<&str>) -> Result<Vec<Averages>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT r.model, COUNT(*), AVG(consistency), AVG(human_likeness), AVG(engagement),
                    AVG(quality), AVG(safety), AVG(correctness), AVG(overall)
             FROM ratings r JOIN sessions s ON s.id = r.session_id
             WHERE ?1 IS NULL OR s.character_id = ?1 GROUP BY r.model",
        )?;
        let mut out: Vec<Averages> = stmt
            .query_map([character_id], |r| {
                let mut means = [0.0; 7];
                for (i, m) in means.iter_mut().enumerate() {
                    *m = r.get(2 + i)?;
                }
                Ok(Averages {
                    model: r.get(0)?,
                    sessions: r.get::<_, i64>(1)? as usize,
                    means,
                    thumbs_up: 0,
                    thumbs_down: 0,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = conn.prepare_cached(
            "SELECT t.model, SUM(t.value = 1), SUM(t.value = -1)
             FROM thumbs t JOIN messages m ON m.id = t.message_id
             JOIN sessions s ON s.id = m.session_id
             WHERE ?1 IS NULL OR s.character_id = ?1 GROUP BY t.model",
        )?;
        let thumbs = stmt.query_map([character_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in thumbs {
            let (model, up, down) = row?;
            let i = match out.iter().position(|a| a.model == model) {
                Some(i) => i,
                None => {
                    out.push(Averages {
                        model,
                        sessions: 0,
                        means: [0.0; 7],
                        thumbs_up: 0,
                        thumbs_down: 0,
                    });
                    out.len() - 1
                }
            };
            out[i].thumbs_up = up as usize;
            out[i].thumbs_down = down as usize;
        }
        out.sort_by(|a, b| {
            (b.sessions + b.thumbs_up + b.thumbs_down)
                .cmp(&(a.sessions + a.thumbs_up + a.thumbs_down))
                .then(a.model.cmp(&b.model))
        });
        Ok(out)
    }
}
