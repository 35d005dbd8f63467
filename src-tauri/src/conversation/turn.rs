//! One exchange: the user's Message in, the Character's reply streamed out and stored.
//!
//! Order of effects, which the crash test relies on: the user's Message is committed, an empty
//! `streaming` reply row is committed, and then every piece of text is committed *before* it is
//! handed to `on_event` (and so before anyone can see it). The reply ends `complete`, or
//! `interrupted` when it was cancelled or the engine failed; what was shown stays either way.

use crate::characters::{Character, Scenario};
use crate::engine::{ChatMessage, ChatRole, Engine, EngineEvent, Sampling};
use crate::store::{self, Message, MessageStatus, Role, Store};

use super::assemble::{assemble, budget};
use super::context::{context, Context};
use super::naive::assemble_naive;
use super::prompt::{kept_record, Prompting};
use super::stream::{stream_reply, ReplyStats, TurnEvent};
use super::tidy::title_from;
use super::{memory, prompt, Cancel, TurnError};

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
    send_with(
        Prompting::Troupe,
        store,
        engine,
        session_id,
        text,
        sampling,
        cancel,
        now,
        on_event,
    )
    .await
}

/// `send`, with the prompt made the way `prompting` says.
#[allow(clippy::too_many_arguments)]
pub async fn send_with(
    prompting: Prompting,
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
    let budget = budget(engine, sampling);
    let assembled = match prompting {
        Prompting::Troupe => assemble(engine, &ctx, Some(text), budget).await?,
        Prompting::Naive => assemble_naive(engine, &ctx, Some(text), budget).await?,
    };
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
        &kept_record(
            assembled.record,
            &messages,
            &engine.info().name,
            prompting,
            sampling,
        ),
    )?;
    // A new conversation is named after its first message.
    if ctx.session.title == ctx.session.scenario.label()
        && !ctx.messages.iter().any(|m| m.role == Role::User)
    {
        store.rename_session(session_id, &title_from(text))?;
    }
    // In companionship, what the user says about themselves is kept for later prompts.
    if ctx.session.scenario == Scenario::Companionship && prompting == Prompting::Troupe {
        let known = ctx.texts(store::MemoryKind::Fact);
        for fact in memory::facts_in(text) {
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
    regenerate_with(
        Prompting::Troupe,
        store,
        engine,
        reply_id,
        sampling,
        cancel,
        on_event,
    )
    .await
}

/// `regenerate`, with the prompt made the way `prompting` says (the arena's second contender).
#[allow(clippy::too_many_arguments)]
pub async fn regenerate_with(
    prompting: Prompting,
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
    let budget = budget(engine, sampling);
    let assembled = match prompting {
        Prompting::Troupe => assemble(engine, &ctx, Some(&user.content), budget).await?,
        Prompting::Naive => assemble_naive(engine, &ctx, Some(&user.content), budget).await?,
    };
    let sampling = with_user_stops(sampling, &ctx.user);
    let reply = store.begin_rewrite(reply_id)?;
    store.save_prompt_record(
        reply.id,
        &kept_record(
            assembled.record,
            &assembled.messages,
            &engine.info().name,
            prompting,
            &sampling,
        ),
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
    let mut ctx = context(store, m.session_id)?;
    if store.group(m.session_id)?.is_some() {
        // Written again by the member who wrote it, from what they were there for.
        let speaker = store
            .speakers(m.session_id)?
            .remove(&reply_id)
            .unwrap_or_else(|| ctx.session.character_id.clone());
        ctx = super::group::speaker_context(store, m.session_id, &speaker)?;
    }
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
