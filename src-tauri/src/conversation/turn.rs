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
    /// An existing reply is being written again or continued: `reply` as it now stands (empty
    /// for a rewrite, its text so far for a continuation); the pieces that follow go into it.
    Rewriting { reply: Message },
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
    /// Regenerate or continue asked of a message that is not the conversation's last reply.
    #[error("{0}")]
    NotAReply(String),
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
    pub(crate) async fn cancelled(&self) {
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
    let ctx = context(store, session_id)?;
    let assembled = assemble(engine, &ctx, Some(text), budget(engine, sampling)).await?;
    let messages = assembled.messages;
    let dropped = assembled.record.dropped_messages;
    let sampling = &with_user_stops(sampling, &ctx.user);

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
    store.save_prompt_record(
        reply.id,
        &serde_json::to_string(&assembled.record).expect("a record serialises"),
    )?;
    // A new conversation is named after its first message.
    if ctx.session.title == ctx.session.scenario.label()
        && !ctx.messages.iter().any(|m| m.role == Role::User)
    {
        store.rename_session(session_id, &title_from(text))?;
    }
    // In companionship, what the user says about themselves is kept for later prompts.
    if ctx.session.scenario == super::Scenario::Companionship {
        let known = ctx.texts(store::MemoryKind::Fact);
        for fact in super::memory::facts_in(text) {
            if !known.contains(&fact) {
                store.add_memory(
                    &ctx.character.id,
                    Some(session_id),
                    store::MemoryKind::Fact,
                    &fact,
                    Some(user.id),
                    now(),
                )?;
            }
        }
    }
    on_event(TurnEvent::Started {
        user,
        reply: reply.clone(),
        dropped,
    });

    stream_reply(
        store,
        engine,
        messages,
        reply,
        "",
        sampling,
        cancel,
        &ctx.character.name,
        on_event,
    )
    .await
}

/// Writes the reply again: the last reply of its Session, to the message before it, with a
/// fresh prompt. The versions are kept as swipes (`Message::swipes`); the new one is shown.
#[allow(clippy::too_many_arguments)]
pub async fn regenerate(
    store: &Store,
    engine: &dyn Engine,
    reply_id: i64,
    sampling: &Sampling,
    cancel: &Cancel,
    on_event: &mut (dyn FnMut(TurnEvent) + Send),
) -> Result<(Message, ReplyStats), TurnError> {
    let (mut ctx, at) = last_reply(store, reply_id)?;
    let user = match at.checked_sub(1).map(|i| &ctx.messages[i]) {
        Some(m) if m.role == Role::User => m.clone(),
        _ => {
            return Err(TurnError::NotAReply(
                "only a reply to a message can be written again".into(),
            ))
        }
    };
    ctx.messages.truncate(at - 1);
    let assembled = assemble(engine, &ctx, Some(&user.content), budget(engine, sampling)).await?;
    let sampling = with_user_stops(sampling, &ctx.user);
    let reply = store.begin_rewrite(reply_id)?;
    store.save_prompt_record(
        reply.id,
        &serde_json::to_string(&assembled.record).expect("a record serialises"),
    )?;
    on_event(TurnEvent::Rewriting {
        reply: reply.clone(),
    });
    let result = stream_reply(
        store,
        engine,
        assembled.messages,
        reply,
        "",
        &sampling,
        cancel,
        &ctx.character.name,
        on_event,
    )
    .await;
    store.keep_swipe(reply_id)?;
    let (reply, stats) = result?;
    Ok((store.get_message(reply.id)?.unwrap_or(reply), stats))
}

/// Continues the last reply of its Session where it stopped (a reply cut short, or one the user
/// wants longer): the model is asked to go on, and what it writes is appended.
#[allow(clippy::too_many_arguments)]
pub async fn continue_reply(
    store: &Store,
    engine: &dyn Engine,
    reply_id: i64,
    sampling: &Sampling,
    cancel: &Cancel,
    on_event: &mut (dyn FnMut(TurnEvent) + Send),
) -> Result<(Message, ReplyStats), TurnError> {
    let (ctx, _) = last_reply(store, reply_id)?;
    let mut messages = assemble(engine, &ctx, None, budget(engine, sampling))
        .await?
        .messages;
    messages.push(ChatMessage::new(
        ChatRole::System,
        format!(
            "Continue {}'s last message from exactly where it stopped. Do not repeat it.",
            ctx.character.name
        ),
    ));
    let sampling = with_user_stops(sampling, &ctx.user);
    let reply = store.begin_continue(reply_id)?;
    on_event(TurnEvent::Rewriting {
        reply: reply.clone(),
    });
    let prefix = reply.content.clone();
    let result = stream_reply(
        store,
        engine,
        messages,
        reply,
        &prefix,
        &sampling,
        cancel,
        &ctx.character.name,
        on_event,
    )
    .await;
    store.sync_swipe(reply_id)?;
    let (reply, stats) = result?;
    Ok((store.get_message(reply.id)?.unwrap_or(reply), stats))
}

/// The Session of `reply_id` and the reply's index in it; an error unless it is the Session's
/// last message, a reply, and not being written.
fn last_reply(store: &Store, reply_id: i64) -> Result<(Context, usize), TurnError> {
    let m = store
        .get_message(reply_id)?
        .ok_or(store::Error::MessageBusy(reply_id))?;
    let ctx = context(store, m.session_id)?;
    let at = ctx
        .messages
        .iter()
        .position(|x| x.id == reply_id)
        .ok_or(store::Error::MessageBusy(reply_id))?;
    if m.role != Role::Character || at + 1 != ctx.messages.len() {
        return Err(TurnError::NotAReply(
            "only the last reply of a conversation can be written again or continued".into(),
        ));
    }
    if m.status == MessageStatus::Streaming {
        return Err(store::Error::MessageBusy(reply_id).into());
    }
    Ok((ctx, at))
}

fn with_user_stops(sampling: &Sampling, user: &prompt::User) -> Sampling {
    let mut sampling = sampling.clone();
    for stop in prompt::stop_strings_for(user) {
        if !sampling.stop.contains(&stop) {
            sampling.stop.push(stop);
        }
    }
    sampling
}

/// Streams a generation into `reply` (a `streaming` row holding `prefix`, the text a
/// continuation goes on from), committing every piece before `on_event` shows it, and closes
/// the row `complete` or `interrupted`.
#[allow(clippy::too_many_arguments)]
async fn stream_reply(
    store: &Store,
    engine: &dyn Engine,
    messages: Vec<ChatMessage>,
    reply: Message,
    prefix: &str,
    sampling: &Sampling,
    cancel: &Cancel,
    character: &str,
    on_event: &mut (dyn FnMut(TurnEvent) + Send),
) -> Result<(Message, ReplyStats), TurnError> {
    let started = Instant::now();
    let mut generation = engine.generate(messages, sampling.clone());
    let mut filter = StopFilter::new(sampling.stop.clone());
    let mut first_token_ms = None;
    let mut n_pieces = 0usize;
    let mut usage = None;
    let mut failure = None;
    let mut at_start = true;
    let mut cut_off = false;
    // Small models often open with their own name as a label ("Marisol Vega: Hello"): the
    // opening is held until it is clearly not that label, and the label is dropped.
    let label = format!("{character}:");
    // A continuation goes on after a space, unless the text ends with one already.
    let mut separator = if prefix.is_empty() || prefix.ends_with(char::is_whitespace) {
        ""
    } else {
        " "
    };
    let mut lead = Some(String::new());
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
                let piece = match lead.as_mut() {
                    Some(held) => {
                        held.push_str(piece);
                        match strip_label(held, &label) {
                            None => continue,
                            Some(rest) => {
                                lead = None;
                                rest
                            }
                        }
                    }
                    None => piece.to_string(),
                };
                let shown = filter.push(&piece);
                if !shown.is_empty() {
                    at_start = false;
                    let shown = format!("{separator}{shown}");
                    separator = "";
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
    if let Some(held) = lead.take().filter(|h| !h.is_empty()) {
        // The reply ended while it still looked like the label's start: it was the reply.
        let shown = filter.push(&held);
        if !shown.is_empty() {
            store.append_to_message(reply.id, &shown)?;
            on_event(TurnEvent::Text(shown));
        }
    }
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
    let content = if prefix.is_empty() {
        content.trim_end().to_string()
    } else if content.trim().is_empty() {
        prefix.to_string()
    } else {
        let sep = if prefix.ends_with(char::is_whitespace) {
            ""
        } else {
            " "
        };
        format!("{prefix}{sep}{}", content.trim_end())
    };
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
    let ctx = context(store, session_id)?;
    let messages = assemble(engine, &ctx, None, budget(engine, sampling))
        .await?
        .messages;
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

/// The opening of a reply without a leading `label` ("Name:"): `None` while `held` could still
/// become the label, else the text to show. Spacing and case inside the label do not count: the
/// small model writes "SherlockHolmes:" as often as "Sherlock Holmes:", and a label left in a
/// reply teaches it, through the history, to open every later reply the same way.
fn strip_label(held: &str, label: &str) -> Option<String> {
    let t = held.trim_start();
    let mut want = label.chars().filter(|c| !c.is_whitespace()).peekable();
    for (i, c) in t.char_indices() {
        if c.is_whitespace() {
            continue;
        }
        match want.next() {
            Some(w) if w.to_lowercase().eq(c.to_lowercase()) => {
                if want.peek().is_none() {
                    let rest = t[i + c.len_utf8()..].trim_start();
                    // Only the label so far: wait for the words after it.
                    return (!rest.is_empty()).then(|| rest.to_string());
                }
            }
            _ => return Some(t.to_string()),
        }
    }
    // Everything so far matches the label's start: it could still become the label.
    None
}

/// A Session's title from its first message: its first words, up to about 40 characters.
pub fn title_from(text: &str) -> String {
    let mut title = String::new();
    for word in text.split_whitespace() {
        if !title.is_empty() && title.len() + word.len() > 40 {
            title.push('…');
            break;
        }
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(word);
    }
    let chars: Vec<char> = title.chars().collect();
    if chars.len() > 48 {
        chars[..47].iter().collect::<String>() + "…"
    } else {
        title
    }
}

/// Everything a Session's prompt is made from, read from the store.
pub struct Context {
    pub session: store::Session,
    pub character: Character,
    pub user: prompt::User,
    /// The stored messages, oldest first.
    pub messages: Vec<Message>,
    pub memories: Vec<store::Memory>,
}

/// Reads a Session's `Context`.
pub fn context(store: &Store, session_id: i64) -> Result<Context, TurnError> {
    let session = store.get_session(session_id)?;
    let character = store.get_character(&session.character_id)?;
    let persona = store.session_persona(session_id)?;
    Ok(Context {
        character,
        user: prompt::User {
            name: persona.name,
            description: persona.description,
        },
        messages: store.list_messages(session_id)?,
        memories: store.memories_for_session(session_id)?,
        session,
    })
}

impl Context {
    /// How many of the oldest stored messages the summary covers.
    pub fn summarised(&self) -> usize {
        let until = self
            .memories
            .iter()
            .filter(|m| {
                m.kind == store::MemoryKind::Summary && m.session_id == Some(self.session.id)
            })
            .filter_map(|m| m.message_id)
            .max();
        match until {
            Some(id) => self.messages.iter().take_while(|m| m.id <= id).count(),
            None => 0,
        }
    }

    fn texts(&self, kind: store::MemoryKind) -> Vec<String> {
        self.memories
            .iter()
            .filter(|m| m.kind == kind && !m.content.trim().is_empty())
            .map(|m| m.content.clone())
            .collect()
    }
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
pub fn budget(engine: &dyn Engine, sampling: &Sampling) -> usize {
    engine
        .info()
        .context_length
        .min(CONTEXT_CAP)
        .saturating_sub(sampling.max_tokens)
}

/// Tokens of the conversation kept word for word; older turns reach the prompt through the
/// rolling summary. A cap well under the context keeps every turn's prompt about as long as an
/// early one (the time to the first word grows with it), and keeps room for the rest.
pub const HISTORY_WINDOW: usize = 1536;
/// Tokens the summary may take (its newest chunks are kept).
pub const SUMMARY_MAX: usize = 384;
/// Tokens kept free for the notes after the conversation when deciding what else fits.
const NOTES_RESERVE: usize = 512;

/// A prompt, ready to send, and what went into it.
pub struct Assembled {
    pub messages: Vec<ChatMessage>,
    pub record: prompt::PromptRecord,
    /// Index of the first stored message the window keeps (before the summary's catch-up):
    /// the ones before it need the summary.
    pub window_start: usize,
}

/// The prompt for a Session: the stable prefix (system prompt with profile, persona and
/// constant lore), the example dialogue while nothing has been left out, the rolling summary,
/// as much history as the window holds (newest kept, dropped in chunks), then — on a turn —
/// the user's `message` and the notes (pinned memories, facts, keyword lore, post-history
/// instructions). Which history is kept depends only on the stored messages, never on the new
/// message, so a warm-up and the turn after it agree and the turn finds its prefix cached.
pub async fn assemble(
    engine: &dyn Engine,
    ctx: &Context,
    message: Option<&str>,
    budget: usize,
) -> Result<Assembled, TurnError> {
    let c = &ctx.character;
    let user = &ctx.user;
    let constant = super::lore::constant(c);
    let system = ChatMessage::new(
        ChatRole::System,
        prompt::system_prompt_for(c, ctx.session.scenario, user, &constant),
    );
    let examples = prompt::examples(c, user).map(|e| ChatMessage::new(ChatRole::System, e));
    let history = prompt::history(&ctx.messages);
    // `history` skips empty messages; each kept chat message's index among the stored ones.
    let stored_index: Vec<usize> = ctx
        .messages
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.content.trim().is_empty())
        .map(|(i, _)| i)
        .collect();

    // The summary: its newest chunks within SUMMARY_MAX.
    let mut chunks = Vec::new();
    let mut summary_tokens = 0;
    for s in ctx.texts(store::MemoryKind::Summary).into_iter().rev() {
        let t = count_cached(engine, &s).await?;
        if summary_tokens + t > SUMMARY_MAX && !chunks.is_empty() {
            break;
        }
        summary_tokens += t;
        chunks.push(s);
    }
    chunks.reverse();
    let summary = prompt::summary_message(&chunks).map(|s| ChatMessage::new(ChatRole::System, s));

    let system_t = one_message_tokens(engine, &system).await?;
    let examples_t = match &examples {
        Some(e) => one_message_tokens(engine, e).await?,
        None => 0,
    };
    let summary_t = match &summary {
        Some(s) => one_message_tokens(engine, s).await?,
        None => 0,
    };
    let mut counts = Vec::with_capacity(history.len());
    for m in &history {
        counts.push(count_cached(engine, &m.content).await? + MESSAGE_OVERHEAD);
    }

    // Which history the window keeps: decided on the stored messages alone.
    let window = HISTORY_WINDOW.min(budget.saturating_sub(system_t + summary_t + NOTES_RESERVE));
    let mut keep = match prompt::fit_turn(0, &counts, None, window + prompt::NEXT_MESSAGE_RESERVE) {
        Fit::Keep { keep, .. } => keep,
        Fit::TooLong { .. } => 0,
    };
    let window_start = history.len() - keep;
    // Messages the window leaves out but the summary does not cover yet (it is written in the
    // background) stay in, word for word, while they fit the context.
    let summarised_stored = ctx.summarised();
    let summarised = stored_index
        .iter()
        .take_while(|&&i| i < summarised_stored)
        .count();
    if summarised < window_start {
        let extra: usize = counts[summarised..window_start].iter().sum();
        let kept: usize = counts[window_start..].iter().sum();
        if system_t + summary_t + kept + extra + prompt::NEXT_MESSAGE_RESERVE + NOTES_RESERVE
            <= budget
        {
            keep = history.len() - summarised;
        }
    }
    let kept_t: usize = counts[history.len() - keep..].iter().sum();
    let with_examples = examples.is_some()
        && keep == history.len()
        && system_t
            + examples_t
            + summary_t
            + kept_t
            + prompt::NEXT_MESSAGE_RESERVE
            + NOTES_RESERVE
            <= budget;

    // The turn's own parts: the message and the notes.
    let mut record = prompt::PromptRecord {
        budget,
        examples_dropped: examples.is_some() && !with_examples,
        ..Default::default()
    };
    let mut notes = None;
    let mut post_history = None;
    if let Some(text) = message {
        post_history = prompt::post_history(c, user).map(|p| ChatMessage::new(ChatRole::System, p));
        let recent: Vec<&str> = ctx
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .chain(std::iter::once(text))
            .collect();
        let mut lore = Vec::new();
        if let Some(book) = &c.lorebook {
            let mut entry_tokens = Vec::with_capacity(book.entries.len());
            for e in &book.entries {
                entry_tokens.push(count_cached(engine, &e.content).await?);
            }
            let a = super::lore::activate(book, &recent, &|i| entry_tokens[i], None);
            lore = a.keyed.iter().map(|f| f.content.clone()).collect();
            record.lore = a.constant.into_iter().chain(a.keyed).collect();
            record.lore_left_out = a.over_budget.into_iter().map(|f| f.name).collect();
        }
        notes = prompt::notes(
            c,
            user,
            &ctx.texts(store::MemoryKind::Pinned),
            &ctx.texts(store::MemoryKind::Fact),
            &lore,
        )
        .map(|n| ChatMessage::new(ChatRole::System, n));
    } else if let Some(book) = &c.lorebook {
        record.lore = super::lore::activate(book, &[], &|_| 0, Some(0)).constant;
    }

    // Put it together; check the exact templated size and trim history if the estimate was
    // short (then the notes; past that the message itself is too long).
    loop {
        let kept = &history[history.len() - keep..];
        let mut messages = vec![system.clone()];
        if with_examples {
            messages.extend(examples.clone());
        }
        messages.extend(summary.clone());
        messages.extend_from_slice(kept);
        messages.extend(notes.clone());
        if let Some(text) = message {
            messages.push(ChatMessage::new(ChatRole::User, text));
        }
        messages.extend(post_history.clone());
        let exact = engine.count_prompt_tokens(&messages).await?;
        if exact <= budget {
            let mut sections = vec![prompt::Section {
                name: "System prompt".into(),
                text: system.content.clone(),
                tokens: system_t,
            }];
            if let (true, Some(e)) = (with_examples, &examples) {
                sections.push(prompt::Section {
                    name: "Example dialogue".into(),
                    text: e.content.clone(),
                    tokens: examples_t,
                });
            }
            if let Some(s) = &summary {
                sections.push(prompt::Section {
                    name: "Summary".into(),
                    text: s.content.clone(),
                    tokens: summary_t,
                });
            }
            if !kept.is_empty() {
                sections.push(prompt::Section {
                    name: format!("History ({} messages)", kept.len()),
                    text: kept
                        .iter()
                        .map(|m| {
                            let who = match m.role {
                                ChatRole::User => user.name.as_str(),
                                _ => c.name.as_str(),
                            };
                            format!("{who}: {}", m.content)
                        })
                        .collect::<Vec<_>>()
                        .join("\n\n"),
                    tokens: counts[history.len() - keep..].iter().sum(),
                });
            }
            if let Some(n) = &notes {
                sections.push(prompt::Section {
                    name: "Notes".into(),
                    text: n.content.clone(),
                    tokens: one_message_tokens(engine, n).await?,
                });
            }
            if let Some(text) = message {
                sections.push(prompt::Section {
                    name: "Message".into(),
                    text: text.to_string(),
                    tokens: count_cached(engine, text).await? + MESSAGE_OVERHEAD,
                });
            }
            if let Some(p) = &post_history {
                sections.push(prompt::Section {
                    name: "Post-history instructions".into(),
                    text: p.content.clone(),
                    tokens: one_message_tokens(engine, p).await?,
                });
            }
            record.sections = sections;
            record.tokens = exact;
            record.dropped_messages = history.len() - keep;
            return Ok(Assembled {
                messages,
                record,
                window_start: stored_index
                    .get(window_start)
                    .copied()
                    .unwrap_or(ctx.messages.len()),
            });
        }
        if keep > 0 {
            keep -= 1;
        } else if notes.is_some() || post_history.is_some() {
            notes = None;
            post_history = None;
            record.lore.retain(|f| f.reason == "constant");
        } else {
            return Err(TurnError::MessageTooLong {
                needed: exact,
                budget,
            });
        }
    }
}

async fn one_message_tokens(engine: &dyn Engine, m: &ChatMessage) -> Result<usize, engine::Error> {
    engine.count_prompt_tokens(std::slice::from_ref(m)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::characters::builtin;
    use crate::conversation::{memory, Scenario};
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
            summaries +=
                memory::catch_up(&store, &engine, sid, &sampling(8), &Cancel::new(), &|| 6)
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
}
