//! The real engine on the real default model: it loads from a local GGUF with no network,
//! streams a reply, stops within a second when the Generation is dropped and then serves the
//! next request; bad model files are clear errors before mistral.rs sees them.

mod common;

use std::time::{Duration, Instant};

use troupe::engine::{
    self, ChatMessage, ChatRole, Engine, EngineEvent, EngineStatus, MistralEngine, Sampling, Slot,
};

fn sampling(max_tokens: usize) -> Sampling {
    Sampling {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens,
        stop: vec![],
    }
}

fn chat(q: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(
            ChatRole::System,
            "You are Marisol, a warm baker. Reply in one or two sentences.",
        ),
        ChatMessage::new(ChatRole::User, q),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_model_streams_stops_and_serves_again() {
    let engine = MistralEngine::load(&common::model())
        .await
        .expect("the default model loads");
    let info = engine.info();
    assert_eq!(info.architecture, "llama");
    assert!(info.context_length >= 2048, "{info:?}");

    // Streams: several pieces, then Finished.
    let mut gen = engine.generate(chat("What is your favourite bread?"), sampling(24));
    let mut pieces = Vec::new();
    let finish = loop {
        match gen.recv().await.expect("stream ended without Finished") {
            EngineEvent::Text(t) => pieces.push(t),
            EngineEvent::Finished { reason, usage } => break (reason, usage),
            EngineEvent::Failed(e) => panic!("engine failed: {e}"),
        }
    };
    assert!(
        pieces.len() >= 2,
        "expected a streamed reply, got {pieces:?}"
    );
    assert!(!pieces.concat().trim().is_empty());
    let usage = finish.1.expect("usage is reported");
    assert!(
        usage.prompt_tokens > 20 && usage.completion_tokens >= 2,
        "{usage:?}"
    );

    // Greedy is deterministic: the same prompt gives the same words.
    let again = collect(engine.generate(chat("What is your favourite bread?"), sampling(24))).await;
    assert_eq!(again, pieces.concat());

    // Stop: dropping the Generation ends it; the engine is free again within a second.
    let mut gen = engine.generate(
        chat("Tell me a very long story about your bakery."),
        sampling(400),
    );
    let mut n = 0;
    while let Some(EngineEvent::Text(_)) = gen.recv().await {
        n += 1;
        if n == 3 {
            break;
        }
    }
    let t = Instant::now();
    drop(gen);
    let next = tokio::time::timeout(
        Duration::from_secs(60),
        collect(engine.generate(chat("Say hello."), sampling(8))),
    )
    .await
    .expect("the next request is served");
    assert!(!next.trim().is_empty());
    println!("after stop, the next 8-token reply took {:?}", t.elapsed());

    // Token counting uses the real tokenizer and chat template.
    let plain = engine
        .count_tokens("Hello there, how are you?")
        .await
        .unwrap();
    let templated = engine
        .count_prompt_tokens(&chat("Hello there, how are you?"))
        .await
        .unwrap();
    assert!(plain >= 5 && plain <= 10, "{plain}");
    assert!(templated > plain + 10, "{templated} vs {plain}");
}

async fn collect(mut gen: engine::Generation) -> String {
    let mut text = String::new();
    while let Some(e) = gen.recv().await {
        match e {
            EngineEvent::Text(t) => text.push_str(&t),
            EngineEvent::Finished { .. } => break,
            EngineEvent::Failed(e) => panic!("engine failed: {e}"),
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let slot = Slot::new();

    let missing = dir.path().join("missing.gguf");
    let err = slot.load(missing.clone()).await.unwrap_err();
    assert!(matches!(err, engine::Error::ModelMissing { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"));
    assert_eq!(slot.status(), EngineStatus::Failed(err.clone()));
    assert_eq!(slot.engine().err(), Some(err));

    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, vec![0x42u8; 4096]).unwrap();
    let err = slot.load(garbage).await.unwrap_err();
    assert!(matches!(err, engine::Error::ModelCorrupt { .. }), "{err}");

    // The real model, cut in half: the header check catches it before mistral.rs maps it.
    let real = std::fs::read(common::model()).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &real[..real.len() / 2]).unwrap();
    let err = slot.load(truncated).await.unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    // A GGUF of an architecture mistral.rs cannot run: its header with the arch renamed.
    let mut gemma = real.clone();
    let at = gemma
        .windows(5)
        .position(|w| w == b"llama")
        .expect("arch string in header");
    gemma[at..at + 5].copy_from_slice(b"gemma");
    let unsupported = dir.path().join("gemma.gguf");
    std::fs::write(&unsupported, &gemma).unwrap();
    let err = slot.load(unsupported).await.unwrap_err();
    assert!(
        matches!(err, engine::Error::ModelUnsupported { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("'gemma'"), "{err}");
}
