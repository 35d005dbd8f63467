//! Wire types of the arena (`ui/src/api/arena.ts`): a contender to choose, the two replies as
//! they stream, a pick revealed, and the results per pair.

use std::collections::BTreeMap;

use serde::Serialize;
use ts_rs::TS;

use super::Message;
use crate::app::{self, vocabulary as domain};

/// A contender the window offers: what to send back (`spec`) and what to show.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ArenaContender {
    pub spec: String,
    pub label: String,
}

/// One side's event as the two replies stream: `side` is "A" or "B".
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "event", content = "data", rename_all = "camelCase")]
pub enum ArenaEvent {
    /// The person's message is stored; A begins.
    Started { user: Message },
    /// The side begins writing.
    Side { side: String },
    /// More text of the side writing now.
    Text { side: String, text: String },
}

impl ArenaEvent {
    pub fn from_turn(side: &str, e: domain::TurnEvent) -> Vec<ArenaEvent> {
        match e {
            domain::TurnEvent::Started { user, .. } => vec![
                ArenaEvent::Started { user: user.into() },
                ArenaEvent::Side { side: side.into() },
            ],
            domain::TurnEvent::Rewriting { .. } => vec![ArenaEvent::Side { side: side.into() }],
            domain::TurnEvent::Text(text) => vec![ArenaEvent::Text {
                side: side.into(),
                text,
            }],
            // Group rounds are not compared.
            domain::TurnEvent::Said { .. } | domain::TurnEvent::Speaking { .. } => vec![],
        }
    }
}

/// A compared turn: the reply (its two versions A and B) and whether a side stopped early.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "ArenaTurn")]
pub struct ArenaTurnJson {
    pub turn_id: i64,
    pub reply: Message,
    pub a: String,
    pub b: String,
    pub a_failed: Option<String>,
    pub b_failed: Option<String>,
    /// The two models could not be held at once: the one in use was set aside meanwhile.
    pub parked: bool,
}

impl From<app::Compared> for ArenaTurnJson {
    fn from(c: app::Compared) -> Self {
        let version = |i: usize| c.reply.swipes.get(i).cloned().unwrap_or_default();
        ArenaTurnJson {
            turn_id: c.turn_id,
            a: version(0),
            b: version(1),
            reply: c.reply.into(),
            a_failed: c.a_failed,
            b_failed: c.b_failed,
            parked: c.parked,
        }
    }
}

/// A pick, with who wrote which.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ArenaPicked {
    pub choice: String,
    pub a: String,
    pub b: String,
}

/// Wins, ties and losses of the first contender, with 95% intervals on the win and loss shares.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ArenaTally {
    pub n: usize,
    pub win: usize,
    pub tie: usize,
    pub lose: usize,
    pub both_bad: usize,
    pub win_low: f64,
    pub win_high: f64,
    pub lose_low: f64,
    pub lose_high: f64,
}

impl From<&app::Tally> for ArenaTally {
    fn from(t: &app::Tally) -> Self {
        let (win_low, win_high) = app::wilson(t.win, t.n());
        let (lose_low, lose_high) = app::wilson(t.lose, t.n());
        ArenaTally {
            n: t.n(),
            win: t.win,
            tie: t.tie,
            lose: t.lose,
            both_bad: t.both_bad,
            win_low,
            win_high,
            lose_low,
            lose_high,
        }
    }
}

/// One pair: overall and per "category/scenario".
#[derive(Debug, Clone, Serialize, TS)]
pub struct ArenaPair {
    pub first: String,
    pub second: String,
    pub overall: ArenaTally,
    pub cells: BTreeMap<String, ArenaTally>,
}

impl From<app::PairResult> for ArenaPair {
    fn from(p: app::PairResult) -> Self {
        ArenaPair {
            overall: (&p.overall).into(),
            cells: p.cells.iter().map(|(k, t)| (k.clone(), t.into())).collect(),
            first: p.first,
            second: p.second,
        }
    }
}
