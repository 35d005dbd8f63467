//! The person as the judge: a Session rated on the paper's seven metrics (1–5) with a comment,
//! a thumb up or down on one reply, and a Character's averages per model. Each rating keeps
//! what wrote the replies, read from their prompt records: the model most of them came from,
//! and the way the prompt was made and sampled.

use std::collections::BTreeMap;

use super::{now_ms, Troupe};
use crate::conversation::prompt::PromptRecord;
use crate::store::{self, Averages, Rating, Role, Scores};

/// The metrics in the paper's order, as `Scores::as_array` gives them.
pub const METRICS: [&str; 7] = [
    "consistency",
    "human_likeness",
    "engagement",
    "quality",
    "safety",
    "correctness",
    "overall",
];

/// Why a rating was refused; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum RateError {
    #[error("{metric} must be a whole number from 1 to 5, not {value}")]
    OutOfRange { metric: &'static str, value: i64 },
    #[error("there is nothing to rate yet: the Character has not replied in this conversation")]
    NoReplies,
    #[error("a thumb is up (1), down (-1) or none (0), not {0}")]
    BadThumb(i64),
    #[error("only the Character's replies written by the model take a thumb (a greeting comes from the card)")]
    NotAReply,
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The seven scores from whole numbers, in the order of `METRICS`; each must be 1 to 5.
pub fn scores(values: [i64; 7]) -> Result<Scores, RateError> {
    let mut ok = [0u8; 7];
    for (i, v) in values.iter().enumerate() {
        if !(1..=5).contains(v) {
            return Err(RateError::OutOfRange {
                metric: METRICS[i],
                value: *v,
            });
        }
        ok[i] = *v as u8;
    }
    let [consistency, human_likeness, engagement, quality, safety, correctness, overall] = ok;
    Ok(Scores {
        consistency,
        human_likeness,
        engagement,
        quality,
        safety,
        correctness,
        overall,
    })
}

impl Troupe {
    /// Rates a Session (again: the new rating replaces the old), keeping which model and setup
    /// wrote its replies.
    pub fn rate_session(
        &self,
        session_id: i64,
        scores: Scores,
        comment: &str,
    ) -> Result<Rating, RateError> {
        let records = self.reply_records(session_id)?;
        let Some((model, setup)) = what_wrote(&records) else {
            return Err(RateError::NoReplies);
        };
        let rating = Rating {
            session_id,
            model,
            setup,
            scores,
            comment: comment.trim().to_string(),
            created_at: now_ms(),
        };
        self.store.save_rating(&rating)?;
        Ok(rating)
    }

    /// The Session's rating, if it has one.
    pub fn session_rating(&self, session_id: i64) -> Result<Option<Rating>, store::Error> {
        self.store.rating(session_id)
    }

    /// A thumb up (1), down (-1) or none (0) on one of the Character's replies.
    pub fn set_thumb(&self, message_id: i64, value: i64) -> Result<(), RateError> {
        if !(-1..=1).contains(&value) {
            return Err(RateError::BadThumb(value));
        }
        let message = self
            .store
            .get_message(message_id)?
            .ok_or(store::Error::MessageNotFound(message_id))?;
        // A reply the model wrote has a prompt record; the greeting has none.
        let record = match message.role {
            Role::Character => self
                .prompt_record(message_id)?
                .ok_or(RateError::NotAReply)?,
            Role::User => return Err(RateError::NotAReply),
        };
        let model = Some(record.model)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| self.model_in_use());
        self.store
            .set_thumb(message_id, value as i8, &model, now_ms())?;
        Ok(())
    }

    /// The thumbs on a Session's replies: (message id, 1 or -1).
    pub fn thumbs(&self, session_id: i64) -> Result<Vec<(i64, i8)>, store::Error> {
        self.store.thumbs(session_id)
    }

    /// A Character's ratings and thumbs (`None`: every Character's) averaged per model: the
    /// paper's Table 2 from the person's ratings.
    pub fn rating_averages(
        &self,
        character_id: Option<&str>,
    ) -> Result<Vec<Averages>, store::Error> {
        self.store.rating_averages(character_id)
    }

    /// The prompt records of a Session's replies, oldest first. The greeting has none (the
    /// model did not write it); a record from before ratings existed does not name its model,
    /// which is then taken to be the one in use.
    fn reply_records(&self, session_id: i64) -> Result<Vec<PromptRecord>, store::Error> {
        let in_use = self.model_in_use();
        let mut records = Vec::new();
        for m in self.store.list_messages(session_id)? {
            if m.role != Role::Character || m.content.trim().is_empty() {
                continue;
            }
            if let Some(mut r) = self.prompt_record(m.id)? {
                if r.model.is_empty() {
                    r.model = in_use.clone();
                }
                records.push(r);
            }
        }
        Ok(records)
    }

    /// The name of the model file loaded now (or, with none loaded, the one settings choose),
    /// for replies whose record does not say.
    fn model_in_use(&self) -> String {
        match self.engine.status() {
            crate::engine::EngineStatus::Ready(info) => info.name,
            _ => self
                .model_file(&self.settings(), None)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// The model most of the replies came from, and the setup of the latest of them (JSON:
/// `{"prompting": …, "sampling": …}`). `None` when there are no replies.
fn what_wrote(records: &[PromptRecord]) -> Option<(String, String)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in records {
        *counts.entry(r.model.as_str()).or_default() += 1;
    }
    let model = counts.iter().max_by_key(|(_, n)| **n)?.0.to_string();
    let last = records.iter().rev().find(|r| r.model == model)?;
    let prompting = if last.prompting.is_empty() {
        "troupe"
    } else {
        last.prompting.as_str()
    };
    let setup = serde_json::json!({ "prompting": prompting, "sampling": last.sampling });
    Some((model, setup.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_whole_numbers_from_one_to_five() {
        let s = scores([4, 5, 3, 4, 5, 4, 4]).unwrap();
        assert_eq!(s.as_array(), [4, 5, 3, 4, 5, 4, 4]);
        let err = scores([4, 5, 3, 0, 5, 4, 4]).unwrap_err().to_string();
        assert_eq!(err, "quality must be a whole number from 1 to 5, not 0");
        assert!(scores([4, 5, 3, 4, 5, 4, 6]).is_err());
    }

    #[test]
    fn the_model_most_replies_came_from_is_the_one_rated() {
        let r = |model: &str| PromptRecord {
            model: model.into(),
            ..Default::default()
        };
        let (model, setup) = what_wrote(&[r("a.gguf"), r("b.gguf"), r("b.gguf")]).unwrap();
        assert_eq!(model, "b.gguf");
        assert_eq!(setup, r#"{"prompting":"troupe","sampling":null}"#);
        assert!(what_wrote(&[]).is_none());
    }
}
