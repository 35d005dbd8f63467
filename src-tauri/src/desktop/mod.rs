//! The desktop window: the only module that imports Tauri (checked by tests/architecture.rs).
//!
//! `run` is the composition root of the window: it opens the core (`app::Troupe`), registers the
//! settings store (tauri-plugin-store, the same `settings.json` the CLI reads), serves avatar
//! files over the `avatar://` protocol, starts loading the model in the background and hands
//! the window its commands (`commands`). The model's status goes to the window as the app-wide
//! event `engine://status`; replies stream over a per-call `tauri::ipc::Channel`.

pub mod commands;
pub mod json;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use tauri::{Emitter, Manager};
use tauri_plugin_store::StoreExt;

use crate::app::Troupe;
use crate::conversation::Cancel;
use crate::engine::Slot;
use crate::settings::{Paths, Settings};
use json::{ApiError, ErrorCode};

/// What every command can reach.
pub struct AppState {
    troupe: Result<Troupe, String>,
    /// `--model` from the command line (beats the setting, like `TROUPE_MODEL`).
    model_override: Option<PathBuf>,
    /// The Stop buttons of the replies being written, by session.
    running: Mutex<HashMap<i64, Cancel>>,
    /// Sessions whose next prompt was prefilled, with their message count at the time.
    warmed: Mutex<HashMap<i64, i64>>,
    /// Per session, held by a running warm-up (see `commands::send_message`).
    warming: Mutex<HashMap<i64, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// The running summary catch-up of each session (`conversation::memory::catch_up`): a
    /// message sent cancels it, so a reply never waits for a summary.
    summarising: std::sync::Arc<Mutex<HashMap<i64, Cancel>>>,
    /// Held by a running Character warm-up (`commands::warm_character`).
    character_warming: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Held by the running model download (one at a time), and its Cancel button.
    downloading: std::sync::Arc<tokio::sync::Mutex<()>>,
    cancel_download: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    fn troupe(&self) -> Result<&Troupe, ApiError> {
        self.troupe
            .as_ref()
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.clone()))
    }
}

/// Opens the window and runs until it closes.
pub fn run(model_override: Option<PathBuf>) {
    let paths = Paths::from_env();
    let troupe = Troupe::open(paths.clone()).map_err(|e| {
        format!(
            "Troupe cannot open its data in {}: {e}",
            paths.data.display()
        )
    });
    if let Err(e) = &troupe {
        tracing::error!("{e}");
    }
    let settings_path = paths.settings();
    tauri::Builder::default()
        .plugin(tauri_plugin_store::Builder::new().build())
        .register_uri_scheme_protocol("avatar", {
            let dir = paths.avatars();
            move |_ctx, request| serve_avatar(&dir, request.uri().path())
        })
        .manage(AppState {
            troupe,
            model_override,
            running: Mutex::new(HashMap::new()),
            warmed: Mutex::new(HashMap::new()),
            warming: Mutex::new(HashMap::new()),
            character_warming: Default::default(),
            summarising: Default::default(),
            downloading: Default::default(),
            cancel_download: Default::default(),
        })
        .setup(move |app| {
            // Open the store at the shared absolute path before anything reads settings.
            let _ = app.store(settings_path.clone());
            let handle = app.handle().clone();
            let state = app.state::<AppState>();
            if let Ok(troupe) = &state.troupe {
                forward_engine_status(&handle, &troupe.engine);
                let settings = load_settings(&handle);
                start_engine(troupe, settings, state.model_override.clone());
            }
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::list_characters,
            commands::get_character,
            commands::recent_messages,
            commands::regenerate_reply,
            commands::continue_reply,
            commands::select_swipe,
            commands::prompt_record,
            commands::search_messages,
            commands::list_personas,
            commands::save_persona,
            commands::delete_persona,
            commands::list_memories,
            commands::add_memory,
            commands::update_memory,
            commands::delete_memory,
            commands::rename_session,
            commands::trash_session,
            commands::restore_session,
            commands::edit_message,
            commands::delete_message,
            commands::branch_session,
            commands::suggested_questions,
            commands::get_character_edit,
            commands::preview_character,
            commands::save_character,
            commands::write_profile_form,
            commands::duplicate_character,
            commands::set_favourite,
            commands::trash_character,
            commands::restore_character,
            commands::list_trash,
            commands::empty_trash,
            commands::search_characters,
            commands::import_cards,
            commands::export_card,
            commands::list_sessions,
            commands::create_session,
            commands::list_messages,
            commands::send_message,
            commands::stop_reply,
            commands::warm_session,
            commands::warm_character,
            commands::engine_status,
            commands::get_settings,
            commands::save_settings,
            commands::reload_model,
            commands::sampling_presets,
            commands::get_sampling,
            commands::set_sampling,
            commands::list_models,
            commands::add_model,
            commands::forget_model,
            commands::use_model,
            commands::download_model,
            commands::cancel_download,
        ])
        .run(tauri::generate_context!())
        .expect("the Tauri runtime failed to start");
}

/// Starts the chosen engine in the background (loading a model can take a while); the status
/// bar follows through `engine://status`.
fn start_engine(troupe: &Troupe, settings: Settings, model_override: Option<PathBuf>) {
    let troupe = troupe.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(e) = troupe
            .start_engine(&settings, model_override.as_deref())
            .await
        {
            tracing::warn!("engine not started: {e}");
        }
    });
}

fn forward_engine_status(app: &tauri::AppHandle, slot: &Slot) {
    let mut rx = slot.subscribe();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        while rx.changed().await.is_ok() {
            let status: json::EngineStatus = rx.borrow_and_update().clone().into();
            let _ = app.emit("engine://status", status);
        }
    });
}

fn settings_store(
    app: &tauri::AppHandle,
) -> Result<std::sync::Arc<tauri_plugin_store::Store<tauri::Wry>>, String> {
    let path = Paths::from_env().settings();
    app.store(path)
        .map_err(|e| format!("cannot open the settings file: {e}"))
}

/// The settings, read through the store plugin (defaults when unreadable).
fn load_settings(app: &tauri::AppHandle) -> Settings {
    match settings_store(app) {
        Ok(store) => Settings::from_json(serde_json::Value::Object(
            store.entries().into_iter().collect(),
        )),
        Err(_) => Settings::default(),
    }
}

fn save_settings(app: &tauri::AppHandle, settings: &Settings) -> Result<(), String> {
    let store = settings_store(app)?;
    let value = serde_json::to_value(settings).map_err(|e| e.to_string())?;
    for old in crate::settings::OLD_KEYS {
        store.delete(old);
    }
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            store.set(k, v);
        }
    }
    store
        .save()
        .map_err(|e| format!("cannot save the settings: {e}"))
}

/// Serves `avatar://localhost/<file>` from the avatars folder; only plain file names, so a
/// crafted URL cannot read outside it.
fn serve_avatar(dir: &std::path::Path, uri_path: &str) -> tauri::http::Response<Vec<u8>> {
    let name = uri_path.trim_start_matches('/');
    let safe = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    let bytes = if safe {
        // A picture placed by hand has no thumbnail: the full picture stands in.
        std::fs::read(dir.join(name)).ok().or_else(|| {
            let full = name.strip_suffix(".thumb.png")?;
            std::fs::read_dir(dir)
                .ok()?
                .filter_map(|e| e.ok())
                .find(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.starts_with(full)
                        && n[full.len()..].starts_with('.')
                        && !n.ends_with(".thumb.png")
                })
                .and_then(|e| std::fs::read(e.path()).ok())
        })
    } else {
        None
    };
    let builder = tauri::http::Response::builder().header("Access-Control-Allow-Origin", "*");
    match bytes {
        Some(b) => {
            let mime = if b.starts_with(b"\x89PNG") {
                "image/png"
            } else if b.starts_with(&[0xff, 0xd8]) {
                "image/jpeg"
            } else if b.len() > 12 && &b[8..12] == b"WEBP" {
                "image/webp"
            } else {
                "application/octet-stream"
            };
            builder
                .header("Content-Type", mime)
                .body(b)
                .expect("static response")
        }
        None => builder
            .status(404)
            .body(Vec::new())
            .expect("static response"),
    }
}
