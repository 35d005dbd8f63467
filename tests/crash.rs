//! Killing the app mid-reply (kill -9) loses nothing that was shown: every piece of the reply
//! the CLI printed is in the database, the row reopens as `interrupted`, and the file passes
//! `PRAGMA integrity_check`. Uses the real binary, the real model and a real SQLite file.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use troupe::app::Troupe;
use troupe::settings::Paths;
use troupe::store::{MessageStatus, Role};

/// How many times the loop kills the app: `TROUPE_KILL_LOOPS`, 3 by default (the issue's
/// figure is taken with 100: `TROUPE_KILL_LOOPS=100 cargo test -p troupe --test crash -- --nocapture`).
fn loops() -> usize {
    std::env::var("TROUPE_KILL_LOOPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
}

#[test]
fn kill_9_mid_reply_loses_nothing_shown() {
    let dir = tempfile::tempdir().unwrap();
    // A long reply, so the kill lands mid-stream.
    std::fs::write(
        dir.path().join("settings.json"),
        r#"{"max_reply_tokens": 1000, "temperature": 0.7}"#,
    )
    .unwrap();
    let (mut killed, mut finished, mut shown_bytes) = (0, 0, 0);
    let started = Instant::now();
    for round in 0..loops() {
        // Each round continues the same conversation and kills at a different point.
        let wait_for = 1 + (round * 37) % 240;
        let (shown, ended_by_itself) = chat_and_kill(dir.path(), wait_for);
        shown_bytes += shown.len();
        let troupe = Troupe::open(Paths::at(dir.path())).unwrap();
        assert_eq!(
            troupe.store.integrity_check().unwrap(),
            "ok",
            "round {round}"
        );
        let session = troupe
            .store
            .list_sessions("sherlock-holmes")
            .unwrap()
            .remove(0);
        let msgs = troupe.store.list_messages(session.id).unwrap();
        assert_eq!(msgs.len(), 3 + 2 * round, "round {round}: {msgs:#?}");
        assert_eq!(msgs[msgs.len() - 2].role, Role::User);
        let reply = msgs.last().unwrap();
        assert!(
            reply.content.starts_with(shown.trim_end()),
            "round {round}: shown text missing from the database:\nshown: {shown:?}\nstored: {:?}",
            reply.content
        );
        // Reopened, no reply is left streaming: the one killed is marked interrupted.
        assert!(msgs.iter().all(|m| m.status != MessageStatus::Streaming));
        if ended_by_itself {
            finished += 1;
        } else {
            assert_eq!(reply.status, MessageStatus::Interrupted, "round {round}");
            killed += 1;
        }
    }
    println!(
        "figures: {} rounds in {:.0} s: {killed} killed mid-reply, {finished} ended before the kill; \
         {shown_bytes} bytes shown, 0 lost; integrity_check ok every round",
        loops(),
        started.elapsed().as_secs_f64()
    );
    assert!(killed > 0, "no round was killed mid-reply");
}

/// Runs `troupe chat`, reads what the user sees until `wait_for` bytes of the reply are on the
/// screen, then kill -9. Returns what was shown, and whether the reply ended first.
fn chat_and_kill(data: &std::path::Path, wait_for: usize) -> (String, bool) {
    let mut child = Command::new(common::troupe_bin())
        .args([
            "chat",
            "--character",
            "sherlock-holmes",
            "Tell me, in great detail, the whole story of your first case.",
        ])
        .env("TROUPE_DATA_DIR", data)
        .env("TROUPE_MODEL", common::small_model())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut shown = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ended = false;
    while shown.len() < wait_for && Instant::now() < deadline {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            ended = true;
            break;
        }
        shown.extend_from_slice(&buf[..n]);
    }
    let status = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success() || ended);
    child.wait().unwrap();
    let shown = String::from_utf8_lossy(&shown).into_owned();
    assert!(
        ended || !shown.is_empty(),
        "the reply had not started before the deadline"
    );
    (shown, ended)
}
