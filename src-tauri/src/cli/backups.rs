//! The library as a whole from the command line: `troupe backup`, `troupe backups`,
//! `troupe restore`, `troupe export-all`, `troupe import-all`. Each calls `app::Troupe` and
//! prints what happened; a refused file is named with its problem and changes nothing.

use std::path::{Path, PathBuf};

use crate::app::vocabulary::{Counts, Snapshot};
use crate::app::Troupe;

/// `troupe backup [--out FILE]`: a snapshot now; prints its file.
pub fn backup(troupe: &Troupe, out: Option<PathBuf>) -> anyhow::Result<()> {
    let s = troupe.back_up(out.as_deref())?;
    println!("{}\t{}", s.path.display(), describe(&s));
    Ok(())
}

/// `troupe backups`: one line per snapshot, newest first: id, when (UTC), why, size, counts.
pub fn list(troupe: &Troupe) -> anyhow::Result<()> {
    let all = troupe.backups();
    if all.is_empty() {
        eprintln!("no snapshots yet; `troupe backup` takes one");
    }
    for s in all {
        println!("{}\t{}", s.id, describe(&s));
    }
    Ok(())
}

/// `troupe restore FILE|ID`.
pub fn restore(troupe: &Troupe, what: &str) -> anyhow::Result<()> {
    let r = troupe.restore(what)?;
    println!("restored: {}", counts(&r.counts));
    eprintln!(
        "the library as it was is kept in {} (`troupe restore {}` goes back)",
        r.before.path.display(),
        r.before.id
    );
    Ok(())
}

/// `troupe export-all FILE`.
pub fn export_all(troupe: &Troupe, out: &Path) -> anyhow::Result<()> {
    let s = troupe.export_all(out)?;
    println!("{}\t{}", s.path.display(), describe(&s));
    Ok(())
}

/// `troupe import-all FILE`: what was added, and each conflict kept side by side.
pub fn import_all(troupe: &Troupe, file: &Path) -> anyhow::Result<()> {
    let r = troupe.import_all(file)?;
    println!(
        "added {} characters, {} sessions, {} messages, {} memories, {} personas; {} already here",
        r.characters_added,
        r.sessions_added,
        r.messages_added,
        r.memories_added,
        r.personas_added,
        r.unchanged
    );
    for c in &r.conflicts {
        println!("kept side by side: {c}");
    }
    Ok(())
}

fn describe(s: &Snapshot) -> String {
    let m = &s.manifest;
    format!(
        "{}\t{}\t{:.1} MB\t{}",
        crate::app::utc_time(m.created_at),
        m.reason.as_str(),
        s.bytes as f64 / 1e6,
        counts(&m.counts)
    )
}

fn counts(c: &Counts) -> String {
    format!(
        "{} characters, {} sessions, {} messages, {} memories, {} personas",
        c.characters, c.sessions, c.messages, c.memories, c.personas
    )
}
