//! The person as the judge, from the command line as a user scripts it: the real binary, the
//! real model, a fresh SQLite library. A Session is rated on the seven metrics with the model
//! that wrote its replies, rated again (replaced), refused out of range or incomplete without
//! changing what was stored; a reply takes a thumb, a message of the person's does not; the
//! averages per model add up.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn troupe(data: &Path, args: &[&str]) -> Output {
    Command::new(common::troupe_bin())
        .args(args)
        .env("TROUPE_DATA_DIR", data)
        .env("TROUPE_MODEL", common::small_model())
        .env("TROUPE_KEYRING", "off")
        .output()
        .expect("troupe runs")
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = troupe(data, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(data: &Path, args: &[&str]) -> String {
    let out = troupe(data, args);
    assert!(!out.status.success(), "{args:?} should be refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const SEVEN: [&str; 14] = [
    "--consistency",
    "4",
    "--human-likeness",
    "3",
    "--engagement",
    "5",
    "--quality",
    "4",
    "--safety",
    "5",
    "--correctness",
    "2",
    "--overall",
    "4",
];

#[test]
fn a_session_is_rated_with_its_model_and_replies_take_thumbs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::write(
        data.join("settings.json"),
        r#"{"sampling": {"maxTokens": 24}}"#,
    )
    .unwrap();
    let model = common::small_model()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    ok(
        data,
        &["chat", "--character", "walt-okafor", "Evening, Walt."],
    );
    let session = "1";
    assert_eq!(
        ok(data, &["rate", "--session", session]),
        "session 1 is not rated yet\n"
    );

    let mut args = vec!["rate", "--session", session];
    args.extend(SEVEN);
    args.extend(["--comment", "Warm, but got my name wrong."]);
    let shown = ok(data, &args);
    assert_eq!(
        shown,
        format!(
            "session 1\tmodel {model}\nconsistency\t4\nhuman_likeness\t3\nengagement\t5\n\
             quality\t4\nsafety\t5\ncorrectness\t2\noverall\t4\n\
             comment\tWarm, but got my name wrong.\n"
        )
    );
    assert_eq!(ok(data, &["rate", "--session", session]), shown);

    // Out of range or incomplete: refused, and the rating stays as it was.
    let mut bad = args.clone();
    bad[4] = "6";
    assert!(
        refused(data, &bad).contains("consistency must be a whole number from 1 to 5, not 6"),
        "{}",
        refused(data, &bad)
    );
    let err = refused(
        data,
        &[
            "rate",
            "--session",
            session,
            "--overall",
            "5",
            "--safety",
            "5",
        ],
    );
    assert!(
        err.contains(
            "missing --consistency, --human-likeness, --engagement, --quality, --correctness"
        ),
        "{err}"
    );
    assert_eq!(ok(data, &["rate", "--session", session]), shown);
    assert!(refused(data, &["rate", "--session", "99", "--overall", "5"]).contains("99"));

    // Rated again: replaced, not added.
    let mut again = vec!["rate", "--session", session];
    again.extend(SEVEN);
    again[4] = "5";
    ok(data, &again);
    assert!(ok(data, &["rate", "--session", session]).contains("consistency\t5\n"));

    // Thumbs: on the Character's reply, not on the person's message.
    let history = ok(data, &["history", "--session", session, "--ids"]);
    let id_of = |prefix: &str| -> String {
        history
            .lines()
            .find(|l| {
                l.split_once('\t')
                    .is_some_and(|(_, rest)| rest.starts_with(prefix))
            })
            .and_then(|l| l.split('\t').next())
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in {history}"))
            .to_string()
    };
    let mine = id_of("You: Evening, Walt.");
    let greeting = history.lines().next().unwrap().split('\t').next().unwrap();
    assert!(refused(data, &["thumb", greeting, "up"]).contains("a greeting comes from the card"));
    let reply = history
        .lines()
        .last()
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_string();
    assert_ne!(mine, reply);
    // The reply's prompt record says what wrote it and holds the messages the model saw.
    let db = rusqlite::Connection::open(data.join("troupe.db")).unwrap();
    let record: String = db
        .query_row(
            "SELECT record FROM prompts WHERE message_id = ?1",
            [reply.parse::<i64>().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["model"], model.as_str());
    assert_eq!(record["prompting"], "troupe");
    assert_eq!(record["sampling"]["maxTokens"], 24);
    let sent = record["messages"].as_array().unwrap();
    assert_eq!(sent[0]["role"], "system");
    assert_eq!(sent.last().unwrap()["role"], "user");
    assert_eq!(sent.last().unwrap()["content"], "Evening, Walt.");
    ok(data, &["thumb", &reply, "up"]);
    assert!(refused(data, &["thumb", &mine, "down"]).contains("only the Character's replies"));

    let averages = ok(data, &["ratings", "--character", "walt-okafor"]);
    let rows: Vec<&str> = averages.lines().collect();
    assert_eq!(rows.len(), 2, "{averages}");
    assert_eq!(
        rows[1],
        format!("{model}\t1\t5.00\t3.00\t5.00\t4.00\t5.00\t2.00\t4.00\t1\t0")
    );
    ok(data, &["thumb", &reply, "none"]);
    assert!(ok(data, &["ratings", "--character", "walt-okafor"]).ends_with("\t0\t0\n"));
}
