//! The arena: the next reply of a Session written twice, by two contenders — the model in use,
//! another local model, the remote server, a sampling preset, or the paper's naive prompting —
//! shown as A and B in an order drawn at random, and the person's pick (A, B, tie, both bad).
//! The picked version continues the Session; the other stays as its second version (a swipe).
//! `arena_report` adds the picks up per pair of contenders, split by the Character's category
//! and the Scenario as in the paper's Table 3, with a 95% interval on each share.
//!
//! The two replies are written one after the other, never at once, so two local models need
//! not share the machine's cores. The second model stays loaded in its own slot between turns
//! when both fit in memory (`models::both_fit`); when they do not, the model in use is set
//! aside while the other writes and loaded again after (`Compared::parked` says so).
//! `TROUPE_ARENA_PARK=1` sets it aside whatever the memory, for tests.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{now_ms, sampling::sampling_for_session, Troupe};
use crate::conversation::{self, Prompting, TurnError, TurnEvent};
use crate::engine::{self, Engine, Sampling};
use crate::settings::Settings;
use crate::store::{self, ArenaTurn, Message};

/// Who writes one side of a turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Contender {
    /// The model in use, with the Session's sampling and Troupe's prompting.
    Current,
    /// Another GGUF file.
    Model(PathBuf),
    /// The OpenAI-compatible server in settings.
    Remote,
    /// The model in use with a sampling preset.
    Preset(String),
    /// The model in use with the paper's naive prompting.
    Naive,
}

/// Why an arena turn or pick was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArenaError {
    #[error("'{0}': a contender is current, remote, preset:NAME, prompt:naive or a .gguf file")]
    UnknownContender(String),
    #[error("the two contenders are the same ({0}): pick two different ones")]
    Same(String),
    #[error(
        "only one contender can be another model or the server; the other runs on the model in use"
    )]
    TwoOthers,
    #[error("this conversation has no compared turn to pick from; compare a reply first")]
    NothingToPick,
    #[error("the compared replies are still being written; pick when both are done")]
    StillWriting,
    #[error("'{0}': pick A, B, tie or bad")]
    BadChoice(String),
    #[error(transparent)]
    Engine(#[from] engine::Error),
    #[error(transparent)]
    Turn(#[from] TurnError),
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Contender {
    /// `current`, `remote`, `preset:NAME`, `prompt:naive` or a path ending in `.gguf`.
    pub fn parse(spec: &str) -> Result<Contender, ArenaError> {
        let spec = spec.trim();
        Ok(match spec {
            "current" | "" => Contender::Current,
            "remote" => Contender::Remote,
            "prompt:naive" => Contender::Naive,
            s if s.starts_with("preset:") => {
                let name = &s["preset:".len()..];
                engine::sampling::preset(name)
                    .ok_or_else(|| ArenaError::UnknownContender(spec.into()))?;
                Contender::Preset(name.into())
            }
            s if s.to_ascii_lowercase().ends_with(".gguf") => Contender::Model(s.into()),
            _ => return Err(ArenaError::UnknownContender(spec.into())),
        })
    }
}

/// A turn as the front end shows it: the two replies (A first) and, once picked, who wrote
/// which.
#[derive(Debug, Clone)]
pub struct Compared {
    pub turn_id: i64,
    pub reply: Message,
    pub a_failed: Option<String>,
    pub b_failed: Option<String>,
    /// The two models could not be held at once: the one in use was set aside while the other
    /// wrote, and loaded again.
    pub parked: bool,
}

/// Wins, ties and losses of the first contender of a pair against the second.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Tally {
    pub win: usize,
    pub tie: usize,
    pub lose: usize,
    /// Of the ties, how many were "both bad".
    pub both_bad: usize,
}

impl Tally {
    pub fn n(&self) -> usize {
        self.win + self.tie + self.lose
    }
}

/// One pair of contenders: overall, and per category × scenario (the paper's Table 3).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PairResult {
    pub first: String,
    pub second: String,
    pub overall: Tally,
    /// (category, scenario) → tally.
    pub cells: BTreeMap<String, Tally>,
}

impl Troupe {
    /// Writes the reply to `text` twice, by `x` and `y` (which one is A is drawn at random),
    /// as the two versions of one message; `on_event` gets each side's events with "A" or "B".
    /// Both contenders are made ready first: one that cannot load refuses the turn and nothing
    /// is stored. A side that fails mid-reply keeps what it wrote and is marked; the other
    /// still writes.
    pub async fn arena_turn(
        &self,
        settings: &Settings,
        session_id: i64,
        text: &str,
        x: &Contender,
        y: &Contender,
        on_event: &mut (dyn FnMut(&str, TurnEvent) + Send),
    ) -> Result<Compared, ArenaError> {
        let (a, b) = if coin() { (x, y) } else { (y, x) };
        let labels = (self.label(a, settings)?, self.label(b, settings)?);
        if labels.0 == labels.1 {
            return Err(ArenaError::Same(labels.0));
        }
        let elsewhere = |c: &Contender| matches!(c, Contender::Model(_) | Contender::Remote);
        if elsewhere(a) && elsewhere(b) {
            return Err(ArenaError::TwoOthers);
        }
        let session_sampling = sampling_for_session(&self.store, settings, session_id)?;
        let (cancel, _running) = self.activity.start_reply(session_id)?;
        self.activity.cancel_summary(session_id);

        let parked = self.must_park(a, b);
        let (engine_a, sampling_a, prompting_a) = self
            .ready_side(a, parked, settings, &session_sampling)
            .await?;
        // B is made ready now too, so that one that cannot load changes nothing; when the two
        // models cannot be held at once it is only checked now and loaded when its turn comes.
        let ready_b = if parked {
            if let Contender::Model(p) = b {
                engine::check_model_file(p)?;
            }
            None
        } else {
            Some(self.contender(b, settings, &session_sampling).await?)
        };
        let sent = conversation::send_with(
            prompting_a,
            &self.store,
            engine_a.as_ref(),
            session_id,
            text,
            &sampling_a,
            &cancel,
            &now_ms,
            &mut |e| on_event("A", e),
        )
        .await;
        drop(engine_a);
        if parked && matches!(a, Contender::Model(_)) {
            self.put_back().await?;
        }
        let (reply_id, a_failed) = match sent {
            Ok((m, _)) => (m.id, failed_note(&m)),
            Err(TurnError::Failed { reply, reason }) => (reply.id, Some(reason)),
            Err(e) => return Err(e.into()),
        };
        let a_record = self.store.prompt_record(reply_id)?;
        let ready_b = match ready_b {
            Some(r) => Ok(r),
            None => {
                self.ready_side(b, parked, settings, &session_sampling)
                    .await
            }
        };
        let b_failed = match ready_b {
            Err(e) => Some(e.to_string()),
            Ok((engine_b, sampling_b, prompting_b)) => {
                let written = conversation::regenerate_with(
                    prompting_b,
                    &self.store,
                    engine_b.as_ref(),
                    reply_id,
                    &sampling_b,
                    &cancel,
                    &mut |e| on_event("B", e),
                )
                .await;
                drop(engine_b);
                written.map_or_else(|e| Some(e.to_string()), |(m, _)| failed_note(&m))
            }
        };
        if parked && matches!(b, Contender::Model(_)) {
            self.put_back().await?;
        }
        let b_record = self.store.prompt_record(reply_id)?;
        // A is shown until the person picks.
        let reply = self.store.select_swipe(reply_id, 0)?;
        let turn_id = self.store.insert_arena_turn(&ArenaTurn {
            id: 0,
            session_id,
            message_id: reply_id,
            a: labels.0,
            b: labels.1,
            a_record,
            b_record,
            a_failed: a_failed.clone(),
            b_failed: b_failed.clone(),
            choice: None,
            created_at: now_ms(),
        })?;
        Ok(Compared {
            turn_id,
            reply,
            a_failed,
            b_failed,
            parked,
        })
    }

    /// The person's pick on the Session's latest compared turn: "a", "b", "tie" or "bad".
    /// Returns the turn, now naming who wrote A and B.
    pub fn arena_pick(&self, session_id: i64, choice: &str) -> Result<ArenaTurn, ArenaError> {
        let choice = choice.trim().to_ascii_lowercase();
        if !["a", "b", "tie", "bad"].contains(&choice.as_str()) {
            return Err(ArenaError::BadChoice(choice));
        }
        self.store.get_session(session_id)?;
        let turn = self
            .store
            .latest_arena_turn(session_id)?
            .ok_or(ArenaError::NothingToPick)?;
        let busy = self.activity.is_replying(session_id)
            || self
                .store
                .get_message(turn.message_id)?
                .is_none_or(|m| m.status == store::MessageStatus::Streaming);
        if busy {
            return Err(ArenaError::StillWriting);
        }
        self.store.pick_arena_turn(turn.id, &choice, now_ms())?;
        Ok(ArenaTurn {
            choice: Some(choice),
            ..turn
        })
    }

    /// Every picked turn added up per pair of contenders (named in alphabetical order, the
    /// tally from the first one's side).
    pub fn arena_report(&self) -> Result<Vec<PairResult>, store::Error> {
        let mut pairs: BTreeMap<(String, String), PairResult> = BTreeMap::new();
        for r in self.store.arena_results()? {
            let flipped = r.a > r.b;
            let (first, second) = if flipped { (r.b, r.a) } else { (r.a, r.b) };
            let entry = pairs
                .entry((first.clone(), second.clone()))
                .or_insert_with(|| PairResult {
                    first,
                    second,
                    overall: Tally::default(),
                    cells: BTreeMap::new(),
                });
            let cell = entry
                .cells
                .entry(format!("{}/{}", r.category, r.scenario))
                .or_default();
            for t in [&mut entry.overall, cell] {
                match (r.choice.as_str(), flipped) {
                    ("a", false) | ("b", true) => t.win += 1,
                    ("b", false) | ("a", true) => t.lose += 1,
                    ("bad", _) => {
                        t.tie += 1;
                        t.both_bad += 1;
                    }
                    _ => t.tie += 1,
                }
            }
        }
        Ok(pairs.into_values().collect())
    }

    /// Whether the other model cannot sit beside the one in use, so the one in use is set aside
    /// while the other writes.
    fn must_park(&self, a: &Contender, b: &Contender) -> bool {
        let other = [a, b].into_iter().find_map(|c| match c {
            Contender::Model(p) => Some(p),
            _ => None,
        });
        let (Some(other), Some(in_use)) = (other, self.engine.status().ready_path()) else {
            return false;
        };
        std::env::var_os("TROUPE_ARENA_PARK").is_some()
            || !engine::models::both_fit(&in_use, other, &engine::models::machine_memory())
    }

    /// A side's engine when its turn comes: with `parked`, the other model takes the place of
    /// the one in use (which is let go first).
    async fn ready_side(
        &self,
        c: &Contender,
        parked: bool,
        settings: &Settings,
        session: &Sampling,
    ) -> Result<(std::sync::Arc<dyn Engine>, Sampling, Prompting), ArenaError> {
        let (true, Contender::Model(_)) = (parked, c) else {
            return self.contender(c, settings, session).await;
        };
        let in_use = self.engine.status().ready_path().unwrap_or_default();
        self.engine.unload(in_use.clone());
        match self.contender(c, settings, session).await {
            Ok(ready) => Ok(ready),
            // The other would not load: the model in use comes back before the error is told.
            Err(e) => {
                self.engine.load(in_use).await?;
                Err(e)
            }
        }
    }

    /// After a parked turn's other model wrote: let it go and load the model in use again.
    async fn put_back(&self) -> Result<(), ArenaError> {
        let in_use = match self.engine.status() {
            engine::EngineStatus::Loading { path } => path,
            _ => return Ok(()),
        };
        self.contender_slot.unload(PathBuf::new());
        self.engine.load(in_use).await?;
        Ok(())
    }

    /// A contender's name in reports: what makes it different, stable across turns.
    fn label(&self, c: &Contender, settings: &Settings) -> Result<String, ArenaError> {
        let in_use = || {
            self.engine
                .status()
                .ready_name()
                .unwrap_or_else(|| file_name(&self.model_file(settings, None)))
        };
        Ok(match c {
            Contender::Current => in_use(),
            Contender::Model(p) => file_name(p),
            Contender::Remote => format!("remote: {}", settings.remote.model),
            Contender::Preset(name) => format!("{} · {name}", in_use()),
            Contender::Naive => format!("{} · naive prompt", in_use()),
        })
    }

    /// The engine, sampling and prompting a contender writes with.
    async fn contender(
        &self,
        c: &Contender,
        settings: &Settings,
        session: &Sampling,
    ) -> Result<(std::sync::Arc<dyn Engine>, Sampling, Prompting), ArenaError> {
        Ok(match c {
            Contender::Current => (self.engine.engine()?, session.clone(), Prompting::Troupe),
            Contender::Naive => (self.engine.engine()?, session.clone(), Prompting::Naive),
            Contender::Preset(name) => {
                let preset = engine::sampling::preset(name)
                    .ok_or_else(|| ArenaError::UnknownContender(name.clone()))?;
                (self.engine.engine()?, preset, Prompting::Troupe)
            }
            Contender::Model(path) => {
                if self.contender_slot.status().ready_path().as_ref() != Some(path) {
                    self.contender_slot.load(path.clone()).await?;
                }
                (
                    self.contender_slot.engine()?,
                    session.clone(),
                    Prompting::Troupe,
                )
            }
            Contender::Remote => {
                self.contender_slot
                    .connect(settings.remote.config())
                    .await?;
                (
                    self.contender_slot.engine()?,
                    session.clone(),
                    Prompting::Troupe,
                )
            }
        })
    }
}

/// Why a finished side counts as failed: it stopped early.
fn failed_note(m: &Message) -> Option<String> {
    (m.status == store::MessageStatus::Interrupted).then(|| "stopped early".to_string())
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// A fair coin for which contender is A (the time's low bits: no seed to guess).
fn coin() -> bool {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() / 1000 % 2 == 0)
        .unwrap_or(true)
}

/// The Wilson 95% interval of `k` successes in `n` trials, as shares.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.96f64);
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt() / (1.0 + z * z / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contenders_read_as_written() {
        assert_eq!(Contender::parse("current").unwrap(), Contender::Current);
        assert_eq!(Contender::parse("remote").unwrap(), Contender::Remote);
        assert_eq!(Contender::parse("prompt:naive").unwrap(), Contender::Naive);
        assert_eq!(
            Contender::parse("preset:precise").unwrap(),
            Contender::Preset("precise".into())
        );
        assert_eq!(
            Contender::parse("/m/Qwen.GGUF").unwrap(),
            Contender::Model("/m/Qwen.GGUF".into())
        );
        for bad in ["preset:wild", "gpt-4", "prompt:fancy"] {
            assert!(Contender::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wilson_intervals_hold_the_share() {
        let (lo, hi) = wilson(7, 10);
        assert!(lo < 0.7 && 0.7 < hi && lo > 0.39 && hi < 0.9, "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        let (lo, hi) = wilson(0, 5);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.4 && hi < 0.5, "{hi}");
    }
}
