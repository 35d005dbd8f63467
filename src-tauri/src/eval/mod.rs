//! Evaluation: how good a Character is on this machine's model, measured (`troupe eval`, the
//! window's Evaluate tab). CharacterGLM's metrics and its long-conversation finding, turned
//! into suites that run the real conversation code against a scratch library:
//!
//! - `memory`: facts told early in a companionship Session, then enough conversation to push
//!   them far past the context, then questions about them (`memory.rs`);
//! - `consistency`: identity and backstory questions, early and late in a Session, and breaks
//!   of character (`consistency.rs`);
//! - `repetition`: a 20-turn chat's distinct n-grams, longest repeat and loops
//!   (`repetition.rs`);
//! - `rolebench`, `bfi`: the outside benchmarks in the user's data folder (`fixtures.rs`);
//! - `speed`: first word and tokens/s of every reply the other suites asked for.
//!
//! Everything runs in an in-memory `Store` made for the run (`probe::Bench`), so an evaluation
//! never touches the user's library; only the report is kept (`Store::save_eval_run`). Runs are
//! reproducible: every reply uses the same sampling seed, and the scripted parts are fixed.
//! A failing item (a Character without a profile, a judge that answers nonsense) becomes a
//! `Problem` naming it; the other items are still scored. Metrics are defined, with their
//! sources, in docs/EVALUATION.md. This module never imports `app`: the facade calls it.

mod consistency;
mod fixtures;
pub mod judge;
mod memory;
pub mod metrics;
mod probe;
mod repetition;
pub mod script;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::characters::Character;
use crate::conversation::Cancel;
use crate::engine::{Engine, Sampling};

/// A group of measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    Memory,
    Consistency,
    Repetition,
    Rolebench,
    Bfi,
    Speed,
    /// A person's own probes (`--script`).
    Script,
    /// Scores from a judge model (`--judge`).
    Judge,
}

impl Suite {
    pub const ALL: [Suite; 6] = [
        Suite::Memory,
        Suite::Consistency,
        Suite::Repetition,
        Suite::Rolebench,
        Suite::Bfi,
        Suite::Speed,
    ];
    /// The suites that need no outside data: what the window runs.
    pub const QUICK: [Suite; 4] = [
        Suite::Memory,
        Suite::Consistency,
        Suite::Repetition,
        Suite::Speed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Suite::Memory => "memory",
            Suite::Consistency => "consistency",
            Suite::Repetition => "repetition",
            Suite::Rolebench => "rolebench",
            Suite::Bfi => "bfi",
            Suite::Speed => "speed",
            Suite::Script => "script",
            Suite::Judge => "judge",
        }
    }

    pub fn parse(s: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|x| x.as_str() == s.trim())
    }

    /// Whether it runs on the benchmark's own characters rather than the chosen ones.
    pub fn uses_fixtures(self) -> bool {
        matches!(self, Suite::Rolebench | Suite::Bfi)
    }
}

/// What is measured: a way of prompting and a sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// Shown in reports: "troupe", "naive", a preset's name, "no-penalty"…
    pub name: String,
    /// The paper's baseline prompt instead of Troupe's (see `conversation::naive`).
    pub naive: bool,
    pub sampling: Sampling,
}

impl Setup {
    /// Troupe's prompt engine with `sampling`.
    pub fn troupe(sampling: Sampling) -> Setup {
        Setup {
            name: "troupe".into(),
            naive: false,
            sampling,
        }
    }

    /// A setup by name: `troupe` (the default sampling), `naive` (the paper's baseline, same
    /// sampling), `no-penalty` (the default sampling without a repetition penalty or DRY) or a
    /// sampling preset's name (`precise`, `creative`, …), then any sampling changes after
    /// commas (`troupe,repetitionWindow=0,temperature=0.6`). `None` for an unknown name or a
    /// bad change.
    pub fn named(name: &str, default: &Sampling) -> Option<Setup> {
        let mut parts = name.split(',').map(str::trim);
        let mut setup = Setup::troupe(default.clone());
        match parts.next()? {
            "troupe" | "default" => {}
            "naive" => setup.naive = true,
            "no-penalty" => {
                setup.sampling.repetition_penalty = 1.0;
                setup.sampling.dry_multiplier = 0.0;
            }
            preset => setup.sampling = crate::engine::sampling::preset(preset)?,
        }
        let changes: Vec<String> = parts.map(String::from).collect();
        setup.sampling = setup.sampling.with_changes(&changes).ok()?;
        setup.sampling.validate().ok()?;
        setup.name = name.into();
        Some(setup)
    }
}

/// How much is run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    pub suites: Vec<Suite>,
    /// The sampling seed of every reply.
    pub seed: u64,
    /// The longest reply, in tokens.
    pub max_tokens: usize,
    /// Turns of the repetition suite's chat.
    pub turns: usize,
    /// RoleBench roles, and questions per role.
    pub roles: usize,
    pub questions: usize,
    /// InCharacter characters interviewed by the `bfi` suite.
    pub bfi_characters: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            suites: Suite::QUICK.to_vec(),
            seed: 42,
            max_tokens: 64,
            turns: 20,
            roles: 4,
            questions: 5,
            bfi_characters: 4,
        }
    }
}

/// Whether a larger value of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
    /// A figure, not a score (speed is reported where lower and higher both happen).
    Neither,
}

/// One measured quantity: the mean of its samples (one per item: a fact, a question, a reply,
/// a Character). The samples are kept so two runs can be compared with an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub suite: Suite,
    /// e.g. "fact_in_prompt", "late.breaks".
    pub name: String,
    pub value: f64,
    pub samples: Vec<f64>,
    pub better: Better,
    /// "share", "ms", "tokens/s", "words", "1-5"…
    pub unit: String,
}

/// An item that could not be scored, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// What it was: "walt-okafor: consistency", "script my-probe.json", "judge: engagement".
    pub item: String,
    pub error: String,
}

/// A line worth reading next to the figures: a reply, a check that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub item: String,
    pub text: String,
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub model: String,
    pub setup: Setup,
    pub options: Options,
    /// The Characters the chosen suites ran on (ids).
    pub characters: Vec<String>,
    pub metrics: Vec<Metric>,
    pub problems: Vec<Problem>,
    pub notes: Vec<Note>,
    /// Per Character, every exchange the suites held (probes included), for a judge.
    #[serde(default)]
    pub transcripts: Vec<(String, Vec<(String, String)>)>,
    pub seconds: f64,
    /// Whether it was stopped before the end (what was measured stands).
    pub cancelled: bool,
}

impl Report {
    pub fn metric(&self, suite: Suite, name: &str) -> Option<&Metric> {
        self.metrics
            .iter()
            .find(|m| m.suite == suite && m.name == name)
    }
}

/// How far a run is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    /// What runs now: "walt-okafor: memory".
    pub item: String,
}

/// Samples as they are measured, in the order their metrics first appear.
#[derive(Default)]
pub(crate) struct Scores {
    order: Vec<(Suite, String)>,
    samples: BTreeMap<(Suite, String), (Vec<f64>, Better, String)>,
    pub problems: Vec<Problem>,
    pub notes: Vec<Note>,
}

impl Scores {
    pub fn add(&mut self, suite: Suite, name: &str, value: f64, better: Better, unit: &str) {
        let key = (suite, name.to_string());
        if !self.samples.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.samples
            .entry(key)
            .or_insert_with(|| (Vec::new(), better, unit.to_string()))
            .0
            .push(value);
    }

    pub fn flag(&mut self, suite: Suite, name: &str, yes: bool) {
        self.add(
            suite,
            name,
            if yes { 1.0 } else { 0.0 },
            Better::Higher,
            "share",
        );
    }

    pub fn problem(&mut self, item: impl Into<String>, error: impl std::fmt::Display) {
        self.problems.push(Problem {
            item: item.into(),
            error: error.to_string(),
        });
    }

    pub fn note(&mut self, item: impl Into<String>, text: impl Into<String>) {
        self.notes.push(Note {
            item: item.into(),
            text: text.into(),
        });
    }

    fn metrics(self) -> (Vec<Metric>, Vec<Problem>, Vec<Note>) {
        let mut samples = self.samples;
        let metrics = self
            .order
            .into_iter()
            .filter_map(|key| {
                let (values, better, unit) = samples.remove(&key)?;
                Some(Metric {
                    suite: key.0,
                    name: key.1,
                    value: metrics::mean(&values),
                    samples: values,
                    better,
                    unit,
                })
            })
            .collect();
        (metrics, self.problems, self.notes)
    }
}

/// Where the outside benchmarks' files are: `rolebench/` and `incharacter/` under it.
pub type DataDir = std::path::PathBuf;

/// Runs `opts.suites` with `setup` on `characters` (and, for `rolebench` and `bfi`, on the
/// benchmarks' own characters from `data`), then `script`, reporting progress as it goes.
/// `cancel` stops it between replies; what was measured until then is reported.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    engine: &dyn Engine,
    characters: &[Character],
    setup: &Setup,
    opts: &Options,
    data: Option<&std::path::Path>,
    script: Option<&script::Script>,
    cancel: &Cancel,
    on_progress: &mut (dyn FnMut(Progress) + Send),
) -> Report {
    let started = std::time::Instant::now();
    let per_character: Vec<Suite> = opts
        .suites
        .iter()
        .copied()
        .filter(|s| !s.uses_fixtures() && *s != Suite::Speed)
        .collect();
    let fixture_suites: Vec<Suite> = opts
        .suites
        .iter()
        .copied()
        .filter(|s| s.uses_fixtures())
        .collect();
    let mut r = Running {
        engine,
        setup,
        opts,
        cancel,
        on_progress,
        done: 0,
        total: characters.len() * per_character.len()
            + fixture_suites.len()
            + usize::from(script.is_some()),
        scores: Scores::default(),
        speed: Vec::new(),
        transcripts: Vec::new(),
    };
    for (index, c) in characters.iter().enumerate() {
        r.character(index, c, &per_character).await;
    }
    for suite in fixture_suites {
        r.fixture(suite, data).await;
    }
    if let Some(script) = script {
        r.script(script, characters).await;
    }
    if opts.suites.contains(&Suite::Speed) {
        r.speed();
    }
    (r.on_progress)(Progress {
        done: r.done,
        total: r.total,
        item: String::new(),
    });
    let (metrics, problems, notes) = r.scores.metrics();
    Report {
        transcripts: r.transcripts,
        model: engine.info().name.clone(),
        setup: setup.clone(),
        options: opts.clone(),
        characters: characters.iter().map(|c| c.id.clone()).collect(),
        metrics,
        problems,
        notes,
        seconds: started.elapsed().as_secs_f64(),
        cancelled: cancel.is_cancelled(),
    }
}

/// A run in progress: what it measured so far and where it is.
struct Running<'a, 'p> {
    engine: &'a dyn Engine,
    setup: &'a Setup,
    opts: &'a Options,
    cancel: &'a Cancel,
    on_progress: &'p mut (dyn FnMut(Progress) + Send),
    done: usize,
    total: usize,
    scores: Scores,
    speed: Vec<crate::conversation::ReplyStats>,
    transcripts: Vec<(String, Vec<(String, String)>)>,
}

impl Running<'_, '_> {
    fn step(&mut self, item: String) -> bool {
        if self.cancel.is_cancelled() {
            return false;
        }
        (self.on_progress)(Progress {
            done: self.done,
            total: self.total,
            item,
        });
        true
    }

    /// The per-Character suites on `c`, in one scratch library (the long Session serves both
    /// memory and consistency).
    async fn character(&mut self, index: usize, c: &Character, suites: &[Suite]) {
        let mut bench = match probe::Bench::new(self.engine, c, self.setup, self.opts, self.cancel)
        {
            Ok(b) => b,
            Err(e) => {
                self.scores.problem(c.id.clone(), format!("{e:#}"));
                self.done += suites.len();
                return;
            }
        };
        for &suite in suites {
            if !self.step(format!("{}: {}", c.id, suite.as_str())) {
                break;
            }
            let scores = &mut self.scores;
            let result = match suite {
                Suite::Memory => memory::run(&mut bench, index, scores).await,
                Suite::Consistency => consistency::run(&mut bench, index, scores).await,
                Suite::Repetition => repetition::run(&mut bench, self.opts.turns, scores).await,
                _ => Ok(()),
            };
            if let Err(e) = result {
                if !self.cancel.is_cancelled() {
                    scores.problem(format!("{}: {}", c.id, suite.as_str()), format!("{e:#}"));
                }
            }
            self.done += 1;
        }
        self.speed.append(&mut bench.speed);
        self.transcripts
            .push((c.id.clone(), std::mem::take(&mut bench.transcript)));
    }

    /// A suite on its benchmark's own characters.
    async fn fixture(&mut self, suite: Suite, data: Option<&std::path::Path>) {
        if !self.step(suite.as_str().into()) {
            return;
        }
        let (e, s, o, c) = (self.engine, self.setup, self.opts, self.cancel);
        let result = match data {
            None => Err(anyhow::anyhow!(
                "needs the benchmark data: pass --data DIR (a folder with rolebench/ and incharacter/)"
            )),
            Some(dir) if suite == Suite::Rolebench => {
                fixtures::rolebench(e, s, o, dir, c, &mut self.scores, &mut self.speed).await
            }
            Some(dir) => fixtures::bfi(e, s, o, dir, c, &mut self.scores, &mut self.speed).await,
        };
        if let Err(e) = result {
            self.scores.problem(suite.as_str(), format!("{e:#}"));
        }
        self.done += 1;
    }

    async fn script(&mut self, script: &script::Script, characters: &[Character]) {
        if !self.step(format!("script {}", script.name)) {
            return;
        }
        let (e, s, o, c) = (self.engine, self.setup, self.opts, self.cancel);
        script::run(e, script, characters, s, o, c, &mut self.scores).await;
        self.done += 1;
    }

    /// The speed suite: the figures of every reply the others asked for.
    fn speed(&mut self) {
        for s in &self.speed {
            self.scores.add(
                Suite::Speed,
                "first_token_ms",
                s.first_token_ms as f64,
                Better::Lower,
                "ms",
            );
            if s.reply_tokens > 1 {
                self.scores.add(
                    Suite::Speed,
                    "tokens_per_second",
                    s.tokens_per_second,
                    Better::Higher,
                    "tokens/s",
                );
            }
        }
        if self.speed.is_empty() {
            self.scores.problem(
                "speed",
                "no reply was measured: run it with another suite (it times their replies)",
            );
        }
    }
}
