//! Wire types of the Evaluate tab (`ui/src/api/eval.ts`): a kept run, its metrics and
//! problems, and the progress of a run.

use serde::Serialize;
use ts_rs::TS;

use crate::app::vocabulary as domain;

/// One metric of a run.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct EvalMetric {
    /// memory, consistency, repetition, speed…
    pub suite: String,
    pub name: String,
    pub value: f64,
    /// How many items it averages.
    pub n: usize,
    /// higher, lower or neither.
    pub better: String,
    /// share, ms, tokens/s, words, messages…
    pub unit: String,
}

/// An item a run could not score.
#[derive(Debug, Clone, Serialize, TS)]
pub struct EvalProblem {
    pub item: String,
    pub error: String,
}

/// A kept evaluation run.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct EvalRun {
    pub id: i64,
    /// Unix ms.
    pub created_at: i64,
    pub model: String,
    /// troupe, naive, a preset…
    pub setup: String,
    pub seconds: f64,
    /// Stopped before the end; what was measured stands.
    pub cancelled: bool,
    pub metrics: Vec<EvalMetric>,
    pub problems: Vec<EvalProblem>,
}

impl EvalRun {
    pub fn new(id: i64, created_at: i64, r: domain::Report) -> EvalRun {
        EvalRun {
            id,
            created_at,
            model: r.model,
            setup: r.setup.name,
            seconds: r.seconds,
            cancelled: r.cancelled,
            metrics: r
                .metrics
                .into_iter()
                .map(|m| EvalMetric {
                    suite: m.suite.as_str().into(),
                    n: m.samples.len(),
                    name: m.name,
                    value: m.value,
                    better: match m.better {
                        domain::Better::Higher => "higher",
                        domain::Better::Lower => "lower",
                        domain::Better::Neither => "neither",
                    }
                    .into(),
                    unit: m.unit,
                })
                .collect(),
            problems: r
                .problems
                .into_iter()
                .map(|p| EvalProblem {
                    item: p.item,
                    error: p.error,
                })
                .collect(),
        }
    }
}

/// How far a running evaluation is.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum EvalEvent {
    Progress {
        done: usize,
        total: usize,
        /// What runs now: "walt-okafor: memory".
        item: String,
    },
}
