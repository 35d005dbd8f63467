//! The one file format of a snapshot and of an export: a zip whose `manifest.json` names every
//! other member with its size and SHA-256, beside `troupe.db` (a database snapshot),
//! `avatars/…` and, in an export, `cards/…` and `chats/…`.
//!
//! Writing goes to `<dest>.part` and is renamed into place once complete, so a full disk leaves
//! no half file under the real name. Reading trusts nothing: the manifest is capped in size,
//! every member is streamed to disk through its hash with at most its declared size read (a
//! zip bomb stops there), names are checked before they become paths, and a member that is
//! missing, longer, shorter or different from what the manifest says fails the whole read.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Error;
use crate::store::Counts;

/// The `format` a manifest must carry.
pub const FORMAT: &str = "troupe-backup";
const MANIFEST: &str = "manifest.json";
const MANIFEST_MAX: u64 = 8 << 20;
/// More than any library; a manifest claiming more is refused before anything is written.
const TOTAL_MAX: u64 = 64 << 30;

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The first start of a day.
    Daily,
    /// Before the database was migrated to a newer schema.
    Migration,
    /// Before a restore replaced the library.
    Restore,
    /// Before the trash was emptied of what waited its 30 days.
    Purge,
    /// Asked for (`troupe backup`, Back up now).
    Manual,
    /// Export everything.
    Export,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Daily => "daily",
            Reason::Migration => "migration",
            Reason::Restore => "restore",
            Reason::Purge => "purge",
            Reason::Manual => "manual",
            Reason::Export => "export",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What a snapshot or an export holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub troupe_version: String,
    pub schema_version: i64,
    /// Unix ms.
    pub created_at: i64,
    pub reason: Reason,
    pub counts: Counts,
    pub members: Vec<Member>,
}

/// A member's bytes: in memory, or a file streamed from disk.
pub enum Body<'a> {
    Bytes(Vec<u8>),
    File(&'a Path),
}

/// Writes the zip: the members in order, then the manifest naming them. `manifest.members` is
/// filled in here.
pub fn write(
    dest: &Path,
    mut manifest: Manifest,
    members: Vec<(String, Body<'_>)>,
) -> Result<u64, Error> {
    let part = PathBuf::from(format!("{}.part", dest.display()));
    let result = write_to(&part, &mut manifest, members);
    match result {
        Ok(()) => {
            std::fs::rename(&part, dest).map_err(|e| Error::io(dest, e))?;
            Ok(std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

fn write_to(
    part: &Path,
    manifest: &mut Manifest,
    members: Vec<(String, Body<'_>)>,
) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::io(part, e);
    let file = File::create(part).map_err(io)?;
    let _ = crate::settings::private_file(part);
    let mut zip = zip::ZipWriter::new(Part::new(file));
    let (y, mo, d, h, mi, s) = super::civil(manifest.created_at);
    let when =
        zip::DateTime::from_date_and_time(y as u16, mo as u8, d as u8, h as u8, mi as u8, s as u8)
            .unwrap_or_default();
    let deflate = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(when)
        .large_file(true);
    let stored = deflate.compression_method(zip::CompressionMethod::Stored);
    manifest.members.clear();
    for (name, body) in members {
        // Pictures are compressed already.
        let opts = if name.ends_with(".png") {
            stored
        } else {
            deflate
        };
        zip.start_file(name.as_str(), opts).map_err(zip_err(part))?;
        let mut hasher = Sha256::new();
        let bytes = match body {
            Body::Bytes(b) => {
                hasher.update(&b);
                zip.write_all(&b).map_err(io)?;
                b.len() as u64
            }
            Body::File(path) => {
                let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
                copy_hashing(&mut f, &mut zip, &mut hasher, u64::MAX).map_err(io)?
            }
        };
        manifest.members.push(Member {
            path: name,
            bytes,
            sha256: hex(&hasher.finalize()),
        });
    }
    zip.start_file(MANIFEST, deflate).map_err(zip_err(part))?;
    zip.write_all(&serde_json::to_vec_pretty(manifest).expect("a manifest serialises"))
        .map_err(io)?;
    let file = zip.finish().map_err(zip_err(part))?;
    file.into_file().sync_all().map_err(io)?;
    Ok(())
}

/// The file being written, which after its first failure (a full disk) swallows what follows:
/// the failure reaches `write_to`, which gives up and removes the file, and the zip writer,
/// dropped unfinished, finishes into nothing instead of printing the same failure to stderr.
struct Part {
    file: File,
    failed: bool,
}

impl Part {
    fn new(file: File) -> Part {
        Part {
            file,
            failed: false,
        }
    }
    fn into_file(self) -> File {
        self.file
    }
    fn check<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }
}

impl Write for Part {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Ok(buf.len());
        }
        let r = self.file.write(buf);
        self.check(r)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.failed {
            return Ok(());
        }
        let r = self.file.flush();
        self.check(r)
    }
}

impl std::io::Seek for Part {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        if self.failed {
            return Ok(0);
        }
        let r = self.file.seek(pos);
        self.check(r)
    }
}

/// Reads only the manifest (the Backups list).
pub fn manifest(path: &Path) -> Result<Manifest, Error> {
    let mut zip = open(path)?;
    read_manifest(path, &mut zip)
}

/// Checks the whole file and unpacks its members into `into` (a new, empty folder): the
/// database as `troupe.db`, the avatars under `avatars/`; `cards/` and `chats/` (for other
/// apps) are checked but not unpacked.
pub fn unpack(path: &Path, into: &Path) -> Result<Manifest, Error> {
    let mut zip = open(path)?;
    let manifest = read_manifest(path, &mut zip)?;
    if !manifest.members.iter().any(|m| m.path == super::DATABASE) {
        return Err(Error::Foreign {
            file: path.display().to_string(),
            problem: "it holds no database".into(),
        });
    }
    let total: u64 = manifest.members.iter().map(|m| m.bytes).sum();
    if total > TOTAL_MAX {
        return Err(Error::Foreign {
            file: path.display().to_string(),
            problem: format!("it claims {total} bytes, more than any library"),
        });
    }
    for m in &manifest.members {
        let target = member_path(path, into, &m.path)?;
        let mut entry = zip.by_name(&m.path).map_err(|e| Error::Foreign {
            file: path.display().to_string(),
            problem: format!("{}: {e}", m.path),
        })?;
        let mut hasher = Sha256::new();
        let n = match &target {
            Some(t) => {
                if let Some(dir) = t.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                }
                let mut out = File::create(t).map_err(|e| Error::io(t, e))?;
                copy_hashing(&mut entry, &mut out, &mut hasher, m.bytes + 1)
                    .map_err(|e| Error::io(t, e))?
            }
            None => copy_hashing(&mut entry, &mut std::io::sink(), &mut hasher, m.bytes + 1)
                .map_err(|e| damaged(path, &m.path, e.to_string()))?,
        };
        if n != m.bytes || hex(&hasher.finalize()) != m.sha256 {
            return Err(damaged(
                path,
                &m.path,
                "it is not what the manifest says (size or SHA-256)".into(),
            ));
        }
    }
    Ok(manifest)
}

fn open(path: &Path) -> Result<zip::ZipArchive<File>, Error> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    zip::ZipArchive::new(file).map_err(|e| Error::Foreign {
        file: path.display().to_string(),
        problem: format!("not a readable zip ({e})"),
    })
}

fn read_manifest(path: &Path, zip: &mut zip::ZipArchive<File>) -> Result<Manifest, Error> {
    let foreign = |problem: String| Error::Foreign {
        file: path.display().to_string(),
        problem,
    };
    let entry = zip
        .by_name(MANIFEST)
        .map_err(|_| foreign("it has no manifest.json: not a Troupe backup".into()))?;
    let mut text = Vec::new();
    entry
        .take(MANIFEST_MAX)
        .read_to_end(&mut text)
        .map_err(|e| foreign(format!("manifest.json: {e}")))?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| foreign(format!("manifest.json: {e}")))?;
    if manifest.format != FORMAT {
        return Err(foreign(format!(
            "its format is '{}', not a Troupe backup",
            manifest.format
        )));
    }
    if manifest.schema_version > crate::store::KNOWN_SCHEMA {
        return Err(Error::TooNew {
            file: path.display().to_string(),
            version: manifest.troupe_version.clone(),
        });
    }
    Ok(manifest)
}

/// Where a member is unpacked: `None` for members only checked. A name that could leave the
/// folder is refused.
fn member_path(file: &Path, into: &Path, name: &str) -> Result<Option<PathBuf>, Error> {
    if name == super::DATABASE {
        return Ok(Some(into.join(name)));
    }
    let Some(avatar) = name.strip_prefix("avatars/") else {
        return Ok(None);
    };
    if !super::safe_file_name(avatar) {
        return Err(damaged(
            file,
            name,
            "an avatar name that is not a plain file name".into(),
        ));
    }
    Ok(Some(into.join("avatars").join(avatar)))
}

fn damaged(file: &Path, member: &str, problem: String) -> Error {
    Error::Foreign {
        file: file.display().to_string(),
        problem: format!("{member}: {problem}"),
    }
}

fn zip_err(path: &Path) -> impl Fn(zip::result::ZipError) -> Error + '_ {
    move |e| match e {
        zip::result::ZipError::Io(io) => Error::io(path, io),
        other => Error::io(path, std::io::Error::other(other.to_string())),
    }
}

/// Copies at most `limit` bytes, hashing them; returns how many.
fn copy_hashing(
    from: &mut impl Read,
    to: &mut impl Write,
    hasher: &mut Sha256,
    limit: u64,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut from = from.take(limit);
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
