//! The prompt cache on the real engine and model: when the user turns to another chat, the
//! entries no request continues leave memory for unnamed files in the cache folder (a vendored
//! mistral.rs patch, `engine::prompt_cache`), and a hit reads its entry back bit for bit: a
//! reply regenerated after the user chatted elsewhere is the one an engine that keeps every
//! entry in memory gives. One test in its own process, so that no other load changes where
//! entries go while its engines are made.

mod common;

use std::path::Path;

use troupe::engine::{ChatMessage, ChatRole, Engine, MistralEngine, Sampling};

const MARISOL: &str = "You are Marisol, a warm baker. Reply in one or two sentences.";
const BRANN: &str = "You are Brann, a gruff blacksmith. Answer in one short sentence.";

fn chat(system: &str, user: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(ChatRole::System, system),
        ChatMessage::new(ChatRole::User, user),
    ]
}

async fn reply(engine: &MistralEngine, messages: &[ChatMessage]) -> String {
    let text = common::collect(engine.generate(messages.to_vec(), Sampling::greedy(24))).await;
    assert!(!text.trim().is_empty(), "an empty reply");
    text
}

/// The files this process holds open in `dir` that have no name: prompt-cache entries.
fn unnamed_files_in(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd lists")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir) && target.to_string_lossy().ends_with("(deleted)"))
        .count()
}

/// A chat's first turn, its second, and that second regenerated, on `engine`; then, where
/// `elsewhere`, a message to another Character and the second turn regenerated once more.
async fn turns(engine: &MistralEngine, elsewhere: bool) -> Vec<String> {
    let first_turn = chat(MARISOL, "What is your favourite bread?");
    let first = reply(engine, &first_turn).await;
    let mut second_turn = first_turn;
    second_turn.push(ChatMessage::new(ChatRole::Assistant, first.trim()));
    second_turn.push(ChatMessage::new(
        ChatRole::User,
        "And what do you bake on Sundays?",
    ));
    let second = reply(engine, &second_turn).await;
    let regenerated = reply(engine, &second_turn).await;
    let mut replies = vec![first, second, regenerated];
    if elsewhere {
        reply(engine, &chat(BRANN, "Can you mend a kettle?")).await;
        replies.push(reply(engine, &second_turn).await);
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_left_for_another_comes_back_from_its_file_unchanged() {
    let model = common::small_model();
    let folder = tempfile::tempdir().expect("a cache folder");

    let filed = MistralEngine::load(&model, Some(folder.path()))
        .await
        .expect("the model loads");
    let from_files = turns(&filed, true).await;
    assert!(
        unnamed_files_in(folder.path()) > 0,
        "no prompt-cache entry left memory for a file in {}",
        folder.path().display()
    );
    drop(filed);

    // Without a cache folder every entry stays in memory.
    let kept = MistralEngine::load(&model, None)
        .await
        .expect("the model loads again");
    let in_memory = turns(&kept, false).await;
    assert_eq!(
        from_files[..3],
        in_memory[..],
        "first turn, second turn, second regenerated"
    );
    assert_eq!(
        from_files[3], in_memory[2],
        "regenerated after a message to another Character"
    );
}
