//! The headless front end: `troupe characters`, `troupe chat`, `troupe sessions`,
//! `troupe history`, `troupe bench`. Same core, same data directory and same model setting as
//! the window, so a chat started in one continues in the other. Output is plain text for
//! people and scripts: ids first, one item per line; replies stream to stdout, everything else
//! goes to stderr.
//!
//! This file is the command line's shape (clap) and `run`, which hands each command to its
//! room: `library` (characters, sessions, history, search, personas, memories, prompt), `cards`
//! (import, export), `backups` (backup, backups, restore, export-all, import-all), `chat`,
//! `models` (models, sampling), `eval`, `serve` (the local API). Every command calls `app::Troupe`
//! and prints the result. `bench/` measures the engine itself and is the one room that reaches
//! below the facade.

mod arena;
mod backups;
mod bench;
pub use bench::BenchArgs;
mod cards;
mod chat;
mod eval;
pub use eval::EvalArgs;
mod groups;
mod library;
mod models;
pub mod process;
mod ratings;
mod serve;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::app::vocabulary::Paths;
use crate::app::Troupe;

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
    /// The catalog of suggested companion models: what each is good at, its licence, size,
    /// context, the memory it needs and whether it suits this machine.
    Catalog,
    /// Download a catalog model (as `download`) and make it the one that runs.
    Get {
        /// The id `troupe models catalog` shows.
        id: String,
    },
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
        /// Start each line with the message's id.
        #[arg(long)]
        ids: bool,
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
        /// In a group: the member who answers (id or name), instead of the group's strategy.
        #[arg(long = "as", value_name = "CHARACTER")]
        speaker: Option<String>,
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
        /// In a group: the member whose prompt to show.
        #[arg(long = "as", value_name = "CHARACTER")]
        speaker: Option<String>,
    },
    /// Group chats: several characters in one session (`group new --characters a,b,c`), who is
    /// in it, joining, leaving, muting, and letting them talk.
    Group {
        #[command(subcommand)]
        action: groups::GroupAction,
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
    /// Take a snapshot of the whole library now (into the data folder's backups/, or --out).
    Backup {
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// List the snapshots: id, when (UTC), why, size and what each holds.
    Backups,
    /// Replace the library with a snapshot (an id from `troupe backups`) or a backup or
    /// export file. The library as it was is snapshotted first.
    Restore {
        #[arg(value_name = "FILE|ID")]
        what: String,
    },
    /// Write everything to one zip: the database, avatars, every character as a V3 card and
    /// every session as SillyTavern chat JSONL.
    ExportAll { file: PathBuf },
    /// Merge an export (or a snapshot) into the library: what exists stays, what is new is
    /// added, what differs is kept side by side and reported.
    ImportAll { file: PathBuf },
    /// Rate a session on the paper's seven metrics, 1 to 5 (all seven, and --comment), or
    /// print its rating when no score is given.
    Rate(ratings::RateArgs),
    /// A thumb up, down or none on one of the Character's replies (a message id from
    /// `troupe history --ids`).
    Thumb {
        message: i64,
        #[arg(value_parser = ["up", "down", "none"])]
        value: String,
    },
    /// Your ratings averaged per model (of one character, or all): rated sessions, the seven
    /// means, thumbs — the paper's Table 2.
    Ratings {
        #[arg(long)]
        character: Option<String>,
    },
    /// Compare: the next reply written twice, by the model in use (or --with) and --vs (a
    /// .gguf file, remote, preset:NAME or prompt:naive), shown as A and B in a random order;
    /// `arena pick` records your choice, `arena report` adds the picks up.
    Arena(arena::ArenaArgs),
    /// Write what you judged as training data: --sft FILE (every kept reply of rated
    /// conversations, with the messages the model saw) and/or --dpo FILE (chosen and rejected
    /// versions of replies written again). Nothing leaves this computer otherwise.
    ExportData(ratings::ExportDataArgs),
    /// Serve the characters over an OpenAI-compatible API (README "Local API"): every character
    /// is a model, troupe/<id>, beside the loaded model. Loopback only unless --allow-network;
    /// every request needs the key.
    Serve(serve::ServeArgs),
    /// Measure the engine: time to first token, prefill and decode speed, memory.
    Bench(bench::BenchArgs),
    /// Measure Characters: memory, consistency, repetition, RoleBench, BFI and speed suites
    /// against the model in use, optionally compared with a second setup or model and scored
    /// by a judge (see docs/EVALUATION.md).
    Eval(eval::EvalArgs),
}

/// Runs a CLI command. Errors print as one line on stderr (see main.rs).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Some(command) = cli.command else {
        bail!("no command given; see `troupe --help`")
    };
    let troupe = Troupe::open(Paths::from_env()).context("cannot open Troupe's data")?;
    let model = cli.model;
    match command {
        Command::Characters => library::characters(&troupe),
        Command::Sessions { character } => library::sessions(&troupe, &character),
        Command::History { session, ids } => library::history(&troupe, session, ids),
        Command::Chat {
            character,
            session,
            new,
            scenario,
            persona,
            speaker,
            message,
        } => {
            let to = chat::Target {
                character,
                session,
                new,
                scenario,
                persona,
            };
            chat::chat(&troupe, model, to, &message, speaker.as_deref()).await
        }
        Command::Prompt {
            session,
            message,
            speaker,
        } => {
            library::prompt(
                &troupe,
                model,
                session,
                message.as_deref(),
                speaker.as_deref(),
            )
            .await
        }
        Command::Group { action } => groups::group(&troupe, model, action).await,
        Command::Search { query, limit } => library::search(&troupe, &query, limit),
        Command::Personas {
            add,
            description,
            default,
        } => library::personas(&troupe, add, description, default),
        Command::Memories { session, pin } => library::memories(&troupe, session, pin),
        Command::Import {
            files,
            lorebook_for,
        } => cards::import(&troupe, &files, lorebook_for.as_deref()),
        Command::Export { id, format, out } => cards::export(&troupe, &id, &format, out),
        Command::Rate(args) => ratings::rate(&troupe, args),
        Command::Thumb { message, value } => ratings::thumb(&troupe, message, &value),
        Command::Ratings { character } => ratings::averages(&troupe, character.as_deref()),
        Command::ExportData(args) => ratings::export_data(&troupe, args),
        Command::Arena(args) => arena::arena(&troupe, model, args).await,
        Command::Models { action } => models::models(&troupe, model, action).await,
        Command::Sampling {
            character,
            session,
            preset,
            set,
            clear,
        } => {
            let change = models::SamplingChange { preset, set, clear };
            models::sampling(&troupe, character, session, change)
        }
        Command::Backup { out } => backups::backup(&troupe, out),
        Command::Backups => backups::list(&troupe),
        Command::Restore { what } => backups::restore(&troupe, &what),
        Command::ExportAll { file } => backups::export_all(&troupe, &file),
        Command::ImportAll { file } => backups::import_all(&troupe, &file),
        Command::Serve(args) => serve::serve(&troupe, model, args).await,
        Command::Bench(args) => bench::run(&troupe, model, args).await,
        Command::Eval(args) => eval::eval(&troupe, model, args).await,
    }
}
