//! One exchange: the user's Message in, the Character's reply streamed out and stored.
//!
//! Order of effects, which the crash test relies on: the user's Message is committed, an empty
//! `streaming` reply row is committed, and then every piece of text is committed *before* it is
//! handed to `on_event` (and so before anyone can see it). The reply ends `complete`, or
//! `interrupted` when it was cancelled or the engine failed; what was shown stays either way.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::characters::Character;
use crate::engine::{self, ChatMessage, ChatRole, Engine, EngineEvent, FinishReason, Sampling};
use crate::store::{self, Message, MessageStatus, Role, Store};

use super::prompt::{self, Fit, StopFilter};

/// The most context Troupe uses even when a model offers more: prefilling on a CPU costs about
/// a second per hundred tokens on a small machine, and a longer prompt buys little for chat.
pub const CONTEXT_CAP: usize = 4096;
/// Template tokens around each message, added to its text's count when estimating the fit.
const MESSAGE_OVERHEAD: usize = 6;

/// What a turn reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEvent {
    /// The user's Message is stored and the reply row exists; `dropped` older messages did not
    /// fit the context and were left out of the prompt.
    Started {
        user: Message,
        reply: Message,
        dropped: usize,
    },
    /// The next piece of the reply, already committed to the store.
    Text(String),
}

/// Figures of one reply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplyStats {
    pub prompt_tokens: usize,
    pub reply_tokens: usize,
    /// From the request to the first piece of text.
    pub first_token_ms: u64,
    /// Decode speed after the first token.
    pub tokens_per_second: f64,
}

/// Why a turn did not produce a reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TurnError {
    /// Nothing to send.
    #[error("the message is empty")]
    EmptyMessage,
    /// The message cannot fit the model's context even with no history; nothing was stored.
    #[error("the message is too long: with the character's profile it needs {needed} tokens, and this model has room for {budget}; shorten it or split it")]
    MessageTooLong { needed: usize, budget: usize },
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// The engine failed after the reply began; the partial reply is stored as interrupted.
    #[error("the reply stopped early: {reason}")]
    Failed { reply: Message, reason: String },
}

/// A Stop button: cloned into the running turn, pressed from anywhere.
#[derive(Clone, Debug)]
pub struct Cancel(Arc<watch::Sender<bool>>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel(Arc::new(watch::channel(false).0))
    }
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }
    async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

/// Runs one turn of `session_id`: see the module doc. `now` gives unix milliseconds.
/// Returns the stored reply and its figures.
#[allow(clippy::too_many_arguments)]
pub async fn send(
    store: &Store,
    engine: &dyn Engine,
    session_id: i64,
    text: &str,
    sampling: &Sampling,
    cancel: &Cancel,
    now: &(dyn Fn() -> i64 + Sync),
    on_event: &mut (dyn FnMut(TurnEvent) + Send),
) -> Result<(Message, ReplyStats), TurnError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(TurnError::EmptyMessage);
    }
    let (system, mut history) = context(store, session_id)?;
    history.push(ChatMessage::new(ChatRole::User, text));
    let (messages, dropped) =
        assemble(engine, system, history, true, budget(engine, sampling)).await?;

    // Store, then stream.
    let user =
        store.insert_message(session_id, Role::User, text, MessageStatus::Complete, now())?;
    let reply = store.insert_message(
        session_id,
        Role::Character,
        "",
        MessageStatus::Streaming,
        now(),
    )?;
    on_event(TurnEvent::Started {
        user,
        reply: reply.clone(),
        dropped,
    });

    let started = Instant::now();
    let mut generation = engine.generate(messages, sampling.clone());
    let mut filter = StopFilter::new(sampling.stop.clone());
    let mut first_token_ms = None;
    let mut n_pieces = 0usize;
    let mut usage = None;
    let mut failure = None;
    let mut at_start = true;
    let mut cut_off = false;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => None,
            e = generation.recv() => Some(e),
        };
        let Some(event) = event else {
            break; // Stop pressed; dropping `generation` below cancels the engine.
        };
        match event {
            Some(EngineEvent::Text(piece)) => {
                n_pieces += 1;
                first_token_ms.get_or_insert_with(|| started.elapsed().as_millis() as u64);
                // Models often open with a space or newline; the reply starts at its first word.
                let piece = if at_start {
                    piece.trim_start()
                } else {
                    piece.as_str()
                };
                let shown = filter.push(piece);
                if !shown.is_empty() {
                    at_start = false;
                    store.append_to_message(reply.id, &shown)?;
                    on_event(TurnEvent::Text(shown));
                }
                if filter.stopped() {
                    break;
                }
            }
            Some(EngineEvent::Finished { usage: u, reason }) => {
                usage = u;
                cut_off = reason == FinishReason::Length;
                break;
            }
            Some(EngineEvent::Failed(reason)) => {
                failure = Some(reason);
                break;
            }
            None => {
                failure = Some("the engine stopped without finishing the reply".into());
                break;
            }
        }
    }
    drop(generation);
    let cancelled =
        cancel.is_cancelled() && failure.is_none() && usage.is_none() && !filter.stopped();
    let rest = if cancelled {
        String::new()
    } else {
        filter.finish()
    };
    if !rest.is_empty() {
        on_event(TurnEvent::Text(rest));
    }
    // A reply that ran out of tokens ends mid-sentence; like SillyTavern's "trim incomplete
    // sentences", keep it up to its last full sentence (when it has one).
    let content = if cut_off {
        prompt::trim_incomplete_sentence(filter.shown())
    } else {
        filter.shown()
    };
    let content = content.trim_end().to_string();
    let status = if cancelled || failure.is_some() {
        MessageStatus::Interrupted
    } else {
        MessageStatus::Complete
    };
    store.finish_message(reply.id, &content, status)?;
    let reply = store.get_message(reply.id)?.unwrap_or(Message {
        content,
        status,
        ..reply
    });
    if let Some(reason) = failure {
        return Err(TurnError::Failed { reply, reason });
    }

    let elapsed = started.elapsed().as_secs_f64();
    let first = first_token_ms.unwrap_or((elapsed * 1000.0) as u64);
    let decode_secs = elapsed - first as f64 / 1000.0;
    let stats = ReplyStats {
        prompt_tokens: usage.map(|u| u.prompt_tokens).unwrap_or(0),
        reply_tokens: usage.map(|u| u.completion_tokens).unwrap_or(n_pieces),
        first_token_ms: first,
        tokens_per_second: if decode_secs > 0.0 && n_pieces > 1 {
            (n_pieces - 1) as f64 / decode_secs
        } else {
            0.0
        },
    };
    Ok((reply, stats))
}

/// Prefills the prompt the next reply of `session_id` will start with (everything but the user's
/// next message) and throws the output away, so the engine's prefix cache holds it and that
/// reply's first word comes in a fraction of the time. Stores nothing. Meant to run in the
/// background when a Session opens, while the user reads and types.
pub async fn warm(
    store: &Store,
    engine: &dyn Engine,
    session_id: i64,
    sampling: &Sampling,
) -> Result<(), TurnError> {
    let (system, history) = context(store, session_id)?;
    let (messages, _) = assemble(engine, system, history, false, budget(engine, sampling)).await?;
    let mut generation = engine.generate(
        messages,
        Sampling {
            max_tokens: 1,
            ..sampling.clone()
        },
    );
    while let Some(event) = generation.recv().await {
        if !matches!(event, EngineEvent::Text(_)) {
            break;
        }
    }
    Ok(())
}

/// Prefills the Character's part of every system prompt (`prompt::character_prefix`), so a new
/// Session with it, in any Scenario, finds most of its prompt in the engine's prefix cache.
/// Meant to run in the background when the user opens the Character, before they pick a
/// Scenario. Stores nothing.
pub async fn warm_character(engine: &dyn Engine, character: &Character) {
    let messages = vec![ChatMessage::new(
        ChatRole::System,
        prompt::character_prefix(character),
    )];
    let mut generation = engine.generate(messages, Sampling::greedy(1));
    while let Some(event) = generation.recv().await {
        if !matches!(event, EngineEvent::Text(_)) {
            break;
        }
    }
}

/// The system message of a Session and its history as chat messages.
fn context(store: &Store, session_id: i64) -> Result<(ChatMessage, Vec<ChatMessage>), TurnError> {
    let session = store.get_session(session_id)?;
    let character = store.get_character(&session.character_id)?;
    let system = ChatMessage::new(
        ChatRole::System,
        prompt::system_prompt(&character, session.scenario),
    );
    Ok((system, prompt::history(&store.list_messages(session_id)?)))
}

/// Token counts of message texts, by model and text. A long chat's every turn measures its
/// whole history; asking the engine's tokenizer for each message each time cost a few hundred
/// milliseconds at a hundred turns, before the reply could start. Stored messages never change,
/// so their counts are remembered (bounded: cleared when it grows past 20,000 texts).
static TOKEN_COUNTS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<(String, u64), usize>>,
> = std::sync::LazyLock::new(Default::default);

async fn count_cached(engine: &dyn Engine, text: &str) -> Result<usize, engine::Error> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    let key = (engine.info().name.clone(), h.finish());
    if let Some(&n) = TOKEN_COUNTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
    {
        return Ok(n);
    }
    let n = engine.count_tokens(text).await?;
    let mut map = TOKEN_COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() > 20_000 {
        map.clear();
    }
    map.insert(key, n);
    Ok(n)
}

/// Prompt tokens available: the context Troupe uses minus the reply's budget.
fn budget(engine: &dyn Engine, sampling: &Sampling) -> usize {
    engine
        .info()
        .context_length
        .min(CONTEXT_CAP)
        .saturating_sub(sampling.max_tokens)
}

/// The prompt: the system message and as much of `history` as fits `budget`, newest kept.
/// `with_message`: the last of `history` is the user's new message (a turn), not the end of the
/// stored history (a warm-up); see `prompt::fit_turn`. Returns the prompt with the number of
/// history messages left out.
async fn assemble(
    engine: &dyn Engine,
    system: ChatMessage,
    history: Vec<ChatMessage>,
    with_message: bool,
    budget: usize,
) -> Result<(Vec<ChatMessage>, usize), TurnError> {
    let system_tokens = engine
        .count_prompt_tokens(std::slice::from_ref(&system))
        .await?;
    let mut counts = Vec::with_capacity(history.len());
    for m in &history {
        counts.push(count_cached(engine, &m.content).await? + MESSAGE_OVERHEAD);
    }
    let fit = match counts.split_last() {
        Some((&message, before)) if with_message => {
            prompt::fit_turn(system_tokens, before, Some(message), budget)
        }
        _ => prompt::fit_turn(system_tokens, &counts, None, budget),
    };
    let mut keep = match fit {
        Fit::Keep { keep, .. } => keep,
        Fit::TooLong { needed, budget } => {
            return Err(TurnError::MessageTooLong { needed, budget })
        }
    };
    // The estimate above is per message; check the exact templated size and trim if needed.
    loop {
        let mut messages = vec![system.clone()];
        messages.extend_from_slice(&history[history.len() - keep..]);
        let exact = engine.count_prompt_tokens(&messages).await?;
        if exact <= budget {
            return Ok((messages, history.len() - keep));
        }
        if keep <= 1 {
            return Err(TurnError::MessageTooLong {
                needed: exact,
                budget,
            });
        }
        keep -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::characters::builtin;
    use crate::conversation::Scenario;
    use crate::engine::ScriptedEngine;
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

    #[tokio::test]
    async fn a_reply_cut_off_by_the_token_limit_ends_at_its_last_sentence() {
        let (store, sid) = setup();
        let engine = ScriptedEngine::new(&["One.", " Two", " three"], Duration::from_millis(1));
        let (reply, _) = reply_to(&store, &engine, sid, "count", 3).await.unwrap();
        assert_eq!(reply.content, "One.");
        assert_eq!(reply.status, MessageStatus::Complete);
    }

    #[tokio::test]
    async fn stop_string_ends_the_reply_without_the_users_line() {
        let (store, sid) = setup();
        let engine =
            ScriptedEngine::new(&["Fine.", "\nUser:", " me too"], Duration::from_millis(1));
        let (reply, _) = reply_to(&store, &engine, sid, "hello", 50).await.unwrap();
        assert_eq!(reply.content, "Fine.");
    }

    #[tokio::test]
    async fn cancel_keeps_what_was_shown_and_marks_interrupted() {
        let (store, sid) = setup();
        let pieces: Vec<String> = (0..200).map(|i| format!(" w{i}")).collect();
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let engine =
            ScriptedEngine::new(&pieces, Duration::from_millis(5)).with_context_length(4096);
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
        let engine =
            ScriptedEngine::new(&["ok"], Duration::from_millis(1)).with_context_length(700);
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
}
