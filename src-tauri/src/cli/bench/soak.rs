//! Holding on: `troupe bench --soak N` (memory over many requests must stay flat) and
//! `troupe bench --turns N` (a long chat as the window holds it: a late turn must answer as fast
//! as an early one).

use std::path::PathBuf;
use std::time::Instant;

use super::{one_run, peak_rss_mb, rss_mb, stats, tempfile_dir};
use crate::app::{now_ms, Troupe};
use crate::characters::Scenario;
use crate::conversation::{self, prompt, Cancel, TurnError, TurnEvent};
use crate::engine::{ChatMessage, ChatRole, MistralEngine, Sampling};
use crate::settings::Paths;

/// Sends `requests` distinct chat requests (a short character prompt, 8 new tokens each) and
/// prints resident memory at the start, along the way and at the end: it must stay flat however
/// long the app runs. (Upstream mistral.rs never evicts its prefix cache on CPU, about 23-46 MB
/// per request; our vendored patch bounds it. Every request's KV cache is allocated in blocks of
/// 512 tokens, so a short prompt leaks as much as a long one would and the soak runs quicker.)
pub async fn soak(troupe: &Troupe, model: Option<PathBuf>, requests: usize) -> anyhow::Result<()> {
    let settings = troupe.settings();
    let engine = MistralEngine::load(
        &troupe.model_file(&settings, model.as_deref()),
        Some(&Paths::model_cache()),
    )
    .await?;
    let character = troupe.store.get_character("marisol-vega")?;
    let sampling = Sampling::greedy(8);
    let start = rss_mb();
    println!("soak: {requests} requests · RSS at start {start:.0} MB");
    let t0 = Instant::now();
    for i in 1..=requests {
        let messages = vec![
            ChatMessage::new(
                ChatRole::System,
                format!(
                    "Visit {i}. You are {}, {}.",
                    character.name, character.tagline
                ),
            ),
            ChatMessage::new(
                ChatRole::User,
                format!("Good morning! I would like {i} rolls, please."),
            ),
        ];
        one_run(&engine, messages, &sampling).await?;
        if i % 50 == 0 || i == requests || i == 10 || i == 25 {
            println!(
                "after {i:>4} requests: RSS {:.0} MB · {:.0} s",
                rss_mb(),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "soak: RSS at start {start:.0} MB, at end {:.0} MB, peak {:.0} MB",
        rss_mb(),
        peak_rss_mb()
    );
    Ok(())
}

/// A chat of `turns` turns with a built-in Character in a scratch database, like a person in the
/// window: after each reply the next prompt is warmed (the window does that while the user
/// reads), then the next message is sent. Prints each turn's time to first token, and turn 2
/// against the last turn: a long chat must answer as fast as a short one.
pub async fn long_chat(
    model: Option<PathBuf>,
    turns: usize,
    max_tokens: usize,
) -> anyhow::Result<()> {
    let scratch = tempfile_dir()?;
    let troupe = Troupe::open(Paths::at(&scratch))?;
    let settings = troupe.settings();
    troupe.start_engine(&settings, model.as_deref()).await?;
    let engine = troupe.engine.engine()?;
    let c = troupe.store.get_character("marisol-vega")?;
    let session = troupe.store.create_session(
        &c.id,
        Scenario::ChitChat,
        "bench",
        c.greeting(Scenario::ChitChat).as_deref(),
        now_ms(),
    )?;
    let sampling = Sampling {
        max_tokens,
        stop: prompt::stop_strings(),
        ..Sampling::greedy(max_tokens)
    };
    let topics = [
        "the first loaf you ever baked",
        "how early you wake up",
        "your favourite flour",
        "what your grandmother taught you",
        "the busiest day of the year",
        "a customer you remember",
        "rye or wheat",
        "what you do on Sundays",
    ];
    let mut ttft = Vec::with_capacity(turns);
    println!("turn\tfirst token ms\tprompt tokens\tdropped");
    for i in 1..=turns {
        let message = format!(
            "Turn {i}. Tell me about {}, in a sentence or two.",
            topics[i % topics.len()]
        );
        let mut dropped = 0;
        let (_, stats) = conversation::send(
            &troupe.store,
            engine.as_ref(),
            session.id,
            &message,
            &sampling,
            &Cancel::new(),
            &now_ms,
            &mut |e| {
                if let TurnEvent::Started { dropped: d, .. } = e {
                    dropped = d;
                }
            },
        )
        .await
        .or_else(|e| match e {
            TurnError::Failed { .. } => Ok((
                troupe
                    .store
                    .list_messages(session.id)?
                    .pop()
                    .expect("a reply"),
                conversation::ReplyStats {
                    prompt_tokens: 0,
                    reply_tokens: 0,
                    first_token_ms: 0,
                    tokens_per_second: 0.0,
                },
            )),
            e => Err(anyhow::Error::from(e)),
        })?;
        ttft.push(stats.first_token_ms as f64);
        conversation::memory::catch_up(
            &troupe.store,
            engine.as_ref(),
            session.id,
            &sampling,
            &Cancel::new(),
            &now_ms,
        )
        .await?;
        println!(
            "{i}\t{}\t{}\t{dropped}",
            stats.first_token_ms, stats.prompt_tokens
        );
        conversation::warm(&troupe.store, engine.as_ref(), session.id, &sampling).await?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if turns >= 2 {
        let (t2, last) = (ttft[1], ttft[turns - 1]);
        println!(
            "turn 2: {t2:.0} ms · turn {turns}: {last:.0} ms · ratio {:.2} · median {} ms · max {} ms",
            last / t2.max(1.0),
            stats(&ttft)["median"],
            stats(&ttft)["max"]
        );
    }
    if turns >= 12 {
        // One turn's figure moves by ±20% from run to run on a shared machine; five turns'
        // median does not.
        let median = |xs: &[f64]| stats(xs)["median"].as_f64().unwrap_or(0.0);
        let (early, late) = (median(&ttft[1..6]), median(&ttft[turns - 5..]));
        println!(
            "median of turns 2-6: {early:.0} ms · of turns {}-{turns}: {late:.0} ms · ratio {:.2}",
            turns - 4,
            late / early.max(1.0)
        );
    }
    Ok(())
}
