//! Nothing lost: snapshots, restore, export and import of the whole library, and the daily
//! upkeep (a snapshot a day, then the trash's 30-day purge, which never runs without one).
//!
//! The rules live here: a restore first checks the whole file, then waits for no reply (it
//! refuses while one is written), snapshots the library as it is, and only then replaces it;
//! an import merges and never overwrites (`store::merge`).

use std::path::Path;

use super::{now_ms, Troupe, TRASH_DAYS};
use crate::backup::{self, Body, Reason, Snapshot};
use crate::settings::BackupSettings;
use crate::store::{self, Counts, MergeReport};

/// What went wrong with a backup, restore, export or import; the library is as it was.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Backup(#[from] backup::Error),
    #[error("a reply is being written: stop it or let it finish, then restore")]
    Replying,
}

impl From<store::Error> for BackupError {
    fn from(e: store::Error) -> Self {
        BackupError::Backup(e.into())
    }
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// What the restored library holds.
    pub counts: Counts,
    /// The snapshot of the library as it was just before, to go back to.
    pub before: Snapshot,
}

/// What the start-up upkeep did.
#[derive(Debug, Clone, Default)]
pub struct Upkeep {
    pub snapshot: Option<String>,
    pub rotated: Vec<String>,
    pub purged: bool,
}

impl Troupe {
    /// A snapshot now, into `backups/` (or `dest`).
    pub fn back_up(&self, dest: Option<&Path>) -> Result<Snapshot, BackupError> {
        Ok(backup::take(&self.paths, Reason::Manual, dest, Vec::new())?)
    }

    /// The snapshots in `backups/`, newest first.
    pub fn backups(&self) -> Vec<Snapshot> {
        backup::list(&self.paths)
    }

    /// How much the library holds now.
    pub fn counts(&self) -> Counts {
        self.store.counts()
    }

    /// Replaces the library with a snapshot or an export (an id from `backups`, or a file),
    /// after checking all of it and snapshotting the library as it is.
    pub fn restore(&self, id_or_path: &str) -> Result<Restored, BackupError> {
        let file = backup::find(&self.paths, id_or_path)?;
        let unpacked = backup::unpack(&self.paths, &file)?;
        if self.activity.replying() {
            return Err(BackupError::Replying);
        }
        let before = backup::take(&self.paths, Reason::Restore, None, Vec::new())?;
        let names: Vec<(String, String)> = std::fs::read_dir(unpacked.avatars())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.contains(".thumb."))
            .map(|n| (n.clone(), n))
            .collect();
        backup::copy_avatars(&unpacked.avatars(), &self.paths.avatars(), &names);
        self.store.restore_from(&unpacked.database())?;
        Ok(Restored {
            counts: self.store.counts(),
            before,
        })
    }

    /// Everything in one file another Troupe (or, for the cards and chats, another app) reads:
    /// the snapshot, every Character as a V3 PNG card, every Session as SillyTavern JSONL.
    pub fn export_all(&self, dest: &Path) -> Result<Snapshot, BackupError> {
        let mut extra: Vec<(String, Body<'_>)> = Vec::new();
        let user = self
            .store
            .list_personas()?
            .into_iter()
            .find(|p| p.is_default)
            .map(|p| p.name)
            .unwrap_or_else(|| "User".into());
        let mut characters = self.store.list_characters()?;
        characters.extend(self.store.list_trash()?);
        for c in &characters {
            match self.export_card(&c.id, super::CardFormat::Png) {
                Ok(bytes) => extra.push((format!("cards/{}.png", c.id), Body::Bytes(bytes))),
                Err(e) => tracing::warn!("export: {e}"),
            }
            for s in self.store.list_sessions(&c.id)? {
                let messages = self.store.list_messages(s.id)?;
                let text = backup::st_jsonl(&user, &c.name, s.created_at, &messages);
                extra.push((
                    format!("chats/{}/{}.jsonl", c.id, s.id),
                    Body::Bytes(text.into_bytes()),
                ));
            }
        }
        Ok(backup::take(
            &self.paths,
            Reason::Export,
            Some(dest),
            extra,
        )?)
    }

    /// Merges an export (or a snapshot) into the library: what exists stays, what is new is
    /// added, what differs is kept side by side and reported.
    pub fn import_all(&self, file: &Path) -> Result<MergeReport, BackupError> {
        let unpacked = backup::unpack(&self.paths, file)?;
        let report = self.store.merge_from(&unpacked.database())?;
        backup::copy_avatars(&unpacked.avatars(), &self.paths.avatars(), &report.avatars);
        Ok(report)
    }

    /// `import_all` for a file the window was handed as bytes: staged under its own name in a
    /// private folder (so errors name it), then merged.
    pub fn import_all_bytes(&self, name: &str, bytes: &[u8]) -> Result<MergeReport, BackupError> {
        let name = Path::new(name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| backup::safe_file_name(n))
            .unwrap_or_else(|| "upload.zip".into());
        let dir = self.paths.backups().join(format!(".upload-{}", now_ms()));
        let staged = dir.join(name);
        let result = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(&staged, bytes))
            .map_err(|e| BackupError::Backup(backup::Error::io(&staged, e)))
            .and_then(|_| self.import_all(&staged));
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// The window's start-up chores, run off its main thread: the day's snapshot when none was
    /// taken today, rotation, and the trash's purge of what waited `TRASH_DAYS` (only with a
    /// snapshot of today behind it). The CLI never runs it.
    pub fn upkeep(&self, keep: BackupSettings) -> Result<Upkeep, BackupError> {
        let mut done = Upkeep::default();
        let now = now_ms();
        if backup::daily_due(&self.paths, now) {
            done.snapshot = Some(backup::take(&self.paths, Reason::Daily, None, Vec::new())?.id);
        }
        let cutoff = now - TRASH_DAYS * 24 * 3600 * 1000;
        if self.store.anything_expired(cutoff)? {
            if done.snapshot.is_none() {
                done.snapshot =
                    Some(backup::take(&self.paths, Reason::Purge, None, Vec::new())?.id);
            }
            self.purge(cutoff)?;
            done.purged = true;
        }
        done.rotated = backup::rotate(&self.paths, keep);
        Ok(done)
    }

    /// Removes for good what went to the trash before `cutoff`.
    pub(super) fn purge(&self, cutoff: i64) -> Result<usize, store::Error> {
        let gone = self.store.purge_trash(cutoff, now_ms())?;
        super::remove_avatar_files(&self.paths.avatars(), &gone);
        self.store.purge_sessions(cutoff)?;
        self.store.purge_deleted(cutoff)?;
        Ok(gone.len())
    }
}
