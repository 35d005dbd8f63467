//! A fake Engine that streams a fixed script: for tests of logic where the words do not matter
//! (turn bookkeeping, cancellation, the UI's streaming). Never the only test of a path: the
//! real model is exercised by tests/engine.rs, tests/crash.rs and the end-to-end test.

use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::mpsc;

use super::{
    ChatMessage, Engine, EngineEvent, Error, FinishReason, Generation, ModelInfo, Sampling,
};

pub struct ScriptedEngine {
    info: ModelInfo,
    pieces: Vec<String>,
    delay: Duration,
}

impl ScriptedEngine {
    /// Streams `pieces`, one every `delay`; counts one token per whitespace-separated word.
    pub fn new(pieces: &[&str], delay: Duration) -> ScriptedEngine {
        ScriptedEngine {
            info: ModelInfo {
                name: "scripted".into(),
                path: PathBuf::from("scripted"),
                architecture: "scripted".into(),
                parameters: 0,
                quantization: "none".into(),
                context_length: 512,
                device: "none".into(),
                layers: None,
            },
            pieces: pieces.iter().map(|s| s.to_string()).collect(),
            delay,
        }
    }

    /// Sets the context length the fake claims.
    pub fn with_context_length(mut self, n: usize) -> ScriptedEngine {
        self.info.context_length = n;
        self
    }
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

impl Engine for ScriptedEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn count_prompt_tokens<'a>(
        &'a self,
        messages: &'a [ChatMessage],
    ) -> BoxFuture<'a, Result<usize, Error>> {
        async move {
            Ok(messages
                .iter()
                .map(|m| words(&m.content) + 4)
                .sum::<usize>()
                + 2)
        }
        .boxed()
    }

    fn count_tokens<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<usize, Error>> {
        async move { Ok(words(text)) }.boxed()
    }

    fn generate(&self, _messages: Vec<ChatMessage>, sampling: Sampling) -> Generation {
        let (tx, rx) = mpsc::channel(16);
        let pieces = self.pieces.clone();
        let delay = self.delay;
        tokio::spawn(async move {
            let n = pieces.len().min(sampling.max_tokens);
            for piece in pieces.into_iter().take(n) {
                tokio::time::sleep(delay).await;
                if tx.send(EngineEvent::Text(piece)).await.is_err() {
                    return;
                }
            }
            let reason = if n == sampling.max_tokens {
                FinishReason::Length
            } else {
                FinishReason::Stop
            };
            let _ = tx
                .send(EngineEvent::Finished {
                    reason,
                    usage: None,
                })
                .await;
        });
        rx
    }
}
