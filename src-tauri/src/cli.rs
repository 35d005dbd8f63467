//! The headless front end: `troupe characters`, `troupe chat`, `troupe sessions`,
//! `troupe history`, `troupe bench`. Same core, same data directory and same model setting as
//! the window, so a chat started in one continues in the other. Output is plain text for
//! people and scripts: ids first, one item per line; replies stream to stdout, everything else
//! goes to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::app::{now_ms, sampling_for_session, CardFormat, Imported, Troupe};
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
pub enum ModelsAction {
    /// Add a GGUF from elsewhere on disk to the list (checked first).
    Add { path: PathBuf },
    /// Download a GGUF from a Hugging Face repository (HF_ENDPOINT, HF_TOKEN) into the models
    /// folder, resuming an interrupted download and checking its SHA-256.
    Download {
        /// owner/name
        repo: String,
        /// The file in the repository.
        file: String,
    },
    /// Make a model file the one that runs (the window picks it up at its next start).
    Use { path: PathBuf },
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
        /// Who you are in a new session: a persona's name or id (see `troupe personas`).
        #[arg(long)]
        persona: Option<String>,
        /// The message.
        message: String,
    },
    /// Print the prompt the next reply of a session would get, section by section, with token
    /// counts, the lore entries that fire and what is left out.
    Prompt {
        #[arg(long)]
        session: i64,
        /// The message to assemble it for (default: none, the prompt up to the history).
        #[arg(long)]
        message: Option<String>,
    },
    /// Search every message (full text; all words must match; `word*` matches a prefix).
    /// Prints: session id, message id, character, and the text around the match.
    Search {
        query: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// List personas (who you are in a session), or add one.
    Personas {
        /// Add a persona with this name.
        #[arg(long, value_name = "NAME")]
        add: Option<String>,
        #[arg(long, requires = "add")]
        description: Option<String>,
        /// Make the added persona the default for new sessions.
        #[arg(long, requires = "add")]
        default: bool,
    },
    /// A session's memories: the rolling summary, pinned memories and facts about you.
    /// --pin adds a pinned memory.
    Memories {
        #[arg(long)]
        session: i64,
        #[arg(long, value_name = "TEXT")]
        pin: Option<String>,
    },
    /// Import character cards (PNG, JSON or CHARX; V1, V2 or V3) as new characters, or a
    /// SillyTavern World Info file into a character's lorebook (--lorebook-for). Prints one
    /// line per file; a file that fails is named with its problem and changes nothing.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Add lorebook files' entries to this character's lorebook.
        #[arg(long, value_name = "CHARACTER")]
        lorebook_for: Option<String>,
    },
    /// Export a character as a card other apps read: png (V2 and V3 inside), json (V3) or
    /// charx.
    Export {
        id: String,
        #[arg(long, default_value = "png", value_parser = ["png", "json", "charx"])]
        format: String,
        /// Where to write it (default: ID.FORMAT in the current folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The model manager: list models with what their header says and whether they suit this
    /// machine; add a file, download one from Hugging Face, choose which one runs.
    Models {
        #[command(subcommand)]
        action: Option<ModelsAction>,
    },
    /// Show or change sampling: the settings' default, a Character's own (--character) or a
    /// Session's override (--session). Prints the result as JSON.
    Sampling {
        #[arg(long)]
        character: Option<String>,
        #[arg(long, conflicts_with = "character")]
        session: Option<i64>,
        /// Start from a preset: balanced, precise, creative or deterministic.
        #[arg(long)]
        preset: Option<String>,
        /// Change one field, e.g. --set temperature=0.7 --set seed=42 (repeatable).
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        set: Vec<String>,
        /// Remove the Character's or Session's own setting, so it inherits again.
        #[arg(long)]
        clear: bool,
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
        /// Instead: hold one chat of this many turns with a built-in Character, as the window
        /// does (the next prompt warmed while the user would read), and print the time to
        /// first token of every turn.
        #[arg(long, value_name = "TURNS", conflicts_with = "soak")]
        turns: Option<usize>,
        /// Instead: seed a scratch database with this many messages and time full-text search
        /// and opening a session (no model needed).
        #[arg(long, value_name = "MESSAGES", conflicts_with_all = ["soak", "turns"])]
        search: Option<usize>,
        /// Instead: the model's perplexity on this text file (plain text, scored in windows of
        /// 1,024 tokens), to compare quantisations of one model. Lower is better.
        #[arg(long, value_name = "TEXT_FILE", conflicts_with_all = ["soak", "turns", "search"])]
        perplexity: Option<PathBuf>,
        /// Also run llama.cpp's llama-bench on the same file, threads, prompt length and reply
        /// length, and print the ratios.
        #[arg(long)]
        vs_llama_cpp: bool,
        /// The llama-bench binary (default: $LLAMA_BENCH, else the one `bash .ci/llama-cpp.sh`
        /// builds).
        #[arg(long, value_name = "PATH", requires = "vs_llama_cpp")]
        llama_bench: Option<PathBuf>,
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
            persona,
            message,
        } => {
            chat(
                &troupe,
                cli.model,
                character,
                session,
                new,
                &scenario,
                persona.as_deref(),
                &message,
            )
            .await?
        }
        Command::Prompt { session, message } => {
            prompt_command(&troupe, cli.model, session, message.as_deref()).await?
        }
        Command::Search { query, limit } => {
            let mut out = std::io::stdout().lock();
            for h in troupe.store.search_messages(&query, limit)? {
                let who = if h.role == Role::User {
                    "you"
                } else {
                    h.character_name.as_str()
                };
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}: {}",
                    h.session_id,
                    h.message_id,
                    h.character_name,
                    who,
                    h.snippet.replace('\n', " ")
                )?;
            }
        }
        Command::Personas {
            add,
            description,
            default,
        } => {
            if let Some(name) = add {
                if name.trim().is_empty() {
                    bail!("a persona needs a name");
                }
                let p = troupe.store.save_persona(
                    &crate::store::Persona {
                        id: 0,
                        name: name.trim().to_string(),
                        description: description.unwrap_or_default(),
                        is_default: default,
                    },
                    now_ms(),
                )?;
                println!("{}\t{}", p.id, p.name);
            } else {
                for p in troupe.store.list_personas()? {
                    println!(
                        "{}\t{}{}\t{}",
                        p.id,
                        p.name,
                        if p.is_default { " (default)" } else { "" },
                        p.description
                    );
                }
            }
        }
        Command::Memories { session, pin } => {
            let s = troupe.store.get_session(session)?;
            if let Some(text) = pin {
                if text.trim().is_empty() {
                    bail!("an empty memory: nothing pinned");
                }
                troupe.store.add_memory(
                    &s.character_id,
                    Some(session),
                    crate::store::MemoryKind::Pinned,
                    text.trim(),
                    None,
                    now_ms(),
                )?;
            }
            for m in troupe.store.memories_for_session(session)? {
                println!("{}\t{}\t{}", m.id, m.kind.as_str(), m.content);
            }
        }
        Command::Import {
            files,
            lorebook_for,
        } => {
            let mut failed = 0;
            for file in &files {
                match troupe.import_card(file, lorebook_for.as_deref()) {
                    Ok(Imported::Character(c)) => {
                        println!("{}\t{}\t{}", c.id, c.category.as_str(), c.name)
                    }
                    Ok(Imported::Lorebook { character, entries }) => {
                        println!("{character}\tlorebook\t+{entries} entries")
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{e}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} files not imported", files.len());
            }
        }
        Command::Export { id, format, out } => {
            let format = match format.as_str() {
                "json" => CardFormat::Json,
                "charx" => CardFormat::Charx,
                _ => CardFormat::Png,
            };
            let bytes = troupe.export_card(&id, format)?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{id}.{}", format.extension())));
            std::fs::write(&out, bytes)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
            println!("{}", out.display());
        }
        Command::Models { action } => models_command(&troupe, cli.model, action).await?,
        Command::Sampling {
            character,
            session,
            preset,
            set,
            clear,
        } => sampling_command(&troupe, character, session, preset, set, clear)?,
        Command::Bench {
            soak: Some(requests),
            ..
        } => soak(&troupe, cli.model, requests).await?,
        Command::Bench {
            turns: Some(turns),
            max_tokens,
            ..
        } => long_chat(cli.model, turns, max_tokens).await?,
        Command::Bench {
            search: Some(n), ..
        } => search_bench(n)?,
        Command::Bench {
            perplexity: Some(text),
            json,
            ..
        } => perplexity(&troupe, cli.model, &text, json).await?,
        Command::Bench {
            runs,
            max_tokens,
            threads,
            json,
            soak: None,
            turns: None,
            search: None,
            perplexity: None,
            vs_llama_cpp,
            llama_bench,
        } => {
            let opts = BenchOptions {
                runs,
                max_tokens,
                threads,
                json,
                llama_bench: vs_llama_cpp
                    .then(|| llama_bench.unwrap_or_else(llama_bench::default_path)),
            };
            bench(&troupe, cli.model, opts).await?
        }
    }
    Ok(())
}

async fn models_command(
    troupe: &Troupe,
    model: Option<PathBuf>,
    action: Option<ModelsAction>,
) -> anyhow::Result<()> {
    use crate::engine::{check_model_file, download, models};
    let mut settings = troupe.settings();
    let mem = models::machine_memory();
    match action {
        None => {
            let in_use = troupe.model_file(&settings, model.as_deref());
            let gb = |b: u64| b as f64 / 1e9;
            println!(
                "this machine: {:.1} GB of memory, {:.1} GB free{}",
                gb(mem.total),
                gb(mem.available),
                mem.gpu
                    .map(|g| format!(", GPU {:.1} GB", gb(g)))
                    .unwrap_or_default()
            );
            for m in troupe.models(&settings, model.as_deref(), &mem) {
                let mark = if m.path == in_use { "*" } else { " " };
                let fit = match m.fit {
                    models::Fit::Fits => "fits",
                    models::Fit::MaySlow => "may be slow",
                    models::Fit::WontFit => "won't fit",
                    models::Fit::Unusable => "unusable",
                };
                match &m.header {
                    Ok(h) => println!(
                        "{mark} {}\t{} · {:.0} M params · {} · {} ctx · {:.0} MB\t{fit}: {}",
                        m.path.display(),
                        h.architecture,
                        h.n_params as f64 / 1e6,
                        h.quantization,
                        h.context_length.unwrap_or(0),
                        m.size_bytes as f64 / 1e6,
                        m.fit_reason
                    ),
                    Err(e) => println!("{mark} {}\t{fit}: {e}", m.path.display()),
                }
            }
        }
        Some(ModelsAction::Add { path }) => {
            let path = std::path::absolute(&path).unwrap_or(path);
            check_model_file(&path)?;
            if !settings.models.contains(&path) {
                settings.models.push(path.clone());
                settings.save(&troupe.paths.settings())?;
            }
            let m = models::describe(&path, &mem);
            println!("added {} ({})", path.display(), m.fit_reason);
        }
        Some(ModelsAction::Use { path }) => {
            let path = std::path::absolute(&path).unwrap_or(path);
            check_model_file(&path)?;
            settings.model_path = Some(path.clone());
            settings.engine = crate::settings::EngineChoice::Local;
            settings.save(&troupe.paths.settings())?;
            println!("using {}", path.display());
        }
        Some(ModelsAction::Download { repo, file }) => {
            let token = std::env::var("HF_TOKEN").ok();
            let mut last = Instant::now();
            let path = download::download(
                &download::endpoint(),
                &download::Request::new(&repo, &file),
                &troupe.paths.models(),
                token.as_deref(),
                |p| {
                    if p.resumed_from > 0 && p.done == p.resumed_from {
                        eprintln!("resuming after {:.1} MB", p.resumed_from as f64 / 1e6);
                    }
                    if last.elapsed().as_millis() >= 500 || p.total == Some(p.done) {
                        last = Instant::now();
                        match p.total {
                            Some(t) if t > 0 => eprint!(
                                "\r{:.1} / {:.1} MB ({:.0}%)   ",
                                p.done as f64 / 1e6,
                                t as f64 / 1e6,
                                p.done as f64 * 100.0 / t as f64
                            ),
                            _ => eprint!("\r{:.1} MB   ", p.done as f64 / 1e6),
                        }
                    }
                },
                || false,
            )
            .await?;
            eprintln!();
            let m = models::describe(&path, &mem);
            println!("downloaded {} ({})", path.display(), m.fit_reason);
        }
    }
    Ok(())
}

fn sampling_command(
    troupe: &Troupe,
    character: Option<String>,
    session: Option<i64>,
    preset: Option<String>,
    set: Vec<String>,
    clear: bool,
) -> anyhow::Result<()> {
    use crate::app::{sampling_at, set_sampling_at, SamplingScope};
    use crate::engine::sampling;
    let settings = troupe.settings();
    let scope = match (&character, session) {
        (Some(c), _) => Some(SamplingScope::Character(c)),
        (None, Some(s)) => Some(SamplingScope::Session(s)),
        (None, None) => None,
    };
    let current = match scope {
        Some(scope) => sampling_at(&troupe.store, &settings, scope)?.effective,
        None => settings.sampling.clone(),
    };
    let changing = preset.is_some() || !set.is_empty();
    if clear {
        if changing {
            bail!("--clear cannot be combined with --preset or --set");
        }
        let Some(scope) = scope else {
            bail!("--clear needs --character or --session");
        };
        set_sampling_at(&troupe.store, scope, None)?;
    } else if changing {
        let mut value = serde_json::to_value(match &preset {
            Some(name) => sampling::preset(name).with_context(|| {
                let names: Vec<_> = sampling::PRESETS.iter().map(|(n, _)| *n).collect();
                format!("no preset '{name}': use {}", names.join(", "))
            })?,
            None => current,
        })?;
        for kv in &set {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--set {kv}: write FIELD=VALUE"))?;
            if value.get(k).is_none() {
                bail!("--set {kv}: no field '{k}' (temperature, topP, topK, minP, repetitionPenalty, maxTokens, seed)");
            }
            value[k] = if v == "none" {
                serde_json::Value::Null
            } else {
                serde_json::from_str(v)
                    .with_context(|| format!("--set {kv}: '{v}' is not a number"))?
            };
        }
        let new: Sampling = serde_json::from_value(value.clone())
            .with_context(|| format!("invalid sampling: {value}"))?;
        match scope {
            Some(scope) => set_sampling_at(&troupe.store, scope, Some(&new))?,
            None => {
                if let Err((field, why)) = new.validate() {
                    bail!("{field}: {why}");
                }
                let mut s = settings.clone();
                s.sampling = new;
                s.save(&troupe.paths.settings())
                    .context("cannot save the settings")?;
            }
        }
    }
    let settings = troupe.settings();
    let shown = match scope {
        Some(scope) => sampling_at(&troupe.store, &settings, scope)?.effective,
        None => settings.sampling,
    };
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

async fn chat(
    troupe: &Troupe,
    model: Option<PathBuf>,
    character: Option<String>,
    session: Option<i64>,
    new: bool,
    scenario: &str,
    persona: Option<&str>,
    message: &str,
) -> anyhow::Result<()> {
    if message.trim().is_empty() {
        bail!("the message is empty: nothing sent");
    }
    let scenario = Scenario::parse(scenario).with_context(|| {
        format!("unknown scenario '{scenario}': use chit_chat, interview or companionship")
    })?;
    let persona_id = match persona {
        Some(p) => Some(
            troupe
                .store
                .list_personas()?
                .into_iter()
                .find(|x| x.id.to_string() == p || x.name.eq_ignore_ascii_case(p))
                .with_context(|| {
                    format!("no persona '{p}': see `troupe personas`, or add one with --add")
                })?
                .id,
        ),
        None => None,
    };
    let session = match (session, character) {
        (Some(id), _) => {
            let s = troupe.store.get_session(id)?;
            if let Some(p) = persona_id {
                troupe.store.set_session_persona(s.id, p)?;
            }
            s
        }
        (None, Some(cid)) => {
            troupe.store.get_character(&cid)?;
            match troupe
                .store
                .list_sessions(&cid)?
                .into_iter()
                .next()
                .filter(|_| !new)
            {
                Some(s) => {
                    if let Some(p) = persona_id {
                        troupe.store.set_session_persona(s.id, p)?;
                    }
                    s
                }
                None => troupe.start_session(&cid, scenario, persona_id)?,
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
    troupe.start_engine(&settings, model.as_deref()).await?;
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
        &sampling_for_session(&troupe.store, &settings, session.id)?,
        &cancel,
        &now_ms,
        &mut |e| match e {
            TurnEvent::Started { dropped, .. } if dropped > 0 => {
                eprintln!("[{dropped} older messages did not fit the context and were left out]")
            }
            TurnEvent::Started { .. } | TurnEvent::Rewriting { .. } => {}
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
            // Where it ran ("CPU (AVX2)"), as the window's status bar says it.
            eprintln!(
                "[{} tokens · first token {} ms · {:.1} tokens/s · {}]",
                stats.reply_tokens,
                stats.first_token_ms,
                stats.tokens_per_second,
                engine.info().device
            );
            // After the reply, as the window does: summarise what the window has moved past.
            let written = conversation::memory::catch_up(
                &troupe.store,
                engine.as_ref(),
                session.id,
                &sampling_for_session(&troupe.store, &settings, session.id)?,
                &cancel,
                &now_ms,
            )
            .await?;
            if !written.is_empty() {
                eprintln!(
                    "[older messages summarised into {} summary chunk(s)]",
                    written.len()
                );
            }
            Ok(())
        }
        Err(TurnError::Failed { reason, .. }) => {
            bail!("the reply stopped early (what was said is saved): {reason}")
        }
        Err(e) => Err(e.into()),
    }
}

/// Sends `requests` distinct chat requests (a short character prompt, 8 new tokens each) and
/// prints resident memory at the start, along the way and at the end: it must stay flat however
/// long the app runs. (Upstream mistral.rs never evicts its prefix cache on CPU, about 23-46 MB
/// per request; our vendored patch bounds it. Every request's KV cache is allocated in blocks of
/// 512 tokens, so a short prompt leaks as much as a long one would and the soak runs quicker.)
async fn soak(troupe: &Troupe, model: Option<PathBuf>, requests: usize) -> anyhow::Result<()> {
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
async fn long_chat(model: Option<PathBuf>, turns: usize, max_tokens: usize) -> anyhow::Result<()> {
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

/// A fresh scratch directory under the system's temp dir.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("troupe-bench-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
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

/// `troupe bench --perplexity FILE`: how well the model predicts a text, as one number.
async fn perplexity(
    troupe: &Troupe,
    model: Option<PathBuf>,
    text: &Path,
    json: bool,
) -> anyhow::Result<()> {
    const WINDOW: usize = 1024;
    let text = std::fs::read_to_string(text)
        .with_context(|| format!("cannot read {} as text", text.display()))?;
    let path = troupe.model_file(&troupe.settings(), model.as_deref());
    let engine = MistralEngine::load(&path, Some(&Paths::model_cache())).await?;
    let started = Instant::now();
    let score = engine.score_text(&text, WINDOW, None).await?;
    let seconds = started.elapsed().as_secs_f64();
    let info = engine.info();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "model": info.name,
                "quantization": info.quantization,
                "tokens": score.nll.len(),
                "windows": score.windows,
                "perplexity": score.perplexity(),
                "seconds": seconds,
            })
        );
    } else {
        println!(
            "{} ({}): perplexity {:.4} over {} tokens ({} windows of up to {WINDOW}, {:.1} s)",
            info.name,
            info.quantization,
            score.perplexity(),
            score.nll.len(),
            score.windows,
            seconds
        );
    }
    Ok(())
}

struct BenchOptions {
    runs: usize,
    max_tokens: usize,
    threads: Option<usize>,
    json: bool,
    llama_bench: Option<PathBuf>,
}

async fn bench(troupe: &Troupe, model: Option<PathBuf>, opts: BenchOptions) -> anyhow::Result<()> {
    let BenchOptions {
        runs,
        max_tokens,
        threads,
        json,
        llama_bench,
    } = opts;
    let settings = troupe.settings();
    let path = troupe.model_file(&settings, model.as_deref());
    if let Some(bin) = &llama_bench {
        if !bin.is_file() {
            bail!(
                "llama-bench not found at {}; build it with `bash .ci/llama-cpp.sh` or pass its path",
                bin.display()
            );
        }
    }
    let rss_before = rss_mb();
    let t0 = Instant::now();
    let engine = MistralEngine::load(&path, Some(&Paths::model_cache())).await?;
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
    let sampling = Sampling::greedy(max_tokens);

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
    let mut report = serde_json::json!({
        "model": engine.info().name,
        "quantization": engine.info().quantization,
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
    if let Some(bin) = &llama_bench {
        // Same file (the user's original, not Troupe's transcoded copy), threads, prompt length
        // and reply length.
        let l = llama_bench::run(bin, &path, threads, prompt_tokens, max_tokens, runs)?;
        let ratio = |k: &str| {
            let (a, b) = (
                report["troupe"][k].as_f64().unwrap_or(0.0),
                l[k].as_f64().unwrap_or(0.0),
            );
            serde_json::json!(if b > 0.0 {
                (a / b * 100.0).round() / 100.0
            } else {
                0.0
            })
        };
        report["ratio"] = serde_json::json!({
            "decode_tps": ratio("decode_tps"),
            "prefill_tps": ratio("prefill_tps"),
            "ttft_ms": ratio("ttft_ms"),
            "peak_rss_mb": ratio("peak_rss_mb"),
        });
        report["llama_cpp"] = l;
    }
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
        if let Some(l) = report.get("llama_cpp") {
            println!();
            println!(
                "vs llama.cpp ({}), same file, {} threads:",
                l["build"].as_str().unwrap_or(""),
                threads
            );
            println!(
                "{:<28}{:>10}{:>10}{:>10}",
                "", "troupe", "llama.cpp", "ratio"
            );
            for (label, key) in [
                ("time to first token (ms)", "ttft_ms"),
                ("prefill (tokens/s)", "prefill_tps"),
                ("decode (tokens/s)", "decode_tps"),
                ("peak memory (MB)", "peak_rss_mb"),
            ] {
                let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
                println!(
                    "{label:<28}{:>10.1}{:>10.1}{:>9.2}x",
                    f(&t[key]),
                    f(&l[key]),
                    f(&report["ratio"][key])
                );
            }
        }
    }
    Ok(())
}

/// llama.cpp's own benchmark, run as a child process, for `troupe bench --vs-llama-cpp`.
mod llama_bench {
    use std::io::Read;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use anyhow::{bail, Context};

    /// $LLAMA_BENCH, else where `.ci/llama-cpp.sh` builds it.
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("LLAMA_BENCH").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        home.join(".cache/troupe/llama.cpp-0.94.0/build/bin/llama-bench")
    }

    /// Runs llama-bench twice: `prompt_tokens` of prefill, then `new_tokens` of decode after a
    /// context of `prompt_tokens` (`-d`), as Troupe's decode follows its prompt; `runs` times
    /// each. llama-bench feeds random tokens rather than our text; the work per token is the
    /// same, so the lengths are what make the runs comparable. Its time to first token is the
    /// prefill time of the prompt (the first token comes from the prefill's logits).
    pub fn run(
        bin: &Path,
        model: &Path,
        threads: usize,
        prompt_tokens: usize,
        new_tokens: usize,
        runs: usize,
    ) -> anyhow::Result<serde_json::Value> {
        let run = |args: &[String]| -> anyhow::Result<(serde_json::Value, f64)> {
            let mut child = Command::new(bin)
                .arg("-m")
                .arg(model)
                .args(["-t", &threads.to_string(), "-r", &runs.max(1).to_string()])
                .args(["-o", "json"])
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("cannot run {}", bin.display()))?;
            // Peak memory: the child's own high-water mark, polled until it exits. (The
            // rusage of children would report this process's peak: Linux carries the
            // high-water mark of the forking process across exec.)
            let status_path = format!("/proc/{}/status", child.id());
            let mut peak_kb = 0f64;
            let mut stdout = child.stdout.take().expect("piped");
            let reader = std::thread::spawn(move || {
                let mut out = Vec::new();
                let _ = stdout.read_to_end(&mut out);
                out
            });
            let status = loop {
                if let Some(hwm) = std::fs::read_to_string(&status_path).ok().and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                }) {
                    peak_kb = peak_kb.max(hwm);
                }
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            let out = reader.join().unwrap_or_default();
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                bail!(
                    "llama-bench failed: {}",
                    err.lines().last().unwrap_or("(no message)")
                );
            }
            let rows: serde_json::Value =
                serde_json::from_slice(&out).context("llama-bench printed no JSON")?;
            let row = rows
                .as_array()
                .and_then(|r| r.first())
                .cloned()
                .context("llama-bench's JSON has no results")?;
            Ok((row, peak_kb / 1024.0))
        };
        let (pp_row, pp_peak) = run(&[
            "-p".into(),
            prompt_tokens.to_string(),
            "-n".into(),
            "0".into(),
        ])?;
        let (tg_row, tg_peak) = run(&[
            "-p".into(),
            "0".into(),
            "-n".into(),
            new_tokens.to_string(),
            "-d".into(),
            prompt_tokens.to_string(),
        ])?;
        let samples = |row: &serde_json::Value| -> Vec<f64> {
            row["samples_ts"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
                .unwrap_or_default()
        };
        let (pp, tg) = (samples(&pp_row), samples(&tg_row));
        if pp.is_empty() || tg.is_empty() {
            bail!("llama-bench's JSON has no prompt or generation results");
        }
        let ttft: Vec<f64> = pp
            .iter()
            .map(|t| prompt_tokens as f64 / t * 1000.0)
            .collect();
        Ok(serde_json::json!({
            "build": format!(
                "llama.cpp {} ({}), {}",
                pp_row["build_commit"].as_str().unwrap_or("?"),
                pp_row["backends"].as_str().unwrap_or("CPU"),
                pp_row["cpu_info"].as_str().unwrap_or("")
            ),
            "decode_tps": super::stats(&tg)["median"],
            "prefill_tps": super::stats(&pp)["median"],
            "ttft_ms": super::stats(&ttft)["median"],
            "peak_rss_mb": pp_peak.max(tg_peak).round(),
            "spread": {
                "decode_tps": super::stats(&tg),
                "prefill_tps": super::stats(&pp),
                "ttft_ms": super::stats(&ttft),
            }
        }))
    }
}

/// `troupe prompt`: the prompt the next reply would get, section by section.
async fn prompt_command(
    troupe: &Troupe,
    model: Option<PathBuf>,
    session: i64,
    message: Option<&str>,
) -> anyhow::Result<()> {
    let settings = troupe.settings();
    troupe.start_engine(&settings, model.as_deref()).await?;
    let engine = troupe.engine.engine()?;
    let sampling = sampling_for_session(&troupe.store, &settings, session)?;
    let ctx = conversation::turn::context(&troupe.store, session)?;
    let a = conversation::turn::assemble(
        engine.as_ref(),
        &ctx,
        message,
        conversation::turn::budget(engine.as_ref(), &sampling),
    )
    .await?;
    let r = &a.record;
    let mut out = std::io::stdout().lock();
    for s in &r.sections {
        writeln!(out, "=== {} · {} tokens", s.name, s.tokens)?;
        writeln!(out, "{}\n", s.text)?;
    }
    writeln!(
        out,
        "=== {} of {} tokens · {} older messages left out{}",
        r.tokens,
        r.budget,
        r.dropped_messages,
        if r.examples_dropped {
            " · example dialogue left out"
        } else {
            ""
        }
    )?;
    for f in &r.lore {
        writeln!(out, "lore: {} ({})", f.name, f.reason)?;
    }
    for name in &r.lore_left_out {
        writeln!(out, "lore left out (over budget): {name}")?;
    }
    Ok(())
}

/// `troupe bench --search N`: full-text search and session opening on N stored messages.
fn search_bench(n: usize) -> anyhow::Result<()> {
    use crate::store::MessageStatus;
    let scratch = tempfile_dir()?;
    let troupe = Troupe::open(Paths::at(&scratch))?;
    let characters = troupe.store.list_characters()?;
    // Words with a spread of frequencies (a Zipf-like draw), so queries hit common, middling
    // and rare words the way real chat does.
    const WORDS: &[&str] = &[
        "the",
        "and",
        "you",
        "that",
        "was",
        "for",
        "with",
        "have",
        "this",
        "but",
        "not",
        "what",
        "all",
        "were",
        "when",
        "your",
        "said",
        "there",
        "each",
        "which",
        "bread",
        "morning",
        "river",
        "garden",
        "letter",
        "violin",
        "market",
        "winter",
        "story",
        "captain",
        "engine",
        "museum",
        "lantern",
        "harbour",
        "orchard",
        "telescope",
        "cathedral",
        "marmalade",
        "quartz",
        "zeppelin",
    ];
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let per_session = 1000usize;
    let sessions = n.div_ceil(per_session);
    let started = Instant::now();
    let mut session_ids = Vec::with_capacity(sessions);
    let now = now_ms();
    for s in 0..sessions {
        let c = &characters[s % characters.len()];
        let session = troupe
            .store
            .create_session(&c.id, Scenario::ChitChat, "bench", None, now)?;
        let rows: Vec<(Role, String)> = (0..per_session.min(n - s * per_session))
            .map(|i| {
                let words = 8 + (next() % 24) as usize;
                let text = (0..words)
                    .map(|_| {
                        // Zipf-like over a 8,040-word vocabulary: the listed words first (the
                        // commonest), then made-up words from syllables; small ranks are far
                        // more likely.
                        let r = (next() % 1_000_000) as f64 / 1_000_000.0;
                        let rank = ((r.powi(4)) * 8040.0) as usize;
                        match WORDS.get(rank) {
                            Some(w) => w.to_string(),
                            None => {
                                const S: [&str; 20] = [
                                    "ka", "lo", "mi", "ne", "tu", "ra", "so", "vi", "de", "po",
                                    "shi", "gan", "tor", "bel", "qua", "rin", "zu", "fe", "yo",
                                    "wex",
                                ];
                                let k = rank - WORDS.len();
                                format!("{}{}{}", S[k % 20], S[(k / 20) % 20], S[(k / 400) % 20])
                            }
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                (
                    if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Character
                    },
                    text,
                )
            })
            .collect();
        troupe
            .store
            .insert_messages_bulk(session.id, &rows, MessageStatus::Complete, now)?;
        session_ids.push(session.id);
    }
    println!(
        "seeded {n} messages in {sessions} sessions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let percentile = |mut v: Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
    };
    println!("query\tmatches shown\tp50 ms\tp95 ms");
    let mut all = Vec::new();
    for q in [
        // Common, middling and rare words, pairs, prefixes, and a miss.
        "the",
        "bread",
        "morning river",
        "violin",
        "zeppelin",
        "marm*",
        "kaloshi",
        "wexyofe",
        "ka*",
        "quartz cathedral",
        "rinbelzu torgan*",
        "nothingmatches",
    ] {
        let mut times = Vec::new();
        let mut shown = 0;
        for _ in 0..20 {
            let t = Instant::now();
            shown = troupe.store.search_messages(q, 50)?.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        all.extend(times.iter().copied());
        println!(
            "{q}\t{shown}\t{:.2}\t{:.2}",
            percentile(times.clone(), 0.5),
            percentile(times, 0.95)
        );
    }
    println!(
        "search, all queries: p50 {:.2} ms · p95 {:.2} ms (target: p95 under 50 ms)",
        percentile(all.clone(), 0.5),
        percentile(all, 0.95)
    );
    let mut times = Vec::new();
    for i in 0..200 {
        let id = session_ids[(next() as usize + i) % session_ids.len()];
        let t = Instant::now();
        let m = troupe.store.recent_messages(id, 50)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(!m.is_empty());
    }
    println!(
        "opening a session (its newest 50 of {per_session} messages): p50 {:.2} ms · p95 {:.2} ms (target: under 10 ms)",
        percentile(times.clone(), 0.5),
        percentile(times, 0.95)
    );
    drop(troupe);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
