//! Snapshots of the whole library and the files they live in: nothing the user made is ever
//! only in one place.
//!
//! A snapshot is one zip in the data directory's `backups/` (see `archive` for the format): a
//! consistent copy of the database taken beside the live writers (`store::snapshot_file`, so a
//! reply streaming meanwhile is never blocked), the avatars it names, and a manifest with
//! counts and a SHA-256 of every member. An export is the same file with every Character as a
//! V3 card and every Session as SillyTavern chat JSONL added, for other apps.
//!
//! This module owns the files: taking (`take`), listing (`list`), rotating the automatic ones
//! (`rotate`: the newest of each of the last N days and M weeks), and unpacking one that was
//! checked from end to end (`unpack`) into a database migrated to this build. Replacing or
//! merging the live library is `app`'s (it knows whether a reply is running) and `store`'s.

mod archive;
mod chats;

pub use archive::{Body, Manifest, Member, Reason};
pub use chats::st_jsonl;

use std::path::{Path, PathBuf};

use crate::settings::{BackupSettings, Paths};
use crate::store::{self, Store};

/// The database's name inside a snapshot.
pub const DATABASE: &str = "troupe.db";

/// What went wrong; the library is as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // Not `source`: the message already says it, and a front end printing the chain would
    // say it twice.
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
    /// Not a Troupe backup, or a damaged one.
    #[error("{file} is not a Troupe backup that can be read: {problem}")]
    Foreign { file: String, problem: String },
    /// Written by a Troupe with a newer database schema.
    #[error("{file} was made by a newer Troupe ({version}): update Troupe to restore it")]
    TooNew { file: String, version: String },
    #[error("no backup called '{0}' (see `troupe backups`)")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Error {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Error {
        let error = if error.raw_os_error() == Some(28) {
            std::io::Error::other("the disk is full: free some space (the library is unchanged)")
        } else {
            error
        };
        Error::Io {
            file: path.display().to_string(),
            error,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A snapshot file and what its manifest says.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Its file name in `backups/`, which `troupe restore` takes.
    pub id: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub manifest: Manifest,
}

/// Takes a snapshot of the library into `dest`, or into `backups/` under a dated name; `extra`
/// members (an export's cards and chats) are added as given.
pub fn take(
    paths: &Paths,
    reason: Reason,
    dest: Option<&Path>,
    extra: Vec<(String, Body<'_>)>,
) -> Result<Snapshot> {
    let work = WorkDir::new(paths)?;
    let db = work.path.join(DATABASE);
    let copied = store::snapshot_file(&paths.database(), &db)?;
    let avatars = paths.avatars();
    let mut files = Vec::new();
    for name in &copied.avatars {
        for file in [name.clone(), crate::characters::avatar::thumb_name(name)] {
            let path = avatars.join(&file);
            if safe_file_name(&file) && path.is_file() && !files.iter().any(|(f, _)| f == &file) {
                files.push((file, path));
            }
        }
    }
    let mut members = vec![(DATABASE.to_string(), Body::File(&db))];
    members.extend(
        files
            .iter()
            .map(|(name, path)| (format!("avatars/{name}"), Body::File(path))),
    );
    members.extend(extra);
    let now = now_ms();
    let path = match dest {
        Some(d) => d.to_path_buf(),
        None => free_name(&paths.backups(), now, reason),
    };
    let manifest = Manifest {
        format: archive::FORMAT.into(),
        format_version: 1,
        troupe_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: copied.schema,
        created_at: now,
        reason,
        counts: copied.counts,
        members: Vec::new(),
    };
    let bytes = archive::write(&path, manifest, members)?;
    let manifest = archive::manifest(&path)?;
    Ok(Snapshot {
        id: file_name(&path),
        path,
        bytes,
        manifest,
    })
}

/// Every snapshot in `backups/`, newest first. A damaged file is left out (and logged).
pub fn list(paths: &Paths) -> Vec<Snapshot> {
    let Ok(entries) = std::fs::read_dir(paths.backups()) else {
        return Vec::new();
    };
    let mut out: Vec<Snapshot> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "zip"))
        .filter_map(|path| match archive::manifest(&path) {
            Ok(manifest) => Some(Snapshot {
                id: file_name(&path),
                bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                path,
                manifest,
            }),
            Err(e) => {
                tracing::warn!("skipping {}: {e}", path.display());
                None
            }
        })
        .collect();
    out.sort_by(|a, b| b.manifest.created_at.cmp(&a.manifest.created_at));
    out
}

/// A snapshot by its id in `backups/`, or any backup or export file by its path.
pub fn find(paths: &Paths, id_or_path: &str) -> Result<PathBuf> {
    let as_path = PathBuf::from(id_or_path);
    if as_path.is_file() {
        return Ok(as_path);
    }
    if safe_file_name(id_or_path) {
        for name in [id_or_path.to_string(), format!("{id_or_path}.zip")] {
            let p = paths.backups().join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::NotFound(id_or_path.to_string()))
}

/// Whether today (UTC) has no daily snapshot yet.
pub fn daily_due(paths: &Paths, now: i64) -> bool {
    !list(paths)
        .iter()
        .any(|s| s.manifest.reason == Reason::Daily && day(s.manifest.created_at) == day(now))
}

/// Removes the automatic snapshots the settings do not keep: of the daily ones, the newest of
/// each of the last `daily` days and of each of the last `weekly` weeks stay; of those taken
/// before a migration, a restore or a purge, the newest five each. Manual ones and exports
/// stay. Returns the files removed.
pub fn rotate(paths: &Paths, keep: BackupSettings) -> Vec<String> {
    let all = list(paths);
    let mut removed = Vec::new();
    let mut days = Vec::new();
    let mut weeks = Vec::new();
    let mut others: std::collections::HashMap<&'static str, usize> = Default::default();
    for s in &all {
        let at = s.manifest.created_at;
        let keep_it = match s.manifest.reason {
            Reason::Manual | Reason::Export => true,
            Reason::Daily => {
                let (d, w) = (day(at), day(at).div_euclid(7));
                let by_day = !days.contains(&d) && days.len() < keep.daily as usize;
                let by_week = !weeks.contains(&w) && weeks.len() < keep.weekly as usize;
                if by_day {
                    days.push(d);
                }
                if by_week {
                    weeks.push(w);
                }
                by_day || by_week
            }
            other => {
                let n = others.entry(other.as_str()).or_default();
                *n += 1;
                *n <= 5
            }
        };
        if !keep_it && std::fs::remove_file(&s.path).is_ok() {
            removed.push(s.id.clone());
        }
    }
    removed
}

/// A backup checked from end to end and unpacked: its database migrated to this build (and
/// every reply in it that was mid-stream marked interrupted), its avatars beside it. The folder
/// goes when this is dropped.
pub struct Unpacked {
    work: WorkDir,
    pub manifest: Manifest,
}

impl Unpacked {
    pub fn database(&self) -> PathBuf {
        self.work.path.join(DATABASE)
    }
    pub fn avatars(&self) -> PathBuf {
        self.work.path.join("avatars")
    }
}

/// Checks and unpacks `file` (see `Unpacked`). A newer, foreign or damaged file is refused.
pub fn unpack(paths: &Paths, file: &Path) -> Result<Unpacked> {
    let work = WorkDir::new(paths)?;
    let manifest = archive::unpack(file, &work.path)?;
    let store = Store::open(&work.path.join(DATABASE)).map_err(|e| match e {
        store::Error::TooNew { .. } => Error::TooNew {
            file: file.display().to_string(),
            version: manifest.troupe_version.clone(),
        },
        other => Error::Foreign {
            file: file.display().to_string(),
            problem: format!("its database: {other}"),
        },
    })?;
    let ok = store.integrity_check()?;
    if ok != "ok" {
        return Err(Error::Foreign {
            file: file.display().to_string(),
            problem: format!("its database is damaged: {ok}"),
        });
    }
    store.freeze_streaming()?;
    drop(store);
    Ok(Unpacked { work, manifest })
}

/// Copies avatar files from `from` into `to`: `(name there, name here)` pairs. A picture that
/// cannot be copied is logged, never fatal: the Character shows its initials.
pub fn copy_avatars(from: &Path, to: &Path, names: &[(String, String)]) {
    let _ = std::fs::create_dir_all(to);
    for (src, dst) in names {
        let thumbs = (
            crate::characters::avatar::thumb_name(src),
            crate::characters::avatar::thumb_name(dst),
        );
        for (a, b) in [(src.clone(), dst.clone()), thumbs] {
            let path = from.join(&a);
            if safe_file_name(&b) && path.is_file() {
                if let Err(e) = std::fs::copy(&path, to.join(&b)) {
                    tracing::warn!("cannot copy avatar {}: {e}", path.display());
                }
            }
        }
    }
}

/// A plain file name: no folders, nothing hidden, no way up.
pub fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255
}

/// A private scratch folder in `backups/`, removed when dropped.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn new(paths: &Paths) -> Result<WorkDir> {
        let dir = paths.backups();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let _ = crate::settings::private_dir(&dir);
        let path = dir.join(format!(".work-{}-{}", std::process::id(), now_ms()));
        std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn free_name(dir: &Path, now: i64, reason: Reason) -> PathBuf {
    let (y, mo, d, h, mi, s) = civil(now);
    let stem = format!(
        "troupe-{y:04}-{mo:02}-{d:02}T{h:02}-{mi:02}-{s:02}Z-{}",
        reason.as_str()
    );
    let mut path = dir.join(format!("{stem}.zip"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.join(format!("{stem}-{n}.zip"));
    }
    path
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 (UTC).
fn day(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// Unix ms as UTC (year, month, day, hour, minute, second): Howard Hinnant's civil_from_days.
pub(crate) fn civil(ms: i64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        // 2026-12-03T12:21:30Z
        assert_eq!(civil(1_796_300_490_000), (2026, 12, 3, 12, 21, 30));
        assert_eq!(civil(951_782_400_000), (2000, 2, 29, 0, 0, 0));
    }

    /// A snapshot file with only a manifest and a stand-in database, taken on unix day `day`.
    fn fake_snapshot(paths: &Paths, day: i64, reason: Reason) {
        let at = day * 86_400_000 + 3_600_000;
        let manifest = Manifest {
            format: archive::FORMAT.into(),
            format_version: 1,
            troupe_version: "test".into(),
            schema_version: 1,
            created_at: at,
            reason,
            counts: Default::default(),
            members: Vec::new(),
        };
        let path = free_name(&paths.backups(), at, reason);
        archive::write(
            &path,
            manifest,
            vec![(DATABASE.into(), Body::Bytes(vec![0; 10]))],
        )
        .unwrap();
    }

    #[test]
    fn rotation_keeps_the_newest_of_the_last_days_and_weeks_and_every_manual_one() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        std::fs::create_dir_all(paths.backups()).unwrap();
        // Day 20000 and 19999 fall in week 2857 (days 19999..=20005), 19998..=19992 in week
        // 2856, 19991 in week 2855.
        for k in 0..10 {
            fake_snapshot(&paths, 20_000 - k, Reason::Daily);
        }
        for k in 0..7 {
            fake_snapshot(&paths, 19_000 + k, Reason::Migration);
        }
        fake_snapshot(&paths, 10_000, Reason::Manual);
        rotate(
            &paths,
            BackupSettings {
                daily: 3,
                weekly: 3,
            },
        );
        let days = |reason: Reason| -> Vec<i64> {
            list(&paths)
                .iter()
                .filter(|s| s.manifest.reason == reason)
                .map(|s| day(s.manifest.created_at))
                .collect()
        };
        assert_eq!(days(Reason::Daily), [20_000, 19_999, 19_998, 19_991]);
        assert_eq!(
            days(Reason::Migration),
            [19_006, 19_005, 19_004, 19_003, 19_002]
        );
        assert_eq!(days(Reason::Manual), [10_000]);
    }

    #[test]
    fn names_that_could_leave_the_folder_are_not_file_names() {
        for bad in ["", "..", "../x.png", "a/b.png", ".hidden", "a\\b"] {
            assert!(!safe_file_name(bad), "{bad}");
        }
        assert!(safe_file_name("alice.png"));
    }
}
