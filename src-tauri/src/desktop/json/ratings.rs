//! Wire types of ratings (`ui/src/api/ratings.ts`): a Session's seven scores, thumbs, and a
//! Character's averages per model.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::app::vocabulary as domain;

/// The seven metrics, 1–5.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Scores {
    pub consistency: i64,
    pub human_likeness: i64,
    pub engagement: i64,
    pub quality: i64,
    pub safety: i64,
    pub correctness: i64,
    pub overall: i64,
}

impl Scores {
    /// In the order of `app::METRICS`.
    pub fn values(&self) -> [i64; 7] {
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

impl From<domain::Scores> for Scores {
    fn from(s: domain::Scores) -> Self {
        Scores {
            consistency: s.consistency.into(),
            human_likeness: s.human_likeness.into(),
            engagement: s.engagement.into(),
            quality: s.quality.into(),
            safety: s.safety.into(),
            correctness: s.correctness.into(),
            overall: s.overall.into(),
        }
    }
}

/// A Session's rating, with the model that wrote its replies.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Rating {
    pub session_id: i64,
    pub model: String,
    pub scores: Scores,
    pub comment: String,
    /// Unix ms.
    pub created_at: i64,
}

impl From<domain::Rating> for Rating {
    fn from(r: domain::Rating) -> Self {
        Rating {
            session_id: r.session_id,
            model: r.model,
            scores: r.scores.into(),
            comment: r.comment,
            created_at: r.created_at,
        }
    }
}

/// A thumb on a reply: 1 up, -1 down.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Thumb {
    pub message_id: i64,
    pub value: i64,
}

/// What "Export training data" wrote.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TrainingData {
    pub sft_path: String,
    pub sft_rows: usize,
    pub dpo_path: String,
    pub dpo_rows: usize,
    /// Replies left out: kept before the messages the model saw were.
    pub without_prompt: usize,
}

/// A Character's ratings and thumbs for one model.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RatingAverages {
    pub model: String,
    /// Rated Sessions (0: only thumbs).
    pub sessions: usize,
    /// The seven means, in the order of `Scores`.
    pub means: Vec<f64>,
    pub thumbs_up: usize,
    pub thumbs_down: usize,
}

impl From<domain::RatingAverages> for RatingAverages {
    fn from(a: domain::RatingAverages) -> Self {
        RatingAverages {
            model: a.model,
            sessions: a.sessions,
            means: a.means.to_vec(),
            thumbs_up: a.thumbs_up,
            thumbs_down: a.thumbs_down,
        }
    }
}
