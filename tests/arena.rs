//! The arena from the command line, as a user scripts a comparison: the real binary, the real
//! model, a fresh library. A turn writes two versions of one reply, anonymously as A and B; a
//! pick shows the chosen one, says who wrote which and can be changed; the report adds picks
//! up per pair, by category and scenario. Bad input: the same contender twice, an unknown one,
//! a pick with nothing to pick, a contender that cannot load (nothing is sent).

mod common;

use std::path::Path;
use std::process::Command;

fn ok(data: &Path, args: &[&str]) -> (String, String) {
    common::cli_ok(data, args)
}

fn refused(data: &Path, args: &[&str]) -> String {
    common::cli_refused(data, args)
}

#[test]
fn two_contenders_write_a_reply_and_the_pick_decides_what_stays() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::write(
        data.join("settings.json"),
        r#"{"sampling": {"maxTokens": 20}}"#,
    )
    .unwrap();
    let model = common::small_model()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let precise = format!("{model} · precise");

    assert!(refused(data, &["arena", "pick", "--session", "1", "A"]).contains("no session"));
    ok(data, &["chat", "--character", "priya-raman", "Hello!"]);
    assert!(
        refused(data, &["arena", "pick", "--session", "1", "A"]).contains("compare a reply first")
    );
    assert!(
        refused(data, &["arena", "--session", "1", "--vs", "current", "Hi"]).contains("the same")
    );
    assert!(
        refused(data, &["arena", "--session", "1", "--vs", "gpt-9", "Hi"])
            .contains("a contender is")
    );

    let mut labels = Vec::new();
    let mut kept = Vec::new();
    for (i, (message, choice)) in [
        ("What are you reading?", "b"),
        ("Any tips?", "a"),
        ("Thanks!", "bad"),
    ]
    .iter()
    .enumerate()
    {
        let (stdout, stderr) = ok(
            data,
            &["arena", "--session", "1", "--vs", "preset:precise", message],
        );
        assert!(
            stdout.starts_with("A: ") && stdout.contains("\n\nB: "),
            "{stdout}"
        );
        assert!(!stdout.contains(&model), "anonymous until picked: {stdout}");
        assert!(stderr.contains("arena pick --session 1"), "{stderr}");
        let history = ok(data, &["history", "--session", "1"]).0;
        assert!(history.contains(&format!("You: {message}\n")), "{history}");
        // One reply in the conversation, whichever was picked; both kept as its versions.
        assert_eq!(history.matches(&format!("You: {message}")).count(), 1);

        assert!(
            refused(data, &["arena", "pick", "--session", "1", "C"]).contains("A, B, tie or bad")
        );
        let (said, _) = ok(data, &["arena", "pick", "--session", "1", choice]);
        let (a, b) = said
            .trim()
            .split_once(": A was ")
            .and_then(|(_, rest)| rest.split_once(", B was "))
            .unwrap_or_else(|| panic!("{said}"));
        assert!(
            [a, b].contains(&model.as_str()) && [a, b].contains(&precise.as_str()),
            "{said}"
        );
        labels.push((a.to_string(), choice.to_string()));
        // The conversation goes on with the picked version (stored up to its last whole
        // sentence, so a prefix of what was printed).
        let last = ok(data, &["history", "--session", "1"]).0;
        let stored = last
            .split(&format!("You: {message}\nPriya Raman: "))
            .nth(1)
            .and_then(|rest| rest.split("\nYou: ").next())
            .unwrap()
            .trim()
            .to_string();
        let (a_text, b_text) = stdout.split_once("\n\nB: ").unwrap();
        let (a_text, b_text) = (a_text.trim_start_matches("A: ").trim(), b_text.trim());
        let (picked, other) = if *choice == "b" {
            (b_text, a_text)
        } else {
            (a_text, b_text)
        };
        assert!(
            picked.starts_with(&stored) && (picked == other || !other.starts_with(&stored) || stored.is_empty()),
            "turn {i}: the conversation should go on with {choice}\nstored: {stored}\npicked: {picked}\nother: {other}"
        );
        if *choice != "bad" && a_text != b_text {
            kept.push(stored.clone());
        }
    }

    // The report: from the first contender's side (alphabetical), one win, one loss, one tie
    // (both bad), all in daily_life/chit_chat.
    let report: serde_json::Value =
        serde_json::from_str(&ok(data, &["arena", "report", "--json"]).0).unwrap();
    let pair = &report["pairwise"][0];
    assert!(
        report["pointwise"].as_array().unwrap().is_empty(),
        "nothing rated here"
    );
    assert_eq!(pair["first"], model.as_str());
    assert_eq!(pair["second"], precise.as_str());
    let wins = labels
        .iter()
        .filter(|(a, c)| (c == "a" && *a == model) || (c == "b" && *a != model))
        .count();
    assert_eq!(pair["overall"]["win"], wins);
    assert_eq!(pair["overall"]["lose"], 2 - wins);
    assert_eq!(pair["overall"]["tie"], 1);
    assert_eq!(pair["overall"]["both_bad"], 1);
    assert_eq!(pair["cells"]["daily_life/chit_chat"]["tie"], 1);
    let text = ok(data, &["arena", "report"]).0;
    assert!(text.contains("daily_life/chit_chat\tn=3\twin "), "{text}");

    // As training data: a DPO row per A-or-B pick (none for "both bad"), chosen the version
    // kept; the conversation picked in counts for SFT, every reply of it but the bad one.
    let (sft, dpo) = (data.join("sft.jsonl"), data.join("dpo.jsonl"));
    ok(
        data,
        &[
            "export-data",
            "--sft",
            sft.to_str().unwrap(),
            "--dpo",
            dpo.to_str().unwrap(),
        ],
    );
    let rows = |p: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let chosen: Vec<String> = rows(&dpo)
        .iter()
        .map(|r| r["chosen"][0]["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(chosen, kept);
    assert!(rows(&dpo)
        .iter()
        .all(|r| r["rejected"][0]["content"] != r["chosen"][0]["content"]
            && r["prompt"].as_array().unwrap()[0]["role"] == "system"));
    assert_eq!(
        rows(&sft).len(),
        3,
        "the chat's reply and the two compared ones not called both bad"
    );

    // Two models that cannot be held at once (forced here: both fit this machine): the one in
    // use is set aside while the other writes, both sides still write, and it is said.
    let out = Command::new(common::troupe_bin())
        .args(["arena", "--session", "1", "--vs"])
        .arg(common::model())
        .arg("One more thing?")
        .env("TROUPE_DATA_DIR", data)
        .env("TROUPE_MODEL", common::small_model())
        .env("TROUPE_KEYRING", "off")
        .env("TROUPE_ARENA_PARK", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("set aside while the other wrote"),
        "{stderr}"
    );
    let (a_text, b_text) = stdout.split_once("\n\nB: ").expect("two replies");
    assert!(a_text.len() > 3 && b_text.trim().len() > 1, "{stdout}");
    let said = ok(data, &["arena", "pick", "--session", "1", "a"]).0;
    assert!(
        said.contains(&format!(
            "{}",
            common::model().file_name().unwrap().to_string_lossy()
        )),
        "{said}"
    );

    // A contender that cannot load refuses the turn: nothing is sent, nothing changes.
    let before = ok(data, &["history", "--session", "1"]).0;
    let err = refused(
        data,
        &[
            "arena",
            "--session",
            "1",
            "--vs",
            "/no/such/model.gguf",
            "Still there?",
        ],
    );
    assert!(err.contains("/no/such/model.gguf does not exist"), "{err}");
    assert_eq!(ok(data, &["history", "--session", "1"]).0, before);
    let err = refused(
        data,
        &[
            "arena",
            "--session",
            "1",
            "--with",
            "remote",
            "--vs",
            "/m.gguf",
            "Hi",
        ],
    );
    assert!(err.contains("only one contender"), "{err}");
}
