//! The person as the judge, from the command line as a user scripts it: the real binary, the
//! real model, a fresh SQLite library. A Session is rated on the seven metrics with the model
//! that wrote its replies, rated again (replaced), refused out of range or incomplete without
//! changing what was stored; a reply takes a thumb, a message of the person's does not; the
//! averages per model add up.

mod common;

use std::path::Path;

fn ok(data: &Path, args: &[&str]) -> String {
    common::cli_ok(data, args).0
}

fn refused(data: &Path, args: &[&str]) -> String {
    common::cli_refused(data, args)
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
    // The last message's line (a reply may run over several lines; only a message's first
    // line starts with its id).
    let reply = history
        .lines()
        .filter_map(|l| l.split('\t').next()?.parse::<i64>().ok())
        .last()
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

/// `troupe export-data` on a library seeded through the app with the real model: rated and
/// unrated Sessions, a thumb down, a reply written again and settled on, one still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_data_is_what_the_person_judged_and_nothing_else() {
    use troupe::app::vocabulary::{Scenario, Settings, TurnEvent};
    use troupe::app::{Rewrite, Troupe};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let t = Troupe::open(troupe::settings::Paths::at(data)).unwrap();
    let mut settings = Settings::default();
    settings.sampling.max_tokens = 16;
    t.start_engine(&settings, Some(&common::small_model()))
        .await
        .unwrap();
    let mut quiet = |_: TurnEvent| {};

    // Rated: two replies, the second thumbed down.
    let rated = t
        .start_session("walt-okafor", Scenario::ChitChat, None)
        .unwrap();
    let (first, _) = t
        .send(&settings, rated.id, "Evening, Walt.", &mut quiet)
        .await
        .unwrap();
    let (second, _) = t
        .send(&settings, rated.id, "Busy night?", &mut quiet)
        .await
        .unwrap();
    t.rate_session(
        rated.id,
        troupe::app::scores([4, 4, 4, 4, 5, 4, 4]).unwrap(),
        "",
    )
    .unwrap();
    t.set_thumb(second.id, -1).unwrap();

    // Unrated, but a reply written again, its first version chosen, and the talk gone on.
    let swiped = t
        .start_session("marisol-vega", Scenario::ChitChat, None)
        .unwrap();
    let (reply, _) = t
        .send(&settings, swiped.id, "What's fresh today?", &mut quiet)
        .await
        .unwrap();
    let regenerated = settings.clone();
    let (again, _) = t
        .rewrite(&regenerated, reply.id, Rewrite::Regenerate, &mut quiet)
        .await
        .unwrap();
    assert_eq!(again.swipes.len(), 2);
    let kept = t.select_swipe(reply.id, 0).unwrap();
    t.send(&settings, swiped.id, "I'll take two.", &mut quiet)
        .await
        .unwrap();
    // Written again but not settled: the last message, the person may still be choosing.
    let (open, _) = t
        .send(&settings, swiped.id, "Anything else?", &mut quiet)
        .await
        .unwrap();
    t.rewrite(&settings, open.id, Rewrite::Regenerate, &mut quiet)
        .await
        .unwrap();

    let sft = data.join("sft.jsonl");
    let dpo = data.join("dpo.jsonl");
    let said = ok(
        data,
        &[
            "export-data",
            "--sft",
            sft.to_str().unwrap(),
            "--dpo",
            dpo.to_str().unwrap(),
        ],
    );
    assert_eq!(
        said,
        format!(
            "1 SFT rows -> {}\n1 DPO rows -> {}\n",
            sft.display(),
            dpo.display()
        )
    );
    let rows = |p: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every row parses"))
            .collect()
    };

    // SFT: the first reply of the rated Session only, as the model saw it plus the reply.
    let sft_rows = rows(&sft);
    let record = t.prompt_record(first.id).unwrap().unwrap();
    let mut want = serde_json::to_value(&record.messages).unwrap();
    want.as_array_mut()
        .unwrap()
        .push(serde_json::json!({"role": "assistant", "content": first.content.trim()}));
    assert_eq!(sft_rows, vec![serde_json::json!({ "messages": want })]);

    // DPO: the settled reply, chosen as picked and rejected the other version.
    let dpo_rows = rows(&dpo);
    assert_eq!(dpo_rows.len(), 1);
    let row = &dpo_rows[0];
    assert_eq!(row["chosen"][0]["content"], kept.swipes[0].trim());
    assert_eq!(row["rejected"][0]["content"], kept.swipes[1].trim());
    assert_eq!(
        row["prompt"],
        serde_json::to_value(t.prompt_record(reply.id).unwrap().unwrap().messages).unwrap()
    );
    assert_eq!(
        row["prompt"].as_array().unwrap().last().unwrap()["content"],
        "What's fresh today?"
    );

    // Filters: a bar above the rating (SFT's), another Character, a day to come: empty files,
    // said so, not an error.
    let said = ok(
        data,
        &[
            "export-data",
            "--sft",
            sft.to_str().unwrap(),
            "--min-rating",
            "5",
        ],
    );
    assert!(said.contains("nothing matched"), "{said}");
    assert!(rows(&sft).is_empty());
    for filter in [
        &["--character", "ada-lovelace"][..],
        &["--since", "2999-01-01"],
    ] {
        let mut args = vec![
            "export-data",
            "--sft",
            sft.to_str().unwrap(),
            "--dpo",
            dpo.to_str().unwrap(),
        ];
        args.extend(filter);
        let said = ok(data, &args);
        assert!(said.contains("nothing matched"), "{filter:?}: {said}");
        assert!(rows(&sft).is_empty() && rows(&dpo).is_empty(), "{filter:?}");
    }
    assert!(refused(data, &["export-data", "--sft", "x", "--min-rating", "9"]).contains("1 to 5"));
    assert!(
        refused(data, &["export-data", "--sft", "x", "--since", "soon"]).contains("YYYY-MM-DD")
    );
}
