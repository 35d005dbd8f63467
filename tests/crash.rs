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

#[test]
fn kill_9_mid_reply_loses_nothing_shown() {
    let dir = tempfile::tempdir().unwrap();
    // A long reply, so the kill lands mid-stream.
    std::fs::write(
        dir.path().join("settings.json"),
        r#"{"max_reply_tokens": 1000, "temperature": 0.7}"#,
    )
    .unwrap();
    let mut child = Command::new(common::troupe_bin())
        .args([
            "chat",
            "--character",
            "sherlock-holmes",
            "Tell me, in great detail, the whole story of your first case.",
        ])
        .env("TROUPE_DATA_DIR", dir.path())
        .env("TROUPE_MODEL", common::model())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Read what the user saw until a good part of a reply is on screen, then kill -9.
    let mut stdout = child.stdout.take().unwrap();
    let mut shown = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(120);
    while shown.len() < 120 && Instant::now() < deadline {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        shown.extend_from_slice(&buf[..n]);
    }
    let status = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
    let shown = String::from_utf8_lossy(&shown).into_owned();
    assert!(
        shown.len() >= 40,
        "the reply had not started before the deadline: {shown:?}"
    );

    let troupe = Troupe::open(Paths::at(dir.path())).unwrap();
    assert_eq!(troupe.store.integrity_check().unwrap(), "ok");
    let session = troupe
        .store
        .list_sessions("sherlock-holmes")
        .unwrap()
        .remove(0);
    let msgs = troupe.store.list_messages(session.id).unwrap();
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    assert_eq!(msgs[1].role, Role::User);
    let reply = &msgs[2];
    assert_eq!(reply.status, MessageStatus::Interrupted);
    assert!(
        reply.content.starts_with(shown.trim_end()),
        "shown text missing from the database:\nshown: {shown:?}\nstored: {:?}",
        reply.content
    );
}
