//! A long conversation with the real default model, scripted: 200 turns in a companionship
//! Session with a persona and a pinned memory. Every prompt fits the context; the profile, the
//! rolling summary (once there is one) and the pinned memory are in every prompt; a fact the
//! user states at turn 3 is still in the prompt at turn 150, and the Character recalls it when
//! asked. Run by `.ci/test` like every test (it takes several minutes on two cores).

mod common;

use troupe::app::{now_ms, Troupe};
use troupe::characters::Scenario;
use troupe::conversation::{self, assemble, memory, prompt, Cancel};
use troupe::engine::{mistral::MistralEngine, Sampling};
use troupe::settings::Paths;
use troupe::store::{MemoryKind, Persona};

const TOPICS: &[&str] = &[
    "What did you bake this morning?",
    "Do you ever get tired of getting up so early?",
    "What is the hardest bread to get right?",
    "Tell me about a regular customer.",
    "What do you do when it rains all day?",
    "Which song do you hum while kneading?",
    "What would you change about your bakery?",
    "What did your grandmother teach you?",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_turns_keep_the_profile_the_summary_the_pins_and_a_fact_from_turn_3() {
    let dir = tempfile::tempdir().unwrap();
    let t = Troupe::open(Paths::at(dir.path())).unwrap();
    let engine = MistralEngine::load(&common::model(), Some(&Paths::model_cache()))
        .await
        .expect("the default model loads");
    let sam = t
        .store
        .save_persona(
            &Persona {
                id: 0,
                name: "Sam".into(),
                description: "A night-shift nurse.".into(),
                is_default: false,
            },
            now_ms(),
        )
        .unwrap();
    let s = t
        .start_session("marisol-vega", Scenario::Companionship, Some(sam.id))
        .unwrap();
    let c = t.store.get_character("marisol-vega").unwrap();
    let prose = c.profile.to_prose(&c.name);
    t.store
        .add_memory(
            &c.id,
            Some(s.id),
            MemoryKind::Pinned,
            "Sam is training for a marathon in May.",
            None,
            now_ms(),
        )
        .unwrap();
    let sampling = Sampling {
        max_tokens: 12,
        stop: prompt::stop_strings(),
        ..Sampling::greedy(12)
    };
    let budget = assemble::budget(&engine, &sampling);
    let mut summaries = 0;
    let mut most_tokens = 0;
    let mut recalled = String::new();
    for i in 1..=200 {
        let message = match i {
            3 => "My dog's name is Biscuit.".to_string(),
            150 => "What is my dog's name?".to_string(),
            _ => format!("{} (turn {i})", TOPICS[i % TOPICS.len()]),
        };
        let (reply, _) = conversation::send(
            &t.store,
            &engine,
            s.id,
            &message,
            &sampling,
            &Cancel::new(),
            &now_ms,
            &mut |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("turn {i}: {e}"));
        let record: prompt::PromptRecord =
            serde_json::from_str(&t.store.prompt_record(reply.id).unwrap().unwrap()).unwrap();
        let section = |name: &str| record.sections.iter().find(|x| x.name.starts_with(name));
        assert!(
            record.tokens <= budget,
            "turn {i}: {} over {budget}",
            record.tokens
        );
        most_tokens = most_tokens.max(record.tokens);
        assert!(
            section("System prompt").unwrap().text.contains(&prose),
            "turn {i}: the profile"
        );
        let notes = &section("Notes").expect("notes").text;
        assert!(
            notes.contains("Sam is training for a marathon in May."),
            "turn {i}: the pin"
        );
        if i > 3 {
            assert!(
                notes.contains("My dog's name is Biscuit."),
                "turn {i}: the fact"
            );
        }
        if summaries > 0 {
            assert!(section("Summary").is_some(), "turn {i}: the summary");
        }
        if i == 150 {
            recalled = reply.content.clone();
            println!(
                "turn 150 prompt ({} tokens, {} older messages summarised):",
                record.tokens, record.dropped_messages
            );
            for x in &record.sections {
                println!("  {} · {} tokens", x.name, x.tokens);
            }
            println!("asked the dog's name, {} said: {recalled}", c.name);
        }
        summaries += memory::catch_up(&t.store, &engine, s.id, &sampling, &Cancel::new(), &now_ms)
            .await
            .unwrap()
            .len();
    }
    println!("200 turns: {summaries} summary chunks written; the longest prompt was {most_tokens} of {budget} tokens");
    assert!(summaries >= 3, "{summaries}");
    assert!(
        recalled.to_lowercase().contains("biscuit"),
        "the fact from turn 3 was not recalled at turn 150: {recalled:?}"
    );
}
