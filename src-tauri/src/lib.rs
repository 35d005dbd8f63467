//! Troupe: a local-first companion app. People chat with CharacterGLM-style social characters
//! (celebrities, daily-life and fictional characters) in three scenarios, with a quantized model
//! running on their own machine through mistral.rs, and every word kept in SQLite.
//!
//! The map of the crate, its data flow and its invariants are in `docs/ARCHITECTURE.md`.
//! In short: `characters` (who), `conversation` (scenarios, prompts, the turn), `engine` (the
//! model), `store` (SQLite), `eval` (measuring Characters), `backup`, `settings` (paths and preferences), `app` (the composition root),
//! `cli` (the headless front end), `server` (the local API, OpenAI's protocol) and, with the
//! `desktop` feature, `desktop` (the Tauri window, the only module that knows Tauri).

pub mod app;
pub mod backup;
pub mod characters;
pub mod cli;
pub mod conversation;
pub mod engine;
pub mod eval;
pub mod server;
pub mod settings;
pub mod store;

#[cfg(feature = "desktop")]
pub mod desktop;
