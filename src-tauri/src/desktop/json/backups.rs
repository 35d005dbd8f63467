//! Wire types of the backups area (`ui/src/api/backups.ts`): the snapshots Settings → Backups
//! lists, and what an import-all did.

use serde::Serialize;
use ts_rs::TS;

use crate::app::vocabulary::{self as domain};

/// How much a library (or a snapshot of it) holds.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(rename = "Counts")]
pub struct CountsJson {
    pub characters: i64,
    pub sessions: i64,
    pub messages: i64,
    pub memories: i64,
    pub personas: i64,
}

impl From<domain::Counts> for CountsJson {
    fn from(c: domain::Counts) -> Self {
        CountsJson {
            characters: c.characters,
            sessions: c.sessions,
            messages: c.messages,
            memories: c.memories,
            personas: c.personas,
        }
    }
}

/// One snapshot in `backups/`.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    /// Its file name; what `restore_backup` takes.
    pub id: String,
    /// Where it is, for the person who wants to copy it elsewhere.
    pub path: String,
    /// Unix ms.
    pub created_at: i64,
    /// daily, migration, restore, purge, manual or export.
    pub reason: String,
    pub bytes: u64,
    pub troupe_version: String,
    pub counts: CountsJson,
}

impl From<domain::Snapshot> for Backup {
    fn from(s: domain::Snapshot) -> Self {
        Backup {
            id: s.id,
            path: s.path.display().to_string(),
            created_at: s.manifest.created_at,
            reason: s.manifest.reason.as_str().to_string(),
            bytes: s.bytes,
            troupe_version: s.manifest.troupe_version,
            counts: s.manifest.counts.into(),
        }
    }
}

/// What importing everything did.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ImportAllResult {
    pub characters_added: usize,
    pub sessions_added: usize,
    pub messages_added: usize,
    pub unchanged: usize,
    /// Each thing kept side by side, in words.
    pub conflicts: Vec<String>,
}

impl From<domain::MergeReport> for ImportAllResult {
    fn from(r: domain::MergeReport) -> Self {
        ImportAllResult {
            characters_added: r.characters_added,
            sessions_added: r.sessions_added,
            messages_added: r.messages_added,
            unchanged: r.unchanged,
            conflicts: r.conflicts,
        }
    }
}
