//! Wire types of group Sessions (`ui/src/api/groups.ts`): the group as its view shows it —
//! name, how the next speaker is chosen, and each member with their Character and state.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::CharacterSummary;
use crate::app::vocabulary::{self as domain, Group as DomainGroup};
use crate::app::CastMember;

/// How a group's next speaker is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(rename = "Strategy")]
pub enum StrategyJson {
    Natural,
    List,
    Pooled,
    Manual,
}

impl From<domain::Strategy> for StrategyJson {
    fn from(s: domain::Strategy) -> Self {
        match s {
            domain::Strategy::Natural => StrategyJson::Natural,
            domain::Strategy::List => StrategyJson::List,
            domain::Strategy::Pooled => StrategyJson::Pooled,
            domain::Strategy::Manual => StrategyJson::Manual,
        }
    }
}

impl From<StrategyJson> for domain::Strategy {
    fn from(s: StrategyJson) -> Self {
        match s {
            StrategyJson::Natural => domain::Strategy::Natural,
            StrategyJson::List => domain::Strategy::List,
            StrategyJson::Pooled => domain::Strategy::Pooled,
            StrategyJson::Manual => domain::Strategy::Manual,
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct GroupMember {
    pub character_id: String,
    /// Null when the Character was deleted for good (its lines keep their text).
    pub character: Option<CharacterSummary>,
    /// In the room now.
    pub present: bool,
    /// Never chosen to speak; asked by name, they still answer.
    pub muted: bool,
    /// The Character is in the trash: they cannot speak until restored.
    pub in_trash: bool,
}

/// A group Session's own part.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub session_id: i64,
    pub name: String,
    pub strategy: StrategyJson,
    /// In their order; the first is the host.
    pub members: Vec<GroupMember>,
}

impl Group {
    pub fn new(group: DomainGroup, cast: Vec<CastMember>) -> Group {
        Group {
            session_id: group.session_id,
            name: group.name,
            strategy: group.strategy.into(),
            members: cast
                .into_iter()
                .map(|CastMember { member, character }| GroupMember {
                    character_id: member.character_id,
                    in_trash: character.as_ref().is_some_and(|c| c.deleted_at.is_some()),
                    character: character.map(Into::into),
                    present: member.present,
                    muted: member.muted,
                })
                .collect(),
        }
    }
}
