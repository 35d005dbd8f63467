//! Evaluation as the front ends use it (`troupe eval`, the window's Evaluate tab): which
//! Characters, which setup, a second setup or model to compare with, a judge; the run itself is
//! `eval::run`, on the engine in use or a model loaded for it. Every run is kept in the store,
//! per Character, so the window can show what an edit or a model switch changed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{now_ms, Troupe};
use crate::characters::builtin;
use crate::conversation::Cancel;
use crate::engine::{self, Engine, Slot};
use crate::eval::{
    self, judge::Judge, metrics, Better, Metric, Note, Options, Problem, Progress, Report, Setup,
};
use crate::settings::{Paths, Settings};
use crate::store;

/// What to evaluate.
#[derive(Debug, Clone, Default)]
pub struct EvalRequest {
    /// Character ids; empty means the built-ins.
    pub characters: Vec<String>,
    /// `troupe`, `naive`, `no-penalty` or a sampling preset (see `eval::Setup::named`).
    pub setup: String,
    pub options: Options,
    /// Another GGUF to run instead of the engine in use.
    pub model: Option<PathBuf>,
    /// A second setup name, or a GGUF file (`*.gguf`), to run the same suites on and compare.
    pub vs: Option<String>,
    /// Where RoleBench and InCharacter's files are (`rolebench`, `bfi`).
    pub data: Option<PathBuf>,
    /// A probe script (`eval::script`).
    pub script: Option<PathBuf>,
    /// A judge: `remote` (the OpenAI-compatible server in settings) or a GGUF file.
    pub judge: Option<String>,
    pub judge_timeout: Duration,
}

/// One metric of two runs: the difference (second minus first) and its bootstrap 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub suite: eval::Suite,
    pub name: String,
    pub a: f64,
    pub b: f64,
    pub difference: f64,
    pub low: f64,
    pub high: f64,
    pub better: Better,
}

/// What `evaluate` measured: the run, the comparison run and their differences, and the
/// judge's pairwise verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub report: Report,
    pub vs: Option<Report>,
    pub differences: Vec<Difference>,
    /// The judge's pairwise shares for `vs` against `report` (win, tie, lose).
    pub pairwise: Vec<Metric>,
    pub pairwise_problems: Vec<Problem>,
    /// Each pair's verdicts in both orders.
    pub pairwise_notes: Vec<Note>,
}

/// A kept run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptRun {
    pub id: i64,
    pub created_at: i64,
    pub report: Report,
}

/// Why an evaluation cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("no setup named \"{0}\"; use troupe, naive, no-penalty or a sampling preset (balanced, precise, creative, deterministic), then valid changes after commas, e.g. troupe,repetitionWindow=0")]
    UnknownSetup(String),
    #[error(transparent)]
    Engine(#[from] engine::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Troupe {
    /// A setup by name, with the settings' sampling as its default.
    pub fn eval_setup(&self, settings: &Settings, name: &str) -> Result<Setup, EvalError> {
        let name = if name.is_empty() { "troupe" } else { name };
        Setup::named(name, &settings.sampling).ok_or_else(|| EvalError::UnknownSetup(name.into()))
    }

    /// Runs `req`: see `EvalRequest`. Problems with single items (a Character that is not
    /// there, a script that does not parse, a judge's nonsense) are in the reports; only what
    /// stops the whole run (no engine, an unknown setup) is an error. Each run is kept.
    pub async fn evaluate(
        &self,
        settings: &Settings,
        req: &EvalRequest,
        cancel: &Cancel,
        on_progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Evaluation, EvalError> {
        let setup = self.eval_setup(settings, &req.setup)?;
        let engine = match &req.model {
            Some(path) => load(Slot::new(), path).await?,
            None => self.engine.engine()?,
        };
        let (vs_setup, vs_engine) = match req.vs.as_deref() {
            None => (None, None),
            Some(v) if v.ends_with(".gguf") => (
                Some(setup.clone()),
                Some(load(Slot::new(), &PathBuf::from(v)).await?),
            ),
            Some(v) => (Some(self.eval_setup(settings, v)?), None),
        };
        let judge_engine = match req.judge.as_deref() {
            None => None,
            Some("remote") => {
                let slot = Slot::new();
                slot.connect(settings.remote.config()).await?;
                Some(slot.engine()?)
            }
            Some(path) => Some(load(Slot::new(), &PathBuf::from(path)).await?),
        };
        let mut report = self
            .run_one(engine.as_ref(), &setup, req, cancel, on_progress)
            .await?;
        let mut vs = match vs_setup {
            Some(s) => {
                let e = vs_engine.unwrap_or_else(|| engine.clone());
                Some(
                    self.run_one(e.as_ref(), &s, req, cancel, on_progress)
                        .await?,
                )
            }
            None => None,
        };
        let (mut pairwise, mut pairwise_problems, mut pairwise_notes) =
            (Vec::new(), Vec::new(), Vec::new());
        if let Some(j) = &judge_engine {
            let judge = Judge {
                engine: j.as_ref(),
                timeout: req.judge_timeout,
            };
            judge.score(&mut report).await;
            if let Some(b) = vs.as_mut() {
                judge.score(b).await;
                (pairwise, pairwise_problems, pairwise_notes) = judge.compare(&report, b).await;
            }
        }
        let differences = vs
            .as_ref()
            .map(|b| differences(&report, b, req.options.seed))
            .unwrap_or_default();
        for r in std::iter::once(&report).chain(vs.as_ref()) {
            self.keep_run(r)?;
        }
        Ok(Evaluation {
            report,
            vs,
            differences,
            pairwise,
            pairwise_problems,
            pairwise_notes,
        })
    }

    async fn run_one(
        &self,
        engine: &dyn Engine,
        setup: &Setup,
        req: &EvalRequest,
        cancel: &Cancel,
        on_progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Report, EvalError> {
        let ids: Vec<String> = if req.characters.is_empty() {
            builtin::all().into_iter().map(|c| c.id).collect()
        } else {
            req.characters.clone()
        };
        let mut characters = Vec::new();
        let mut missing = Vec::new();
        for id in ids {
            match self.store.get_character(&id) {
                Ok(c) => characters.push(c),
                Err(e) => missing.push(Problem {
                    item: id,
                    error: e.to_string(),
                }),
            }
        }
        let (script, script_problem) = match &req.script {
            None => (None, None),
            Some(path) => match eval::script::load(path) {
                Ok(s) => (Some(s), None),
                Err(e) => (
                    None,
                    Some(Problem {
                        item: format!("script {}", path.display()),
                        error: format!("{e:#}"),
                    }),
                ),
            },
        };
        let mut report = eval::run(
            engine,
            &characters,
            setup,
            &req.options,
            req.data.as_deref(),
            script.as_ref(),
            cancel,
            on_progress,
        )
        .await;
        report
            .problems
            .splice(0..0, missing.into_iter().chain(script_problem));
        Ok(report)
    }

    fn keep_run(&self, report: &Report) -> Result<(), store::Error> {
        let character = match report.characters.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        };
        let json = serde_json::to_string(report).expect("a report serialises");
        self.store.save_eval_run(
            character,
            &report.model,
            &report.setup.name,
            &json,
            now_ms(),
        )?;
        Ok(())
    }

    /// The kept runs of a Character (`None`: runs over several), newest first.
    pub fn eval_runs(
        &self,
        character_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeptRun>, store::Error> {
        Ok(self
            .store
            .eval_runs(character_id, limit)?
            .into_iter()
            .filter_map(|r| {
                let report = serde_json::from_str(&r.report).ok()?;
                Some(KeptRun {
                    id: r.id,
                    created_at: r.created_at,
                    report,
                })
            })
            .collect())
    }

    /// Forgets a kept run.
    pub fn delete_eval_run(&self, id: i64) -> Result<(), store::Error> {
        self.store.delete_eval_run(id)
    }
}

async fn load(slot: Slot, path: &std::path::Path) -> Result<Arc<dyn Engine>, engine::Error> {
    let slot = slot.with_cache_dir(Paths::model_cache());
    slot.load(path.to_path_buf()).await?;
    slot.engine()
}

/// Every metric the two reports share, with the bootstrap interval of its difference.
pub fn differences(a: &Report, b: &Report, seed: u64) -> Vec<Difference> {
    a.metrics
        .iter()
        .filter_map(|ma| {
            let mb = b.metric(ma.suite, &ma.name)?;
            let (difference, low, high) =
                metrics::bootstrap_difference(&ma.samples, &mb.samples, seed)?;
            Some(Difference {
                suite: ma.suite,
                name: ma.name.clone(),
                a: ma.value,
                b: mb.value,
                difference,
                low,
                high,
                better: ma.better,
            })
        })
        .collect()
}
