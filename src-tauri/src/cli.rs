//! The headless front end: `troupe characters`, `troupe chat`, `troupe sessions`,
//! `troupe history`, `troupe bench`. Same core, same data directory and same model setting as
//! the window, so a chat started in one continues in the other. Output is plain text for
//! people and scripts: ids first, one item per line; replies stream to stdout, everything else
//! goes to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::app::{now_ms, sampling, Troupe};
use crate::characters::Character;
use crate::conversation::{self, prompt, Cancel, Scenario, TurnError, TurnEvent};
use crate::engine::{ChatMessage, ChatRole, Engine, EngineEvent, MistralEngine, Sampling};
use crate::settings::Paths;
use crate::store::Role;

#[derive(Debug, Parser)]
#[command(
    name = "troupe",
    version,
    about = "Chat with characters on your own machine."
)]
pub struct Cli {
    /// GGUF model file to use instead of the one in settings (also: TROUPE_MODEL).
    #[arg(long, global = true, value_name = "PATH")]
    pub model: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List characters: id, category and name, one per line.
    Characters,
    /// List a character's sessions: id, scenario, message count and title.
    Sessions {
        #[arg(long)]
        character: String,
    },
    /// Print a session's messages.
    History {
        #[arg(long)]
        session: i64,
    },
    /// Send a message and stream the reply. With --character, continues that character's most
    /// recent session (or starts one); --session picks a session; --new starts a fresh one.
    Chat {
        #[arg(long, required_unless_present = "session")]
        character: Option<String>,
        #[arg(long, conflicts_with = "character")]
        session: Option<i64>,
        /// Start a new session even if one exists.
        #[arg(long)]
        new: bool,
        /// Scenario of a new session: chit-chat, interview or companionship.
        #[arg(long, default_value = "chit_chat")]
        scenario: String,
        /// The message.
        message: String,
    },
    /// Measure the engine: time to first token, prefill and decode speed, memory.
    Bench {
        /// Measured runs (after one warm-up).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Tokens generated per run.
        #[arg(long, default_value_t = 128)]
        max_tokens: usize,
        /// Worker threads for the matmuls (default: all cores; main.rs sets RAYON_NUM_THREADS).
        #[arg(long)]
        threads: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Instead: send this many short requests and print memory as it goes (a soak test).
        #[arg(long, value_name = "REQUESTS")]
        soak: Option<usize>,
    },
}

/// Runs a CLI command. Errors print as one line on stderr (see main.rs).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Some(command) = cli.command else {
        bail!("no command given; see `troupe --help`")
    };
    let troupe = Troupe::open(Paths::from_env()).context("cannot open Troupe's data")?;
    match command {
        Command::Characters => {
            let mut out = std::io::stdout().lock();
            for c in troupe.store.list_characters()? {
                writeln!(out, "{}\t{}\t{}", c.id, c.category.as_str(), c.name)?;
            }
        }
        Command::Sessions { character } => {
            troupe.store.get_character(&character)?;
            let mut out = std::io::stdout().lock();
            for s in troupe.store.list_sessions(&character)? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    s.id,
                    s.scenario.as_str(),
                    s.n_messages,
                    s.title
                )?;
            }
        }
        Command::History { session } => {
            let s = troupe.store.get_session(session)?;
            let c = troupe.store.get_character(&s.character_id)?;
            let mut out = std::io::stdout().lock();
            for m in troupe.store.list_messages(session)? {
                let who = if m.role == Role::User {
                    "You"
                } else {
                    c.name.as_str()
                };
                writeln!(out, "{who}: {}", m.content)?;
            }
        }
        Command::Chat {
            character,
            session,
            new,
            scenario,
            message,
        } => {
            chat(
                &troupe, cli.model, character, session, new, &scenario, &message,
            )
            .await?
        }
        Command::Bench {
            soak: Some(requests),
            ..
        } => soak(&troupe, cli.model, requests).await?,
        Command::Bench {
            runs,
            max_tokens,
            threads,
            json,
            soak: None,
        } => bench(&troupe, cli.model, runs, max_tokens, threads, json).await?,
    }
    Ok(())
}

async fn chat(
    troupe: &Troupe,
    model: Option<PathBuf>,
    character: Option<String>,
    session: Option<i64>,
    new: bool,
    scenario: &str,
    message: &str,
) -> anyhow::Result<()> {
    if message.trim().is_empty() {
        bail!("the message is empty: nothing sent");
    }
    let scenario = Scenario::parse(scenario).with_context(|| {
        format!("unknown scenario '{scenario}': use chit_chat, interview or companionship")
    })?;
    let session = match (session, character) {
        (Some(id), _) => troupe.store.get_session(id)?,
        (None, Some(cid)) => {
            let c = troupe.store.get_character(&cid)?;
            match troupe
                .store
                .list_sessions(&cid)?
                .into_iter()
                .next()
                .filter(|_| !new)
            {
                Some(s) => s,
                None => troupe.store.create_session(
                    &cid,
                    scenario,
                    scenario.label(),
                    c.greetings.for_scenario(scenario),
                    now_ms(),
                )?,
            }
        }
        (None, None) => bail!("give --character or --session"),
    };
    let character = troupe.store.get_character(&session.character_id)?;
    eprintln!(
        "[session {} · {} · {}]",
        session.id,
        character.name,
        session.scenario.label()
    );

    let settings = troupe.settings();
    let path = troupe.model_file(&settings, model.as_deref());
    troupe.engine.load(path).await?;
    let engine = troupe.engine.engine()?;

    // Ctrl+C stops the reply and keeps what was said, like the Stop button.
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            c2.cancel();
        }
    });
    let mut stdout = std::io::stdout();
    let result = conversation::send(
        &troupe.store,
        engine.as_ref(),
        session.id,
        message,
        &sampling(&settings),
        &cancel,
        &now_ms,
        &mut |e| match e {
            TurnEvent::Started { dropped, .. } if dropped > 0 => {
                eprintln!("[{dropped} older messages did not fit the context and were left out]")
            }
            TurnEvent::Started { .. } => {}
            TurnEvent::Text(t) => {
                let _ = stdout.write_all(t.as_bytes());
                let _ = stdout.flush();
            }
        },
    )
    .await;
    println!();
    match result {
        Ok((_, stats)) => {
            eprintln!(
                "[{} tokens · first token {} ms · {:.1} tokens/s]",
                stats.reply_tokens, stats.first_token_ms, stats.tokens_per_second
            );
            Ok(())
        }
        Err(TurnError::Failed { reason, .. }) => {
            bail!("the reply stopped early (what was said is saved): {reason}")
        }
        Err(e) => Err(e.into()),
    }
}

/// Sends `requests` distinct chat requests (a character prompt, 8 new tokens each) and prints
/// resident memory at the start, every 50 requests and at the end. The engine's memory should
/// stay bounded however long the app runs; with mistral.rs 0.8 on CPU it does not (its prefix
/// cache is never evicted there, docs/PERFORMANCE.md), and this is the measurement to fix it by.
async fn soak(troupe: &Troupe, model: Option<PathBuf>, requests: usize) -> anyhow::Result<()> {
    let settings = troupe.settings();
    let engine = MistralEngine::load(&troupe.model_file(&settings, model.as_deref())).await?;
    let character = troupe.store.get_character("marisol-vega")?;
    let sampling = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens: 8,
        stop: vec![],
    };
    let start = rss_mb();
    println!("soak: {requests} requests · RSS at start {start:.0} MB");
    let t0 = Instant::now();
    for i in 1..=requests {
        let messages = vec![
            ChatMessage::new(
                ChatRole::System,
                format!(
                    "Visit {i}.\n{}",
                    prompt::system_prompt(&character, Scenario::ChitChat)
                ),
            ),
            ChatMessage::new(
                ChatRole::User,
                format!("Good morning! I would like {i} rolls, please."),
            ),
        ];
        one_run(&engine, messages, &sampling).await?;
        if i % 50 == 0 || i == requests {
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

/// Peak resident memory of this process, in MB (Linux; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    proc_status_kb("VmHWM:") / 1024.0
}

/// Current resident memory of this process, in MB (Linux; 0 elsewhere).
pub fn rss_mb() -> f64 {
    proc_status_kb("VmRSS:") / 1024.0
}

fn proc_status_kb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0.0)
}

/// The benchmark prompt: a built-in character's real system prompt, a few turns of history and
/// a question, about 500 tokens, like a chat a few turns in. `nonce` makes every run's prompt
/// distinct from its first token, so no run is helped by the prefix cache of another.
fn bench_messages(c: &Character, nonce: usize) -> Vec<ChatMessage> {
    let mut m = vec![ChatMessage::new(
        ChatRole::System,
        format!(
            "Conversation {nonce}.\n{}",
            prompt::system_prompt(c, Scenario::ChitChat)
        ),
    )];
    let turns = [
        (
            c.greetings.chit_chat.as_str(),
            "Good evening! I was hoping to find you in.",
        ),
        (
            "Then you are in luck. What is on your mind?",
            "I keep thinking about how people become who they are.",
        ),
        (
            "A large question for a small evening. Begin with yourself: what made you?",
            "Books, mostly, and one stubborn teacher.",
        ),
    ];
    for (character, user) in turns {
        m.push(ChatMessage::new(ChatRole::Assistant, character));
        m.push(ChatMessage::new(ChatRole::User, user));
    }
    m
}

struct Run {
    ttft_ms: f64,
    prefill_tps: f64,
    decode_tps: f64,
    tokens: usize,
}

async fn one_run(
    engine: &dyn Engine,
    messages: Vec<ChatMessage>,
    sampling: &Sampling,
) -> anyhow::Result<(Run, String)> {
    let prompt_tokens = engine.count_prompt_tokens(&messages).await?;
    let started = Instant::now();
    let mut gen = engine.generate(messages, sampling.clone());
    let mut first = None;
    let mut n = 0usize;
    let mut text = String::new();
    while let Some(e) = gen.recv().await {
        match e {
            EngineEvent::Text(t) => {
                first.get_or_insert_with(|| started.elapsed().as_secs_f64());
                n += 1;
                text.push_str(&t);
            }
            EngineEvent::Finished { usage, .. } => {
                if let Some(u) = usage {
                    n = n.max(u.completion_tokens);
                }
                break;
            }
            EngineEvent::Failed(e) => bail!("generation failed: {e}"),
        }
    }
    let total = started.elapsed().as_secs_f64();
    let ttft = first.unwrap_or(total);
    Ok((
        Run {
            ttft_ms: ttft * 1000.0,
            prefill_tps: prompt_tokens as f64 / ttft,
            decode_tps: if n > 1 {
                (n - 1) as f64 / (total - ttft).max(1e-9)
            } else {
                0.0
            },
            tokens: prompt_tokens,
        },
        text,
    ))
}

fn stats(xs: &[f64]) -> serde_json::Value {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let median = if v.is_empty() { 0.0 } else { v[v.len() / 2] };
    let r = |x: f64| (x * 10.0).round() / 10.0;
    serde_json::json!({
        "median": r(median),
        "min": r(v.first().copied().unwrap_or(0.0)),
        "max": r(v.last().copied().unwrap_or(0.0)),
    })
}

async fn bench(
    troupe: &Troupe,
    model: Option<PathBuf>,
    runs: usize,
    max_tokens: usize,
    threads: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let settings = troupe.settings();
    let path = troupe.model_file(&settings, model.as_deref());
    let rss_before = rss_mb();
    let t0 = Instant::now();
    let engine = MistralEngine::load(&path).await?;
    let load_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let rss_loaded = rss_mb();
    let character = troupe.store.get_character("sherlock-holmes").or_else(|_| {
        let id = troupe
            .store
            .list_characters()?
            .first()
            .map(|c| c.id.clone())
            .unwrap_or_default();
        troupe.store.get_character(&id)
    })?;
    // Greedy and without stop strings, so every run generates the same, full length.
    let sampling = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens,
        stop: vec![],
    };

    let (mut ttft, mut prefill, mut decode, mut warm) = (vec![], vec![], vec![], vec![]);
    let mut opened = vec![];
    let mut prompt_tokens = 0;
    for i in 0..=runs {
        let messages = bench_messages(&character, i);
        let (run, reply) = one_run(&engine, messages.clone(), &sampling).await?;
        // The next turn of the same chat: its prefix is cached, only the new tokens prefill.
        let mut next = messages;
        next.push(ChatMessage::new(ChatRole::Assistant, reply.trim()));
        next.push(ChatMessage::new(
            ChatRole::User,
            "And what would you tell your younger self?",
        ));
        let (follow, _) = one_run(
            &engine,
            next,
            &Sampling {
                max_tokens: 1,
                ..sampling.clone()
            },
        )
        .await?;
        // A chat the app warmed when it opened (`conversation::warm`): everything but the
        // user's message was prefilled in the background; the first reply pays only the rest.
        let fresh = bench_messages(&character, runs + 1 + i);
        let before_user = fresh[..fresh.len() - 1].to_vec();
        one_run(
            &engine,
            before_user,
            &Sampling {
                max_tokens: 1,
                ..sampling.clone()
            },
        )
        .await?;
        let (first, _) = one_run(
            &engine,
            fresh,
            &Sampling {
                max_tokens: 1,
                ..sampling.clone()
            },
        )
        .await?;
        if i == 0 {
            continue; // warm-up
        }
        opened.push(first.ttft_ms);
        prompt_tokens = run.tokens;
        ttft.push(run.ttft_ms);
        prefill.push(run.prefill_tps);
        decode.push(run.decode_tps);
        warm.push(follow.ttft_ms);
    }
    let threads = threads
        .or_else(|| {
            std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|t| t.parse().ok())
        })
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let report = serde_json::json!({
        "model": engine.info().name,
        "device": engine.info().device,
        "threads": threads,
        "runs": runs,
        "prompt_tokens": prompt_tokens,
        "new_tokens": max_tokens,
        "troupe": {
            "decode_tps": stats(&decode)["median"],
            "prefill_tps": stats(&prefill)["median"],
            "ttft_ms": stats(&ttft)["median"],
            "next_turn_ttft_ms": stats(&warm)["median"],
            "warmed_first_reply_ttft_ms": stats(&opened)["median"],
            "peak_rss_mb": (peak_rss_mb()).round(),
            "load_ms": load_ms.round(),
            "idle_rss_mb_before_load": rss_before.round(),
            "idle_rss_mb_loaded": rss_loaded.round(),
            "spread": {
                "decode_tps": stats(&decode),
                "prefill_tps": stats(&prefill),
                "ttft_ms": stats(&ttft),
                "next_turn_ttft_ms": stats(&warm),
                "warmed_first_reply_ttft_ms": stats(&opened),
            }
        }
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let t = &report["troupe"];
        println!(
            "model {} on {} · {} threads · {} prompt tokens · {} new tokens · {} runs",
            report["model"].as_str().unwrap_or(""),
            report["device"].as_str().unwrap_or(""),
            threads,
            prompt_tokens,
            max_tokens,
            runs
        );
        println!("{:<28}{:>10}{:>10}{:>10}", "", "median", "min", "max");
        for (label, key) in [
            ("time to first token (ms)", "ttft_ms"),
            ("next turn first token (ms)", "next_turn_ttft_ms"),
            ("warmed chat first token (ms)", "warmed_first_reply_ttft_ms"),
            ("prefill (tokens/s)", "prefill_tps"),
            ("decode (tokens/s)", "decode_tps"),
        ] {
            let s = &t["spread"][key];
            let f = |k: &str| s[k].as_f64().unwrap_or(0.0);
            println!(
                "{label:<28}{:>10.1}{:>10.1}{:>10.1}",
                f("median"),
                f("min"),
                f("max")
            );
        }
        println!(
            "model load {} ms · RSS {} MB before load, {} MB loaded, peak {} MB",
            t["load_ms"], t["idle_rss_mb_before_load"], t["idle_rss_mb_loaded"], t["peak_rss_mb"]
        );
    }
    Ok(())
}
