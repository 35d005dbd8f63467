//! The data flywheel: what the person judged, as files a trainer reads (docs/DATA.md).
//!
//! SFT: every kept reply of a rated Session or one where the person picked in the arena, as
//! `{"messages": [...]}` — the messages exactly as the model saw them (from the reply's prompt
//! record) and then the reply — TRL's conversational format. A reply the person gave a thumb
//! down is left out; so is everything of a Session neither rated nor picked in.
//!
//! DPO: `{"prompt": [...], "chosen": [...], "rejected": [...]}` rows, TRL's conversational
//! preference format: from arena picks (A or B; a tie or "both bad" says no preference), and
//! from the replies the person wrote again and settled on (the version shown when the
//! conversation went on is chosen, each other version rejected).
//!
//! Nothing leaves the machine unless the person writes these files.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use super::Troupe;
use crate::conversation::prompt::PromptRecord;
use crate::engine::{ChatMessage, ChatRole};
use crate::store::{self, Message, Role};

/// Which judged conversations to take.
#[derive(Debug, Clone, Default)]
pub struct DataFilter {
    /// SFT: only Sessions rated at least this overall (1–5).
    pub min_rating: Option<u8>,
    pub character: Option<String>,
    /// Only replies written at or after this moment (unix ms).
    pub since: Option<i64>,
}

/// What an export wrote, and what it had to leave out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataReport {
    pub sft_rows: usize,
    pub dpo_rows: usize,
    /// Replies kept before prompt records held the messages the model saw: they cannot be
    /// exported exactly, so they are not.
    pub without_prompt: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("--min-rating must be from 1 to 5, not {0}")]
    BadRating(u8),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Troupe {
    /// The SFT rows of what `filter` takes, and how many replies had no usable prompt record.
    pub fn sft_rows(&self, filter: &DataFilter) -> Result<(Vec<Value>, usize), DataError> {
        if let Some(r) = filter.min_rating.filter(|r| !(1..=5).contains(r)) {
            return Err(DataError::BadRating(r));
        }
        let mut rows = Vec::new();
        let mut without = 0;
        let character = filter.character.as_deref();
        let mut sessions: Vec<i64> = self
            .store
            .rated_sessions(character)?
            .into_iter()
            .filter(|(_, _, overall)| filter.min_rating.is_none_or(|min| *overall >= min))
            .map(|(id, _, _)| id)
            .collect();
        // Picked in the arena: chosen, unless a bar on the rating asks for a rating. A reply
        // the person called "both bad" is never taken.
        let picked = self.store.picked_arena_turns(character)?;
        let bad: Vec<i64> = picked
            .iter()
            .filter(|t| t.choice.as_deref() == Some("bad"))
            .map(|t| t.message_id)
            .collect();
        if filter.min_rating.is_none() {
            sessions.extend(
                picked
                    .iter()
                    .filter(|t| t.choice.as_deref() != Some("bad"))
                    .map(|t| t.session_id),
            );
        }
        sessions.sort_unstable();
        sessions.dedup();
        for session in sessions {
            let down: Vec<i64> = self
                .store
                .thumbs(session)?
                .into_iter()
                .filter(|(_, v)| *v < 0)
                .map(|(id, _)| id)
                .collect();
            for m in self.store.list_messages(session)? {
                if !is_kept_reply(&m, filter) || down.contains(&m.id) || bad.contains(&m.id) {
                    continue;
                }
                match self.prompt_record(m.id)? {
                    // The greeting: the card wrote it, not the model.
                    None => {}
                    Some(r) if r.messages.is_empty() => without += 1,
                    Some(r) => {
                        let mut messages = r.messages;
                        messages.push(ChatMessage::new(ChatRole::Assistant, m.content.trim()));
                        rows.push(json!({ "messages": messages }));
                    }
                }
            }
        }
        Ok((rows, without))
    }

    /// The DPO rows of what `filter` takes (its `min_rating` is about SFT and ignored here).
    pub fn dpo_rows(&self, filter: &DataFilter) -> Result<(Vec<Value>, usize), DataError> {
        let mut rows = Vec::new();
        let mut without = 0;
        let turns = self.store.picked_arena_turns(filter.character.as_deref())?;
        let compared: Vec<i64> = turns.iter().map(|t| t.message_id).collect();
        for t in &turns {
            match self.arena_row(t, filter)? {
                Some(Some(row)) => rows.push(row),
                Some(None) => without += 1,
                None => {}
            }
        }
        for session in self
            .store
            .sessions_with_swipes(filter.character.as_deref())?
        {
            let messages = self.store.list_messages(session)?;
            // Settled: the conversation went on after it, so the version shown was the one kept.
            for m in messages.iter().rev().skip(1) {
                let plain_swipe = m.swipes.len() >= 2 && !compared.contains(&m.id);
                if m.role != Role::Character || !plain_swipe || !is_kept_reply(m, filter) {
                    continue;
                }
                let Some(prompt) = self.seen_by_model(m.id)? else {
                    without += 1;
                    continue;
                };
                let chosen = m.swipes[m.swipe].trim();
                for (i, other) in m.swipes.iter().enumerate() {
                    let other = other.trim();
                    if i == m.swipe || other.is_empty() || other == chosen {
                        continue;
                    }
                    rows.push(json!({
                        "prompt": prompt,
                        "chosen": [ChatMessage::new(ChatRole::Assistant, chosen)],
                        "rejected": [ChatMessage::new(ChatRole::Assistant, other)],
                    }));
                }
            }
        }
        Ok((rows, without))
    }

    /// The DPO row of a picked arena turn: `None` when it gives none (a tie, both bad, a side
    /// that failed, outside the filter), `Some(None)` when its prompt was not kept.
    fn arena_row(
        &self,
        t: &store::ArenaTurn,
        filter: &DataFilter,
    ) -> Result<Option<Option<Value>>, DataError> {
        let chosen = match t.choice.as_deref() {
            Some("a") => 0,
            Some("b") => 1,
            _ => return Ok(None),
        };
        let Some(m) = self.store.get_message(t.message_id)? else {
            return Ok(None);
        };
        // A side that failed, or two identical replies, say nothing about preference.
        if t.a_failed.is_some()
            || t.b_failed.is_some()
            || m.swipes.len() != 2
            || m.swipes[0].trim() == m.swipes[1].trim()
        {
            return Ok(None);
        }
        if !is_kept_reply(&m, filter) {
            return Ok(None);
        }
        let record = if chosen == 0 {
            &t.a_record
        } else {
            &t.b_record
        };
        let prompt = record
            .as_deref()
            .and_then(|r| serde_json::from_str::<PromptRecord>(r).ok())
            .map(|r| r.messages)
            .filter(|m| !m.is_empty());
        let Some(prompt) = prompt else {
            return Ok(Some(None));
        };
        Ok(Some(Some(json!({
            "prompt": prompt,
            "chosen": [ChatMessage::new(ChatRole::Assistant, m.swipes[chosen].trim())],
            "rejected": [ChatMessage::new(ChatRole::Assistant, m.swipes[1 - chosen].trim())],
        }))))
    }

    /// Writes the SFT rows to `sft` and the DPO rows to `dpo` (either may be absent), one JSON
    /// object per line. A filter that matches nothing writes an empty file: that is an answer,
    /// not an error.
    pub fn export_training_data(
        &self,
        filter: &DataFilter,
        sft: Option<&Path>,
        dpo: Option<&Path>,
    ) -> Result<DataReport, DataError> {
        let mut report = DataReport::default();
        if let Some(path) = sft {
            let (rows, without) = self.sft_rows(filter)?;
            write_jsonl(path, &rows)?;
            report.sft_rows = rows.len();
            report.without_prompt += without;
        }
        if let Some(path) = dpo {
            let (rows, without) = self.dpo_rows(filter)?;
            write_jsonl(path, &rows)?;
            report.dpo_rows = rows.len();
            report.without_prompt += without;
        }
        Ok(report)
    }

    /// The messages the model was given for this reply, when its record kept them.
    fn seen_by_model(&self, message_id: i64) -> Result<Option<Vec<ChatMessage>>, store::Error> {
        Ok(self
            .prompt_record(message_id)?
            .map(|r| r.messages)
            .filter(|m| !m.is_empty()))
    }
}

/// A reply of the Character with words in it, written within the filter's time.
fn is_kept_reply(m: &Message, filter: &DataFilter) -> bool {
    m.role == Role::Character
        && !m.content.trim().is_empty()
        && filter.since.is_none_or(|since| m.created_at >= since)
}

/// `rows` as JSON Lines at `path`, written whole or not at all.
fn write_jsonl(path: &Path, rows: &[Value]) -> Result<(), DataError> {
    let failed = |source| DataError::Write {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("jsonl.part");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(failed)?);
    for row in rows {
        writeln!(out, "{row}").map_err(failed)?;
    }
    out.into_inner()
        .map_err(|e| failed(e.into_error()))?
        .sync_all()
        .map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(failed)
}

/// "2026-12-03" as unix ms at 00:00 UTC; `None` for anything else.
pub fn parse_day(day: &str) -> Option<i64> {
    let mut parts = day.trim().splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_read_as_utc_midnight() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2026-12-03"), Some(1_796_256_000_000));
        assert_eq!(
            crate::app::utc_time(parse_day("2024-02-29").unwrap()),
            "2024-02-29 00:00 UTC"
        );
        for bad in ["", "2026-13-01", "yesterday", "2026-12", "1969-12-31"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }
}
