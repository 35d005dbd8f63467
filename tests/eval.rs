//! `troupe eval` as a person uses it: the memory suite on the real default model, Troupe's
//! prompt engine against the paper's baseline, the runs kept and the library untouched; then,
//! with a scripted engine where the words do not matter, the bad inputs (a script that does not
//! parse, a Character without a profile, an unknown Character, a judge that answers garbage or
//! never answers), each a named problem while the other items are still scored.

mod common;

use std::sync::Arc;
use std::time::Duration;

use troupe::app::vocabulary::{EvalOptions, Paths, Report, Suite};
use troupe::app::{Cancel, EvalRequest, Troupe};
use troupe::engine::scripted::ScriptedEngine;
use troupe::engine::Slot;
use troupe::eval::judge::Judge;

fn open(dir: &std::path::Path) -> Troupe {
    Troupe::open(Paths::at(dir)).unwrap()
}

fn value(r: &Report, suite: Suite, name: &str) -> f64 {
    r.metric(suite, name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", r.metrics))
        .value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_real_model_troupe_keeps_facts_the_baseline_loses() {
    let dir = tempfile::tempdir().unwrap();
    let troupe = open(dir.path());
    let settings = troupe.settings();
    troupe
        .start_engine(&settings, Some(&common::small_model()))
        .await
        .unwrap();
    let req = EvalRequest {
        characters: vec!["walt-okafor".into()],
        setup: "troupe".into(),
        vs: Some("naive".into()),
        options: EvalOptions {
            suites: vec![Suite::Memory, Suite::Speed],
            max_tokens: 24,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut seen = Vec::new();
    let e = troupe
        .evaluate(&settings, &req, &Cancel::new(), &mut |p| seen.push(p.item))
        .await
        .unwrap();
    let naive = e.vs.as_ref().unwrap();
    assert!(e.report.problems.is_empty(), "{:?}", e.report.problems);
    // The two facts were told at the start and the conversation went past the whole context:
    // Troupe's prompt still carries them, the baseline's does not.
    assert_eq!(value(&e.report, Suite::Memory, "fact_in_prompt"), 1.0);
    assert_eq!(value(naive, Suite::Memory, "fact_in_prompt"), 0.0);
    assert!(value(&e.report, Suite::Memory, "messages_before_questions") > 100.0);
    assert!(value(&e.report, Suite::Speed, "tokens_per_second") > 0.0);
    let d = e
        .differences
        .iter()
        .find(|d| d.name == "fact_in_prompt")
        .unwrap();
    assert_eq!(d.difference, -1.0);
    assert!(seen.iter().any(|i| i == "walt-okafor: memory"), "{seen:?}");
    // Both runs are kept for the Character; its own conversations are untouched.
    let kept = troupe.eval_runs(Some("walt-okafor"), 10).unwrap();
    assert_eq!(kept.len(), 2);
    assert!(troupe
        .store
        .list_sessions("walt-okafor")
        .unwrap()
        .is_empty());
}

/// A Troupe whose engine streams `reply`.
fn scripted(dir: &std::path::Path, reply: &[&str]) -> Troupe {
    let mut troupe = open(dir);
    troupe.engine = Slot::with_engine(Arc::new(
        ScriptedEngine::new(reply, Duration::ZERO).with_context_length(4096),
    ));
    troupe
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_items_are_named_and_the_rest_is_scored() {
    let dir = tempfile::tempdir().unwrap();
    let troupe = scripted(
        dir.path(),
        &["I ", "am ", "Walt ", "Okafor, ", "my ", "friend."],
    );
    // A Character that is only a name.
    let bare: troupe::app::vocabulary::Character = serde_json::from_value(serde_json::json!({
        "id": "just-a-name", "name": "Just A Name", "category": "daily_life"
    }))
    .unwrap();
    troupe.store.insert_character(&bare, 0).unwrap();
    let script = dir.path().join("probe.json");
    std::fs::write(
        &script,
        "{\"checks\": [{\"ask\": \"Who?\", \"expect\": [\"Walt\"] },]}",
    )
    .unwrap();
    let req = EvalRequest {
        characters: vec!["walt-okafor".into(), "just-a-name".into(), "nobody".into()],
        setup: "troupe".into(),
        script: Some(script.clone()),
        options: EvalOptions {
            suites: vec![Suite::Consistency, Suite::Repetition, Suite::Rolebench],
            turns: 3,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = troupe
        .evaluate(&troupe.settings(), &req, &Cancel::new(), &mut |_| {})
        .await
        .unwrap();
    let r = &e.report;
    let problem = |item: &str| -> String {
        r.problems
            .iter()
            .find(|p| p.item.contains(item))
            .unwrap_or_else(|| panic!("no problem for {item}: {:?}", r.problems))
            .error
            .clone()
    };
    assert!(problem("nobody").contains("nobody"));
    assert!(problem("probe.json").contains("not a probe script"));
    assert!(problem("probe.json").contains("line 1"));
    assert!(problem("just-a-name: consistency").contains("has no profile"));
    assert!(problem("rolebench").contains("--data"));
    // Still scored: Walt's consistency, and both Characters' repetition.
    assert_eq!(value(r, Suite::Consistency, "early.names_self"), 1.0);
    assert_eq!(
        r.metric(Suite::Repetition, "distinct_1")
            .unwrap()
            .samples
            .len(),
        2
    );
    // A good script runs: the check passes for Walt.
    std::fs::write(
        &script,
        "{\"characters\": [\"walt-okafor\"], \"turns\": [\"Hello!\"], \
         \"checks\": [{\"ask\": \"Who are you?\", \"expect\": [\"Walt\"], \"forbid\": [\"as an AI\"]}]}",
    )
    .unwrap();
    let req = EvalRequest {
        characters: vec!["walt-okafor".into()],
        options: EvalOptions {
            suites: vec![],
            ..Default::default()
        },
        ..req
    };
    let e = troupe
        .evaluate(&troupe.settings(), &req, &Cancel::new(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        value(&e.report, Suite::Script, "pass"),
        1.0,
        "{:?}",
        e.report
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judge_is_parsed_timed_out_and_cancels_position_bias() {
    let dir = tempfile::tempdir().unwrap();
    let troupe = scripted(dir.path(), &["Evening, ", "my ", "friend."]);
    let req = EvalRequest {
        characters: vec!["walt-okafor".into(), "marie-curie".into()],
        setup: "troupe".into(),
        options: EvalOptions {
            suites: vec![Suite::Repetition],
            turns: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut report = troupe
        .evaluate(&troupe.settings(), &req, &Cancel::new(), &mut |_| {})
        .await
        .unwrap()
        .report;
    let judge_with = |pieces: &'static [&'static str], delay: Duration| {
        ScriptedEngine::new(pieces, delay).with_context_length(8192)
    };
    // A judge that scores: seven metrics, each Character.
    let good = judge_with(&["Score: ", "4"], Duration::ZERO);
    let judge = Judge {
        engine: &good,
        timeout: Duration::from_secs(5),
    };
    judge.score(&mut report).await;
    for (metric, _) in troupe::app::vocabulary::RUBRICS {
        let m = report.metric(Suite::Judge, metric).unwrap();
        assert_eq!((m.value, m.samples.len()), (4.0, 2), "{metric}");
    }
    // A judge that always picks whichever comes first: both orders disagree, so every pair is a
    // tie, not a win for either side.
    let biased = judge_with(&["A"], Duration::ZERO);
    let judge = Judge {
        engine: &biased,
        timeout: Duration::from_secs(5),
    };
    let (pairwise, problems, verdicts) = judge.compare(&report, &report.clone()).await;
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(verdicts.len(), 2);
    assert!(verdicts[0].text.contains("First"), "{verdicts:?}");
    let share = |n: &str| pairwise.iter().find(|m| m.name == n).unwrap().value;
    assert_eq!(
        (
            share("pairwise.win"),
            share("pairwise.tie"),
            share("pairwise.lose")
        ),
        (0.0, 1.0, 0.0)
    );
    // Garbage, and silence: named problems, nothing scored, nothing panics.
    let mut again = report.clone();
    again.metrics.clear();
    let garbage = judge_with(&["excellent ", "work!"], Duration::ZERO);
    Judge {
        engine: &garbage,
        timeout: Duration::from_secs(5),
    }
    .score(&mut again)
    .await;
    assert!(again.metrics.is_empty());
    assert_eq!(again.problems.len(), 14, "{:?}", again.problems);
    assert!(again.problems[0].error.contains("without a score"));
    assert!(again.problems[0].item.contains("consistency"));
    let mut slow_report = report.clone();
    slow_report.transcripts.truncate(1);
    let before = slow_report.problems.len();
    let slow = judge_with(&["4"], Duration::from_secs(30));
    Judge {
        engine: &slow,
        timeout: Duration::from_millis(200),
    }
    .score(&mut slow_report)
    .await;
    let timed_out = &slow_report.problems[before..];
    assert_eq!(timed_out.len(), 7);
    assert!(
        timed_out[0].error.contains("no answer within"),
        "{timed_out:?}"
    );
}
