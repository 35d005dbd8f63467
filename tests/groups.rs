//! Group chats on a real data directory: a 40-turn chat of three built-in Characters with the
//! real default model (no reply holds another's label, every prompt opens with its speaker's
//! profile, a member away for ten turns knows none of them, and each speaker's first token
//! against a one-Character Session's at the same history length); the natural strategy over
//! 200 messages (the scripted engine: who speaks is the point, not the words); and the bad
//! cases — every member muted, members in the trash, the host purged — where nothing is lost.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use troupe::app::vocabulary::{Scenario, Settings, Strategy, TurnError};
use troupe::app::Troupe;
use troupe::engine::{ScriptedEngine, Slot};
use troupe::settings::Paths;

const CAST: [&str; 3] = ["ada-lovelace", "sherlock-holmes", "leonardo-da-vinci"];

/// Forty things a person says to the three, some naming one of them.
fn script() -> Vec<String> {
    let lines = [
        "Good evening, all of you. How was your day?",
        "Ada, what are you working on these days?",
        "Sherlock, can you tell anything about me from my shoes?",
        "Leonardo, what are you drawing?",
        "What do you all think of London in winter?",
        "Which of you slept least last night?",
        "Ada, do machines dream?",
        "Sherlock, what was your hardest case?",
        "Leonardo, how do birds fly?",
        "Tell me something none of you has told anyone.",
    ];
    (0..40)
        .map(|i| format!("{} (turn {i})", lines[i % lines.len()]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forty_turn_group_keeps_every_member_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let t = Troupe::open(Paths::at(dir.path())).unwrap();
    let mut settings = Settings::default();
    settings.sampling.max_tokens = 32;
    settings.sampling.seed = Some(7);
    t.start_engine(&settings, Some(&common::model()))
        .await
        .unwrap();
    let cast: Vec<String> = CAST.iter().map(|s| s.to_string()).collect();
    let g = t
        .start_group(&cast, Scenario::ChitChat, Strategy::Natural, None)
        .unwrap();
    let names: HashMap<String, String> = cast
        .iter()
        .map(|id| (id.clone(), t.character(id).unwrap().name))
        .collect();

    let mut away_texts = Vec::new();
    let mut away_replies = Vec::new();
    let mut group_ttft = Vec::new();
    for (i, line) in script().iter().enumerate() {
        if i == 10 {
            t.set_member_present(g.id, "leonardo-da-vinci", false)
                .unwrap();
        }
        if i == 20 {
            t.set_member_present(g.id, "leonardo-da-vinci", true)
                .unwrap();
        }
        // Leonardo is asked by name when he is back; otherwise the group decides.
        let asked = (i == 20).then_some("leonardo-da-vinci");
        let spoken = t
            .group_send(&settings, g.id, Some(line), asked, &mut |_| {})
            .await
            .unwrap_or_else(|e| panic!("turn {i}: {e}"));
        assert!(!spoken.is_empty(), "turn {i}: nobody answered");
        for s in &spoken {
            assert!(
                !(10..20).contains(&i) || s.speaker != "leonardo-da-vinci",
                "turn {i}: Leonardo spoke while away"
            );
            group_ttft.push((i, s.stats.first_token_ms));
        }
        if (10..20).contains(&i) {
            away_texts.push(line.clone());
            away_replies.extend(spoken.iter().map(|s| s.reply.content.clone()));
        }
    }

    // Replies said while Leonardo was away and never again (a small model repeats itself):
    // what his later prompts must not hold, with the person's lines (unique by their turn).
    let all: Vec<String> = t
        .messages(g.id)
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    for r in away_replies {
        // Unique as a passage, not only as a whole message: a small model's stock sentence
        // ("I don't really understand this question.") also turns up inside longer replies.
        if r.trim().len() >= 12 && all.iter().filter(|c| c.contains(r.as_str())).count() == 1 {
            away_texts.push(r);
        }
    }
    let speakers = t.group_speakers(g.id).unwrap();
    let mut by_speaker: HashMap<String, usize> = HashMap::new();
    for m in t.messages(g.id).unwrap() {
        let Some(speaker) = speakers.get(&m.id) else {
            continue;
        };
        *by_speaker.entry(speaker.clone()).or_default() += 1;
        // No member writes another's line, nor the person's.
        for (id, name) in &names {
            if id != speaker {
                assert!(
                    !m.content.contains(&format!("{name}:")),
                    "{speaker} wrote {name}'s label: {}",
                    m.content
                );
            }
        }
        assert!(
            !m.content.contains("User:"),
            "{speaker} wrote the person's label: {}",
            m.content
        );
        // Every reply's prompt opens with its speaker's profile.
        let Some(record) = t.prompt_record(m.id).unwrap() else {
            continue; // the greeting
        };
        let opening = &record.messages[0].content;
        assert!(
            opening.starts_with(&format!("You are {}.", names[speaker])),
            "{speaker}'s prompt opens: {}",
            &opening[..80.min(opening.len())]
        );
        // What was said while Leonardo was away is in none of his later prompts.
        if speaker == "leonardo-da-vinci" {
            for text in &away_texts {
                if let Some(x) = record
                    .messages
                    .iter()
                    .find(|x| x.content.contains(text.as_str()))
                {
                    panic!("Leonardo's prompt holds '{text}' in: {}", x.content);
                }
            }
        }
    }
    eprintln!("replies per member over 40 turns: {by_speaker:?}");
    assert!(by_speaker.get("leonardo-da-vinci").copied().unwrap_or(0) > 0);

    // The same forty messages to Ada alone: first tokens at the same history lengths.
    let solo = t
        .start_session("ada-lovelace", Scenario::ChitChat, None)
        .unwrap();
    let mut solo_ttft = Vec::new();
    for (i, line) in script().iter().enumerate() {
        let (_, stats) = t.send(&settings, solo.id, line, &mut |_| {}).await.unwrap();
        solo_ttft.push((i, stats.first_token_ms));
    }
    let median = |v: &[(usize, u64)], from: usize| {
        let mut x: Vec<u64> = v
            .iter()
            .filter(|(i, _)| *i >= from)
            .map(|(_, t)| *t)
            .collect();
        x.sort();
        x[x.len() / 2]
    };
    eprintln!(
        "first token, median of turns 30-39: group speaker {} ms, one-character session {} ms \
         (turns 0-9: {} ms / {} ms)",
        median(&group_ttft, 30),
        median(&solo_ttft, 30),
        median(
            &group_ttft[..group_ttft.iter().filter(|(i, _)| *i < 10).count()],
            0
        ),
        median(&solo_ttft[..10], 0),
    );
}

fn scripted(dir: &std::path::Path) -> Troupe {
    let mut t = Troupe::open(Paths::at(dir)).unwrap();
    let engine =
        ScriptedEngine::new(&["Quite", " so."], Duration::from_millis(1)).with_context_length(8192);
    t.engine = Slot::with_engine(Arc::new(engine));
    t
}

fn talkative(t: &Troupe, id: &str, value: f64) {
    let mut c = t.character(id).unwrap();
    c.set_talkativeness(value);
    t.store.update_character(&c, 1).unwrap();
}

#[tokio::test]
async fn the_natural_strategy_answers_whoever_is_named_and_otherwise_follows_talkativeness() {
    let dir = tempfile::tempdir().unwrap();
    let t = scripted(dir.path());
    let settings = Settings::default();
    let weights = [
        ("ada-lovelace", 0.9),
        ("sherlock-holmes", 0.5),
        ("leonardo-da-vinci", 0.1),
    ];
    for (id, w) in weights {
        talkative(&t, id, w);
    }
    let cast: Vec<String> = CAST.iter().map(|s| s.to_string()).collect();
    let g = t
        .start_group(&cast, Scenario::ChitChat, Strategy::Natural, None)
        .unwrap();
    let names = ["Ada", "Sherlock", "Leonardo"];
    let mut unasked: HashMap<String, usize> = HashMap::new();
    let mut answered_by_name = 0;
    for i in 0..200 {
        let named = (i % 4 == 0).then(|| i / 4 % 3);
        let text = match named {
            Some(k) => format!("{}, what do you make of message {i}?", names[k]),
            None => format!("And what about message {i}?"),
        };
        let spoken = t
            .group_send(&settings, g.id, Some(&text), None, &mut |_| {})
            .await
            .unwrap();
        match named {
            // Named, they answer, and nobody else.
            Some(k) => {
                let who: Vec<&String> = spoken.iter().map(|s| &s.speaker).collect();
                assert_eq!(who, [CAST[k]], "message {i} named {}", CAST[k]);
                answered_by_name += 1;
            }
            None => {
                assert_eq!(spoken.len(), 1, "one speaker when nobody is named");
                *unasked.entry(spoken[0].speaker.clone()).or_default() += 1;
            }
        }
    }
    // Unasked after the person's message, each is drawn in proportion to talkativeness
    // (within 0.13: over ~150 draws, about three standard deviations).
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    let share: Vec<f64> = weights.iter().map(|(_, w)| w / total).collect();
    eprintln!("{answered_by_name} messages named a member and were answered by them");
    let n: usize = unasked.values().sum();
    for (k, (id, talk)) in weights.iter().enumerate() {
        let got = unasked.get(*id).copied().unwrap_or(0) as f64 / n as f64;
        eprintln!(
            "{id}: talkativeness {talk}, spoke unasked {:.0}% (expected {:.0}%)",
            got * 100.0,
            share[k] * 100.0
        );
        assert!(
            (got - share[k]).abs() < 0.13,
            "{id}: {got:.2} vs {:.2}",
            share[k]
        );
    }
}

#[tokio::test]
async fn nobody_to_answer_keeps_the_message_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let t = scripted(dir.path());
    let settings = Settings::default();
    let cast: Vec<String> = CAST[..2].iter().map(|s| s.to_string()).collect();
    let g = t
        .start_group(
            &cast,
            Scenario::Interview,
            Strategy::Natural,
            Some("The panel"),
        )
        .unwrap();
    assert_eq!(g.title, "The panel");
    // Muting everyone: the message is kept, nobody answers, and asking one still works.
    for id in &cast {
        t.set_member_muted(g.id, id, true).unwrap();
    }
    let before = t.messages(g.id).unwrap().len();
    let r = t
        .group_send(&settings, g.id, Some("Anyone?"), None, &mut |_| {})
        .await;
    assert!(matches!(r, Err(TurnError::NoSpeaker)), "{r:?}");
    assert_eq!(t.messages(g.id).unwrap().len(), before + 1);
    let asked = t
        .group_send(
            &settings,
            g.id,
            Some("Ada?"),
            Some("ada-lovelace"),
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(asked[0].speaker, "ada-lovelace");
    // A member in the trash is never chosen, nor can be asked; the rest go on.
    t.set_member_muted(g.id, "sherlock-holmes", false).unwrap();
    t.trash_character("sherlock-holmes").unwrap();
    let r = t
        .group_send(&settings, g.id, Some("Still there?"), None, &mut |_| {})
        .await;
    assert!(matches!(r, Err(TurnError::NoSpeaker)), "{r:?}");
    let r = t
        .group_send(
            &settings,
            g.id,
            Some("Sherlock?"),
            Some("sherlock-holmes"),
            &mut |_| {},
        )
        .await;
    assert!(
        matches!(r, Err(TurnError::NotAReply(ref m)) if m.contains("trash")),
        "{r:?}"
    );
    // The host purged for good: the group and every message stay, with another host.
    let n = t.messages(g.id).unwrap().len();
    t.trash_character("ada-lovelace").unwrap();
    t.restore_character("sherlock-holmes").unwrap();
    t.store.purge_trash(i64::MAX, 2).unwrap();
    let s = t.session(g.id).unwrap();
    assert_eq!(s.character_id, "sherlock-holmes");
    assert_eq!(t.messages(g.id).unwrap().len(), n);
    let group = t.group(g.id).unwrap().unwrap();
    assert_eq!(
        group.members.len(),
        2,
        "the purged member stays in the history's cast"
    );
    // A group of one is refused.
    assert!(t
        .start_group(
            &["ada".into(), "ada".into()],
            Scenario::ChitChat,
            Strategy::List,
            None
        )
        .is_err());
}
