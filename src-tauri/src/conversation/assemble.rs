//! Prompt assembly: which parts of a Session go to the model, in which order, within the
//! context. `assemble` builds every prompt (a turn's, a warm-up's, the summary's plan) the same
//! way, in named steps: gather the pieces, measure them, choose the history window, add the
//! turn's own parts, then fit the exact templated prompt. See docs/ARCHITECTURE.md for the order
//! and the invariants that keep the prefix stable.

use crate::engine::{self, ChatMessage, ChatRole, Engine, Sampling};
use crate::store::MemoryKind;

use super::context::Context;
use super::prompt::{self, Fit};
use super::{lore, TurnError};

/// The most context Troupe uses even when a model offers more: prefilling on a CPU costs about
/// a second per hundred tokens on a small machine, and a longer prompt buys little for chat.
pub const CONTEXT_CAP: usize = 4096;
/// Template tokens around each message, added to its text's count when estimating the fit.
pub(super) const MESSAGE_OVERHEAD: usize = 6;

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
    let pieces = gather(engine, ctx).await?;
    let sizes = measure(engine, &pieces).await?;
    let window = choose_window(ctx, &pieces, &sizes, budget);
    let mut record = prompt::PromptRecord {
        budget,
        examples_dropped: pieces.examples.is_some() && !window.with_examples,
        ..Default::default()
    };
    let parts = turn_parts(engine, ctx, message, &mut record).await?;
    fit_exactly(engine, ctx, message, &pieces, &sizes, window, parts, record).await
}

/// The pieces every prompt of a Session is made from, before anything is measured.
struct Pieces {
    system: ChatMessage,
    examples: Option<ChatMessage>,
    summary: Option<ChatMessage>,
    history: Vec<ChatMessage>,
    /// Each `history` message's index among the stored ones (`history` skips empty messages).
    stored_index: Vec<usize>,
}

/// Token counts of the pieces (each history message with its template overhead).
struct Sizes {
    system: usize,
    examples: usize,
    summary: usize,
    history: Vec<usize>,
}

/// What the history window keeps: the newest `keep` history messages.
struct Window {
    keep: usize,
    /// Index in `history` of the first message the window alone keeps.
    start: usize,
    with_examples: bool,
}

/// A turn's own parts after the history (none for a warm-up).
struct TurnParts {
    notes: Option<ChatMessage>,
    post_history: Option<ChatMessage>,
}

/// Step 1: the system prompt, example dialogue, rolling summary (its newest chunks within
/// `SUMMARY_MAX`) and history, as chat messages.
async fn gather(engine: &dyn Engine, ctx: &Context) -> Result<Pieces, TurnError> {
    let c = &ctx.character;
    let user = &ctx.user;
    let constant = lore::constant(c);
    let mut system = prompt::system_prompt_for(c, ctx.session.scenario, user, &constant);
    if let Some(cast) = &ctx.cast {
        system.push_str("\n\n");
        system.push_str(cast);
    }
    let system = ChatMessage::new(ChatRole::System, system);
    let examples = prompt::examples(c, user).map(|e| ChatMessage::new(ChatRole::System, e));
    let history = prompt::history(&ctx.messages);
    let stored_index: Vec<usize> = ctx
        .messages
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.content.trim().is_empty())
        .map(|(i, _)| i)
        .collect();
    let mut chunks = Vec::new();
    let mut summary_tokens = 0;
    for s in ctx.texts(MemoryKind::Summary).into_iter().rev() {
        let t = count_cached(engine, &s).await?;
        if summary_tokens + t > SUMMARY_MAX && !chunks.is_empty() {
            break;
        }
        summary_tokens += t;
        chunks.push(s);
    }
    chunks.reverse();
    let summary = prompt::summary_message(&chunks).map(|s| ChatMessage::new(ChatRole::System, s));
    Ok(Pieces {
        system,
        examples,
        summary,
        history,
        stored_index,
    })
}

/// Step 2: every piece's token count, from the engine's tokenizer (history counts cached).
async fn measure(engine: &dyn Engine, pieces: &Pieces) -> Result<Sizes, TurnError> {
    let system = one_message_tokens(engine, &pieces.system).await?;
    let examples = match &pieces.examples {
        Some(e) => one_message_tokens(engine, e).await?,
        None => 0,
    };
    let summary = match &pieces.summary {
        Some(s) => one_message_tokens(engine, s).await?,
        None => 0,
    };
    let mut history = Vec::with_capacity(pieces.history.len());
    for m in &pieces.history {
        history.push(count_cached(engine, &m.content).await? + MESSAGE_OVERHEAD);
    }
    Ok(Sizes {
        system,
        examples,
        summary,
        history,
    })
}

/// Step 3: which history the window keeps, decided on the stored messages alone; messages the
/// window leaves out but the summary does not cover yet (it is written in the background) stay
/// in, word for word, while they fit; the example dialogue only while nothing is left out.
fn choose_window(ctx: &Context, pieces: &Pieces, sizes: &Sizes, budget: usize) -> Window {
    let n = pieces.history.len();
    let counts = &sizes.history;
    let window =
        HISTORY_WINDOW.min(budget.saturating_sub(sizes.system + sizes.summary + NOTES_RESERVE));
    let mut keep = match prompt::fit_turn(0, counts, None, window + prompt::NEXT_MESSAGE_RESERVE) {
        Fit::Keep { keep, .. } => keep,
        Fit::TooLong { .. } => 0,
    };
    let start = n - keep;
    let summarised_stored = ctx.summarised();
    let summarised = pieces
        .stored_index
        .iter()
        .take_while(|&&i| i < summarised_stored)
        .count();
    if summarised < start {
        let extra: usize = counts[summarised..start].iter().sum();
        let kept: usize = counts[start..].iter().sum();
        if sizes.system
            + sizes.summary
            + kept
            + extra
            + prompt::NEXT_MESSAGE_RESERVE
            + NOTES_RESERVE
            <= budget
        {
            keep = n - summarised;
        }
    }
    let kept_t: usize = counts[n - keep..].iter().sum();
    let with_examples = pieces.examples.is_some()
        && keep == n
        && sizes.system
            + sizes.examples
            + sizes.summary
            + kept_t
            + prompt::NEXT_MESSAGE_RESERVE
            + NOTES_RESERVE
            <= budget;
    Window {
        keep,
        start,
        with_examples,
    }
}

/// Step 4: on a turn, the notes (pinned memories, facts, keyword lore) and the card's
/// post-history instructions; the lore that fired goes into `record`. A warm-up has neither.
async fn turn_parts(
    engine: &dyn Engine,
    ctx: &Context,
    message: Option<&str>,
    record: &mut prompt::PromptRecord,
) -> Result<TurnParts, TurnError> {
    let c = &ctx.character;
    let user = &ctx.user;
    let Some(text) = message else {
        if let Some(book) = &c.lorebook {
            record.lore = lore::activate(book, &[], &|_| 0, Some(0)).constant;
        }
        return Ok(TurnParts {
            notes: None,
            post_history: None,
        });
    };
    let post_history = prompt::post_history(c, user).map(|p| ChatMessage::new(ChatRole::System, p));
    let recent: Vec<&str> = ctx
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .chain(std::iter::once(text))
        .collect();
    let mut keyed = Vec::new();
    if let Some(book) = &c.lorebook {
        let mut entry_tokens = Vec::with_capacity(book.entries.len());
        for e in &book.entries {
            entry_tokens.push(count_cached(engine, &e.content).await?);
        }
        let a = lore::activate(book, &recent, &|i| entry_tokens[i], None);
        keyed = a.keyed.iter().map(|f| f.content.clone()).collect();
        record.lore = a.constant.into_iter().chain(a.keyed).collect();
        record.lore_left_out = a.over_budget.into_iter().map(|f| f.name).collect();
    }
    let notes = prompt::notes(
        c,
        user,
        &ctx.texts(MemoryKind::Pinned),
        &ctx.texts(MemoryKind::Fact),
        &keyed,
    )
    .map(|n| ChatMessage::new(ChatRole::System, n));
    Ok(TurnParts {
        notes,
        post_history,
    })
}

/// Step 5: puts the prompt together and checks its exact templated size; when the estimate
/// was short, trims history, then the notes; past that the message itself is too long.
#[allow(clippy::too_many_arguments)]
async fn fit_exactly(
    engine: &dyn Engine,
    ctx: &Context,
    message: Option<&str>,
    pieces: &Pieces,
    sizes: &Sizes,
    mut window: Window,
    mut parts: TurnParts,
    mut record: prompt::PromptRecord,
) -> Result<Assembled, TurnError> {
    let budget = record.budget;
    let n = pieces.history.len();
    loop {
        let kept = &pieces.history[n - window.keep..];
        let mut messages = vec![pieces.system.clone()];
        if window.with_examples {
            messages.extend(pieces.examples.clone());
        }
        messages.extend(pieces.summary.clone());
        messages.extend_from_slice(kept);
        messages.extend(parts.notes.clone());
        if let Some(text) = message {
            messages.push(ChatMessage::new(ChatRole::User, text));
        }
        messages.extend(parts.post_history.clone());
        let exact = engine.count_prompt_tokens(&messages).await?;
        if exact <= budget {
            record.sections =
                sections(engine, ctx, message, pieces, sizes, &window, &parts).await?;
            record.tokens = exact;
            record.dropped_messages = n - window.keep;
            return Ok(Assembled {
                messages,
                record,
                window_start: pieces
                    .stored_index
                    .get(window.start)
                    .copied()
                    .unwrap_or(ctx.messages.len()),
            });
        }
        if window.keep > 0 {
            window.keep -= 1;
        } else if parts.notes.is_some() || parts.post_history.is_some() {
            parts.notes = None;
            parts.post_history = None;
            record.lore.retain(|f| f.reason == "constant");
        } else {
            return Err(TurnError::MessageTooLong {
                needed: exact,
                budget,
            });
        }
    }
}

/// The prompt inspector's sections of a prompt that fits, with their token counts.
async fn sections(
    engine: &dyn Engine,
    ctx: &Context,
    message: Option<&str>,
    pieces: &Pieces,
    sizes: &Sizes,
    window: &Window,
    parts: &TurnParts,
) -> Result<Vec<prompt::Section>, TurnError> {
    let n = pieces.history.len();
    let kept = &pieces.history[n - window.keep..];
    let section = |name: &str, text: &str, tokens: usize| prompt::Section {
        name: name.into(),
        text: text.to_string(),
        tokens,
    };
    let mut sections = vec![section(
        "System prompt",
        &pieces.system.content,
        sizes.system,
    )];
    if let (true, Some(e)) = (window.with_examples, &pieces.examples) {
        sections.push(section("Example dialogue", &e.content, sizes.examples));
    }
    if let Some(s) = &pieces.summary {
        sections.push(section("Summary", &s.content, sizes.summary));
    }
    if !kept.is_empty() {
        let text = kept
            .iter()
            .map(|m| {
                let who = match m.role {
                    ChatRole::User => ctx.user.name.as_str(),
                    _ => ctx.character.name.as_str(),
                };
                format!("{who}: {}", m.content)
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let tokens = sizes.history[n - window.keep..].iter().sum();
        sections.push(section(
            &format!("History ({} messages)", kept.len()),
            &text,
            tokens,
        ));
    }
    if let Some(notes) = &parts.notes {
        let tokens = one_message_tokens(engine, notes).await?;
        sections.push(section("Notes", &notes.content, tokens));
    }
    if let Some(text) = message {
        let tokens = count_cached(engine, text).await? + MESSAGE_OVERHEAD;
        sections.push(section("Message", text, tokens));
    }
    if let Some(p) = &parts.post_history {
        let tokens = one_message_tokens(engine, p).await?;
        sections.push(section("Post-history instructions", &p.content, tokens));
    }
    Ok(sections)
}

async fn one_message_tokens(engine: &dyn Engine, m: &ChatMessage) -> Result<usize, engine::Error> {
    engine.count_prompt_tokens(std::slice::from_ref(m)).await
}
