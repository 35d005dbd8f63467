//! Unit tests of a turn, its prompt assembly and its bookkeeping, with `ScriptedEngine`.

use super::assemble::*;
use super::context::*;
use super::suggested_questions;
use super::tidy::*;
use super::turn::*;
use super::{prompt, Cancel, ReplyStats, TurnError, TurnEvent};
use crate::characters::builtin;
use crate::characters::Character;
use crate::characters::Scenario;
use crate::conversation::memory;
use crate::engine::Sampling;
use crate::engine::ScriptedEngine;
use crate::store::{self, Message, MessageStatus, Role, Store};
use std::time::Duration;

fn setup() -> (Store, i64) {
    let store = Store::open_in_memory().unwrap();
    let c = builtin::all().remove(0);
    store.insert_character_if_absent(&c, true, 0).unwrap();
    let s = store
        .create_session(&c.id, Scenario::ChitChat, "t", Some("Hello!"), 1)
        .unwrap();
    (store, s.id)
}

/// One turn with no Stop pressed and no one watching the stream.
async fn reply_to(
    store: &Store,
    engine: &ScriptedEngine,
    sid: i64,
    text: &str,
    max_tokens: usize,
) -> Result<(Message, ReplyStats), TurnError> {
    send(
        store,
        engine,
        sid,
        text,
        &sampling(max_tokens),
        &Cancel::new(),
        &|| 5,
        &mut |_| {},
    )
    .await
}

fn sampling(max_tokens: usize) -> Sampling {
    Sampling {
        stop: prompt::stop_strings(),
        ..Sampling::greedy(max_tokens)
    }
}

#[tokio::test]
async fn reply_is_stored_as_it_streams() {
    let (store, sid) = setup();
    let engine = ScriptedEngine::new(&["  Good", " day", " to you."], Duration::from_millis(1));
    let mut seen = Vec::new();
    let (reply, stats) = send(
        &store,
        &engine,
        sid,
        " Hi there ",
        &sampling(50),
        &Cancel::new(),
        &|| 5,
        &mut |e| {
            if let TurnEvent::Text(t) = &e {
                // Every piece is in the database before it is shown.
                seen.push(t.clone());
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(reply.content, "Good day to you.");
    assert_eq!(reply.status, MessageStatus::Complete);
    assert_eq!(seen.concat(), "Good day to you.");
    assert_eq!(stats.reply_tokens, 3);
    let msgs = store.list_messages(sid).unwrap();
    let texts: Vec<_> = msgs.iter().map(|m| (m.role, m.content.as_str())).collect();
    assert_eq!(
        texts,
        [
            (Role::Character, "Hello!"),
            (Role::User, "Hi there"),
            (Role::Character, "Good day to you.")
        ]
    );
}

#[test]
fn a_leading_name_label_is_dropped() {
    let l = "Ada Lovelace:";
    assert_eq!(strip_label("Ada", l), None);
    assert_eq!(strip_label("Ada Lovelace:", l), None);
    assert_eq!(
        strip_label("Ada Lovelace: Hello", l).as_deref(),
        Some("Hello")
    );
    assert_eq!(strip_label("ada lovelace:\nHi", l).as_deref(), Some("Hi"));
    assert_eq!(strip_label("Adam here", l).as_deref(), Some("Adam here"));
    assert_eq!(strip_label("Hello", l).as_deref(), Some("Hello"));
    // Seen in a real reply: the name run together.
    assert_eq!(strip_label("AdaLovelace", l), None);
    assert_eq!(
        strip_label("AdaLovelace: Well, my dear", l).as_deref(),
        Some("Well, my dear")
    );
    assert_eq!(strip_label("Ada,", l).as_deref(), Some("Ada,"));
    assert_eq!(strip_label("  ", l), None);
}

#[tokio::test]
async fn a_reply_cut_off_by_the_token_limit_ends_at_its_last_sentence() {
    let (store, sid) = setup();
    let engine = ScriptedEngine::new(&["One.", " Two", " three"], Duration::from_millis(1));
    let (reply, _) = reply_to(&store, &engine, sid, "count", 3).await.unwrap();
    assert_eq!(reply.content, "One.");
    assert_eq!(reply.status, MessageStatus::Complete);
}

#[tokio::test]
async fn a_reply_that_opens_with_the_characters_name_keeps_its_spaces() {
    // The opening is held while it could still be the "Name:" label; its spaces stay.
    let (store, sid) = setup();
    let name = builtin::all().remove(0).name;
    let words: Vec<String> = name.split(' ').map(|w| format!(" {w}")).collect();
    let mut pieces: Vec<&str> = words.iter().map(String::as_str).collect();
    pieces.extend([" is", " here."]);
    let engine = ScriptedEngine::new(&pieces, Duration::from_millis(1));
    let (reply, _) = reply_to(&store, &engine, sid, "who?", 50).await.unwrap();
    assert_eq!(reply.content, format!("{name} is here."));
    // As a label it still goes.
    pieces.truncate(words.len());
    pieces.extend([":", " Hello."]);
    let engine = ScriptedEngine::new(&pieces, Duration::from_millis(1));
    let (reply, _) = reply_to(&store, &engine, sid, "hi", 50).await.unwrap();
    assert_eq!(reply.content, "Hello.");
}

#[tokio::test]
async fn stop_string_ends_the_reply_without_the_users_line() {
    let (store, sid) = setup();
    let engine = ScriptedEngine::new(&["Fine.", "\nUser:", " me too"], Duration::from_millis(1));
    let (reply, _) = reply_to(&store, &engine, sid, "hello", 50).await.unwrap();
    assert_eq!(reply.content, "Fine.");
}

#[tokio::test]
async fn cancel_keeps_what_was_shown_and_marks_interrupted() {
    let (store, sid) = setup();
    let pieces: Vec<String> = (0..200).map(|i| format!(" w{i}")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let engine = ScriptedEngine::new(&pieces, Duration::from_millis(5)).with_context_length(4096);
    let cancel = Cancel::new();
    let mut shown = String::new();
    let c2 = cancel.clone();
    let (reply, _) = send(
        &store,
        &engine,
        sid,
        "go",
        &sampling(500),
        &cancel,
        &|| 5,
        &mut |e| {
            if let TurnEvent::Text(t) = e {
                shown.push_str(&t);
                if shown.len() > 20 {
                    c2.cancel();
                }
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(reply.status, MessageStatus::Interrupted);
    assert_eq!(reply.content, shown.trim_end());
    assert!(
        reply.content.len() < 60,
        "stopped promptly: {}",
        reply.content
    );
}

#[tokio::test]
async fn empty_and_oversized_messages_store_nothing() {
    let (store, sid) = setup();
    let engine = ScriptedEngine::new(&["x"], Duration::from_millis(1)).with_context_length(400);
    let r = reply_to(&store, &engine, sid, "  \n ", 50).await;
    assert!(matches!(r, Err(TurnError::EmptyMessage)));
    let huge = "word ".repeat(100_000 / 5);
    let r = reply_to(&store, &engine, sid, &huge, 50).await;
    assert!(matches!(r, Err(TurnError::MessageTooLong { .. })), "{r:?}");
    assert_eq!(
        store.list_messages(sid).unwrap().len(),
        1,
        "only the greeting"
    );
}

#[tokio::test]
async fn old_history_is_dropped_to_fit() {
    let (store, sid) = setup();
    for i in 0..40 {
        store
            .insert_message(
                sid,
                Role::User,
                &"filler text ".repeat(10),
                MessageStatus::Complete,
                2 + i,
            )
            .unwrap();
    }
    let engine = ScriptedEngine::new(&["ok"], Duration::from_millis(1)).with_context_length(700);
    let mut dropped = 0;
    send(
        &store,
        &engine,
        sid,
        "hello",
        &sampling(50),
        &Cancel::new(),
        &|| 99,
        &mut |e| {
            if let TurnEvent::Started { dropped: d, .. } = e {
                dropped = d;
            }
        },
    )
    .await
    .unwrap();
    assert!(dropped > 0 && dropped < 41, "dropped {dropped}");
    assert_eq!(dropped % 2, 0, "dropped in chunks: {dropped}");
}

#[tokio::test]
async fn warming_stores_nothing_and_a_turn_still_follows() {
    let (store, sid) = setup();
    let engine = ScriptedEngine::new(&["Hm", "m."], Duration::from_millis(1));
    warm(&store, &engine, sid, &sampling(50)).await.unwrap();
    assert_eq!(store.list_messages(sid).unwrap().len(), 1);
    let (reply, _) = reply_to(&store, &engine, sid, "hello", 50).await.unwrap();
    assert_eq!(reply.content, "Hmm.");
}

/// A Character with every part a prompt can have.
fn full_character() -> Character {
    use crate::characters::card::{LoreEntry, Lorebook};
    let mut c = builtin::all()
        .into_iter()
        .find(|c| c.id == "sherlock-holmes")
        .unwrap();
    c.post_history_instructions = "Answer as {{char}}, briefly. {{original}}".into();
    let mut always = LoreEntry {
        content: "London is foggy.".into(),
        enabled: true,
        constant: true,
        ..Default::default()
    };
    always.name = "Fog".into();
    let keyed = LoreEntry {
        keys: vec!["violin".into()],
        content: "Holmes plays a Stradivarius.".into(),
        enabled: true,
        name: "Violin".into(),
        ..Default::default()
    };
    c.lorebook = Some(Lorebook {
        entries: vec![always, keyed],
        ..Default::default()
    });
    c
}

#[tokio::test]
async fn the_prompt_is_built_in_order_and_the_record_says_what_went_in() {
    let store = Store::open_in_memory().unwrap();
    let c = full_character();
    store.insert_character_if_absent(&c, false, 0).unwrap();
    let s = store
        .create_session(
            &c.id,
            Scenario::Companionship,
            Scenario::Companionship.label(),
            Some("Good evening."),
            1,
        )
        .unwrap();
    let sam = store
        .save_persona(
            &store::Persona {
                id: 0,
                name: "Sam".into(),
                description: "A nurse who works nights.".into(),
                is_default: false,
            },
            1,
        )
        .unwrap();
    store.set_session_persona(s.id, sam.id).unwrap();
    store
        .add_memory(
            &c.id,
            Some(s.id),
            store::MemoryKind::Pinned,
            "Sam hates mornings.",
            None,
            2,
        )
        .unwrap();
    let engine =
        ScriptedEngine::new(&["Indeed."], Duration::from_millis(1)).with_context_length(4096);
    send(
        &store,
        &engine,
        s.id,
        "My cat is called Mrs Hudson. Do you play the violin?",
        &sampling(50),
        &Cancel::new(),
        &|| 3,
        &mut |_| {},
    )
    .await
    .unwrap();
    let reply = store.list_messages(s.id).unwrap().pop().unwrap();
    let record: prompt::PromptRecord =
        serde_json::from_str(&store.prompt_record(reply.id).unwrap().unwrap()).unwrap();
    let names: Vec<&str> = record.sections.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "System prompt",
            "Example dialogue",
            "History (1 messages)",
            "Notes",
            "Message",
            "Post-history instructions"
        ]
    );
    let text = |name: &str| {
        record
            .sections
            .iter()
            .find(|x| x.name == name)
            .unwrap()
            .text
            .clone()
    };
    let system = text("System prompt");
    assert!(system.contains("The user is Sam. A nurse who works nights."));
    assert!(
        system.contains("London is foggy."),
        "constant lore is in the prefix"
    );
    assert!(text("Example dialogue").contains("\nSam: How did you know"));
    let notes = text("Notes");
    assert!(
        notes.contains("Keep in mind: Sam hates mornings."),
        "{notes}"
    );
    assert!(notes.contains("Holmes plays a Stradivarius."));
    assert_eq!(
        text("Post-history instructions"),
        "Answer as Sherlock Holmes, briefly."
    );
    assert!(
        !notes.contains("Mrs Hudson"),
        "facts from this message count from the next turn"
    );
    let lore: Vec<(&str, &str)> = record
        .lore
        .iter()
        .map(|f| (f.name.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(lore, [("Fog", "constant"), ("Violin", "key \"violin\"")]);
    assert!(record.tokens <= record.budget);
    // Sections are counted one by one (each with its template); they add up to about the whole.
    let sum: usize = record.sections.iter().map(|s| s.tokens).sum();
    assert!(
        sum.abs_diff(record.tokens) <= 16,
        "{sum} vs {}",
        record.tokens
    );
    // Companionship keeps what the user said about themselves, and the title is theirs.
    let facts: Vec<String> = store
        .memories_for_session(s.id)
        .unwrap()
        .into_iter()
        .filter(|m| m.kind == store::MemoryKind::Fact)
        .map(|m| m.content)
        .collect();
    assert_eq!(facts, ["My cat is called Mrs Hudson."]);
    assert_eq!(
        store.get_session(s.id).unwrap().title,
        "My cat is called Mrs Hudson. Do you play…"
    );
    // The persona's name stops the model speaking for them.
    let next = assemble(&engine, &context(&store, s.id).unwrap(), Some("Hi"), 4000)
        .await
        .unwrap();
    let notes = next
        .record
        .sections
        .iter()
        .find(|s| s.name == "Notes")
        .unwrap();
    assert!(
        notes
            .text
            .contains("Sam has told you: \u{201c}My cat is called Mrs Hudson.\u{201d}"),
        "{}",
        notes.text
    );
}

#[tokio::test]
async fn warm_up_and_turn_share_their_prefix_over_a_long_chat_and_the_summary_takes_over() {
    let (store, sid) = setup();
    let engine = ScriptedEngine::new(
        &["A", " reply", " of", " a", " few", " words."],
        Duration::ZERO,
    )
    .with_context_length(4096);
    let mut summaries = 0;
    let mut examples_seen_after_drop = false;
    let mut any_dropped = false;
    for turn in 0..150 {
        let ctx = context(&store, sid).unwrap();
        let warm = assemble(&engine, &ctx, None, 4000).await.unwrap();
        let msg = format!("Turn {turn}: {}", "words of the user ".repeat(6));
        let real = assemble(&engine, &ctx, Some(&msg), 4000).await.unwrap();
        // The warm-up's prompt is a prefix of the turn's: the engine's cache serves it.
        assert_eq!(
            real.messages[..warm.messages.len()],
            warm.messages[..],
            "turn {turn}"
        );
        assert!(real.record.tokens <= 4000);
        any_dropped |= real.record.dropped_messages > 0;
        examples_seen_after_drop |= any_dropped
            && real
                .record
                .sections
                .iter()
                .any(|s| s.name == "Example dialogue");
        send(
            &store,
            &engine,
            sid,
            &msg,
            &sampling(8),
            &Cancel::new(),
            &|| 5,
            &mut |_| {},
        )
        .await
        .unwrap();
        summaries += memory::catch_up(&store, &engine, sid, &sampling(8), &Cancel::new(), &|| 6)
            .await
            .unwrap()
            .len();
    }
    assert!(any_dropped);
    assert!(
        !examples_seen_after_drop,
        "examples come back and break the cache"
    );
    assert!(summaries >= 5, "{summaries} summaries");
    // Every message left out is covered by the summary.
    let ctx = context(&store, sid).unwrap();
    let plan = assemble(&engine, &ctx, None, 4000).await.unwrap();
    assert!(ctx.summarised() >= plan.window_start);
    assert!(plan.record.sections.iter().any(|s| s.name == "Summary"));
}

#[tokio::test]
async fn an_empty_summary_becomes_an_extract_of_what_was_said() {
    let (store, sid) = setup();
    let talk = ScriptedEngine::new(&["Yes."], Duration::ZERO).with_context_length(4096);
    for i in 0..60 {
        send(
            &store,
            &talk,
            sid,
            &format!(
                "I once lived in town number {i} {}",
                "and more words ".repeat(20)
            ),
            &sampling(8),
            &Cancel::new(),
            &|| 5,
            &mut |_| {},
        )
        .await
        .unwrap();
    }
    let silent = ScriptedEngine::new(&[], Duration::ZERO).with_context_length(4096);
    let written = memory::catch_up(&store, &silent, sid, &sampling(8), &Cancel::new(), &|| 6)
        .await
        .unwrap();
    assert!(!written.is_empty());
    assert!(
        written[0]
            .content
            .starts_with("User said: I once lived in town number 0"),
        "{}",
        written[0].content
    );
    // A cancelled catch-up writes nothing more.
    let cancel = Cancel::new();
    cancel.cancel();
    assert!(
        memory::catch_up(&store, &talk, sid, &sampling(8), &cancel, &|| 7)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn regenerate_keeps_every_version_and_continue_appends() {
    let (store, sid) = setup();
    let first = ScriptedEngine::new(&["First", " try."], Duration::ZERO);
    let (reply, _) = reply_to(&store, &first, sid, "hello", 50).await.unwrap();
    let second = ScriptedEngine::new(&["Second", " try."], Duration::ZERO);
    let mut events = Vec::new();
    let (again, _) = regenerate(
        &store,
        &second,
        reply.id,
        &sampling(50),
        &Cancel::new(),
        &mut |e| events.push(e),
    )
    .await
    .unwrap();
    assert!(matches!(&events[0], TurnEvent::Rewriting { reply } if reply.content.is_empty()));
    assert_eq!(again.id, reply.id);
    assert_eq!(again.content, "Second try.");
    assert_eq!(
        (again.swipes.clone(), again.swipe),
        (vec!["First try.".to_string(), "Second try.".into()], 1)
    );
    // Back to the first version; the prompt of the history sees what is shown.
    let back = store.select_swipe(reply.id, 0).unwrap();
    assert_eq!(back.content, "First try.");
    assert_eq!(
        store.search_messages("first", 5).unwrap()[0].message_id,
        reply.id
    );
    assert!(store.search_messages("second", 5).unwrap().is_empty());
    // Continue: the new words go on after a space.
    let more = ScriptedEngine::new(&["And", " more."], Duration::ZERO);
    let (longer, _) = continue_reply(
        &store,
        &more,
        reply.id,
        &sampling(50),
        &Cancel::new(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(longer.content, "First try. And more.");
    assert_eq!(longer.status, MessageStatus::Complete);
    // Each version keeps its own words: the continued one, and an edit of the other.
    assert_eq!(longer.swipes, ["First try. And more.", "Second try."]);
    store.select_swipe(reply.id, 1).unwrap();
    store.edit_message(reply.id, "Second, edited.").unwrap();
    assert_eq!(
        store.select_swipe(reply.id, 0).unwrap().content,
        "First try. And more."
    );
    assert_eq!(
        store.select_swipe(reply.id, 1).unwrap().content,
        "Second, edited."
    );
    store.check_search_index().unwrap();
    // Only the last reply can be rewritten; the greeting has no message to answer.
    let msgs = store.list_messages(sid).unwrap();
    let greeting = msgs[0].id;
    assert!(matches!(
        regenerate(
            &store,
            &second,
            greeting,
            &sampling(50),
            &Cancel::new(),
            &mut |_| {}
        )
        .await,
        Err(TurnError::NotAReply(_))
    ));
    let user = msgs[1].id;
    assert!(matches!(
        continue_reply(
            &store,
            &more,
            user,
            &sampling(50),
            &Cancel::new(),
            &mut |_| {}
        )
        .await,
        Err(TurnError::NotAReply(_))
    ));
}

#[test]
fn interview_questions_come_from_the_profile() {
    let all = crate::characters::builtin::all();
    let walt = all.iter().find(|c| c.id == "walt-okafor").unwrap();
    let q = suggested_questions(walt);
    assert_eq!(q.len(), 6, "{q:?}");
    assert_eq!(
        q[0],
        "Tell me about the time you came to the city at twenty-two with one suitcase."
    );
    assert_eq!(
        q[2],
        "Tell me how you paid for both daughters' university degrees."
    );
    assert_eq!(
        q[4],
        "Why do you believe that everybody is more interesting at 3 a.m.?"
    );
    let ada = all.iter().find(|c| c.id == "ada-lovelace").unwrap();
    let q = suggested_questions(ada);
    assert!(q.contains(&"Tell me about your Notes on the Analytical Engine, three times longer than the paper they annotate, include what is often called the first published computer program, for Bernoulli numbers.".to_string()) || q.iter().any(|x| x.starts_with("Tell me about a childhood")), "{q:?}");
    assert!(suggested_questions(&crate::characters::Character::blank()).is_empty());
}
