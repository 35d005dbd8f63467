//! The headless CLI, run as a user would: the real binary, a fresh data directory, the real
//! model. It lists characters id first, streams a reply into the same database the window uses,
//! continues the session, and answers bad input with a clear message and no crash.

mod common;

use std::process::{Command, Output};

fn troupe(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(common::troupe_bin())
        .args(args)
        .env("TROUPE_DATA_DIR", data)
        .env("TROUPE_MODEL", common::model())
        .output()
        .expect("troupe runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn characters_are_listed_id_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = troupe(dir.path(), &["characters"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let ids: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    for id in ["ada-lovelace", "marisol-vega", "sherlock-holmes"] {
        assert!(ids.contains(&id), "{stdout}");
    }
    assert!(
        stdout.contains("sherlock-holmes\tfictional\tSherlock Holmes"),
        "{stdout}"
    );
}

#[test]
fn chat_streams_a_reply_stores_it_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.json"),
        r#"{"max_reply_tokens": 32}"#,
    )
    .unwrap();
    let out = troupe(
        dir.path(),
        &[
            "chat",
            "--character",
            "marisol-vega",
            "Good morning! What smells so good?",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reply = text(&out.stdout);
    assert!(
        !reply.trim().is_empty(),
        "no reply; stderr: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("[session 1 · Marisol Vega · Chit-chat]"),
        "{}",
        text(&out.stderr)
    );

    // The same session goes on, and the history holds both turns.
    let out = troupe(
        dir.path(),
        &["chat", "--character", "marisol-vega", "And how is Dolores?"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let history = text(&troupe(dir.path(), &["history", "--session", "1"]).stdout);
    assert!(
        history.starts_with("Marisol Vega: *dusts flour"),
        "{history}"
    );
    assert!(
        history.contains("You: Good morning! What smells so good?\nMarisol Vega: "),
        "{history}"
    );
    // What was stored is what was printed (up to its last full sentence when the reply ran out
    // of tokens mid-sentence).
    let stored = history
        .split("You: Good morning! What smells so good?\nMarisol Vega: ")
        .nth(1)
        .and_then(|rest| rest.split("\nYou: ").next())
        .expect("the stored reply");
    assert!(!stored.trim().is_empty());
    assert!(
        reply.trim().starts_with(stored.trim()),
        "stored reply differs from the printed one:\n{stored}\n---\n{reply}"
    );
    assert!(history.contains("You: And how is Dolores?"), "{history}");
    let sessions = text(&troupe(dir.path(), &["sessions", "--character", "marisol-vega"]).stdout);
    assert!(sessions.starts_with("1\tchit_chat\t5\t"), "{sessions}");

    // --new starts another session in the chosen scenario, opening with that scenario's greeting.
    let out = troupe(
        dir.path(),
        &[
            "chat",
            "--character",
            "marisol-vega",
            "--new",
            "--scenario",
            "interview",
            "Hi",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let history = text(&troupe(dir.path(), &["history", "--session", "2"]).stdout);
    assert!(
        history.starts_with("Marisol Vega: An interview? With me?"),
        "{history}"
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();

    let out = troupe(dir.path(), &["chat", "--character", "marisol-vega", "   "]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the message is empty"),
        "{}",
        text(&out.stderr)
    );

    let out = troupe(dir.path(), &["chat", "--character", "nobody", "hi"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no character with id 'nobody'"),
        "{}",
        text(&out.stderr)
    );

    // A 100,000-character message: refused with the reason, nothing stored, no crash.
    let huge = "tell me more about bread ".repeat(4000);
    let out = troupe(dir.path(), &["chat", "--character", "marisol-vega", &huge]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("the message is too long"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let history = text(&troupe(dir.path(), &["history", "--session", "1"]).stdout);
    assert_eq!(history.lines().count(), 1, "only the greeting: {history}");

    // A model file that is garbage: a clear error naming the file and the fix.
    let garbage = dir.path().join("model.gguf");
    std::fs::write(&garbage, b"not a model").unwrap();
    let out = Command::new(common::troupe_bin())
        .args(["chat", "--character", "marisol-vega", "--model"])
        .arg(&garbage)
        .arg("hello")
        .env("TROUPE_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("model.gguf is not a usable GGUF model"),
        "{err}"
    );
    assert!(err.contains("choose another file"), "{err}");
}
