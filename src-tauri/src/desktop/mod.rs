//! The desktop window: the only module that imports Tauri (checked by tests/architecture.rs).
//!
//! `run` is the composition root of the window: it opens the core (`app::Troupe`), registers the
//! settings store (tauri-plugin-store, the same `settings.json` the CLI reads), serves avatar
//! files over the `avatar://` protocol, starts loading the model in the background and hands
//! the window its commands (`commands`, by area as in `ui/src/api/`: `characters`,
//! `conversation`, `engine`, `backups`, `eval`, `server` — the local API, which runs in this
//! process; their wire types in `json`). The model's status goes to the window
//! as the app-wide event `engine://status`; replies stream over a per-call
//! `tauri::ipc::Channel`. A command translates, calls `app::Troupe` and translates back; what
//! runs when (one reply per Session, warm-ups, summaries) is `app`'s business.

pub mod commands {
    //! The window's commands, one file per area of `ui/src/api/`.
    pub mod arena;
    pub mod backups;
    pub mod characters;
    pub mod conversation;
    pub mod engine;
    pub mod eval;
    pub mod groups;
    pub mod ratings;
    pub mod server;
}
pub mod json;

use std::path::PathBuf;

use tauri::{Emitter, Manager};
use tauri_plugin_store::StoreExt;

use crate::app::vocabulary::{Paths, Settings, OLD_SETTING_KEYS};
use crate::app::Troupe;
use json::{ApiError, ErrorCode};

/// What every command can reach.
pub struct AppState {
    troupe: Result<Troupe, String>,
    /// `--model` from the command line (beats the setting, like `TROUPE_MODEL`).
    model_override: Option<PathBuf>,
    /// Held by the running model download (one at a time), and its Cancel button.
    downloading: std::sync::Arc<tokio::sync::Mutex<()>>,
    cancel_download: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Held by the running evaluation (one at a time), and its Stop button.
    evaluating: std::sync::Arc<tokio::sync::Mutex<()>>,
    cancel_eval: std::sync::Mutex<Option<crate::app::Cancel>>,
    /// The Stop button of the form the model is writing in the editor.
    cancel_form: std::sync::Mutex<Option<crate::app::Cancel>>,
    /// The local API, while it runs in this process (Settings → Local API).
    local_api: tokio::sync::Mutex<LocalApiState>,
}

/// The local API's server, or why it did not start.
#[derive(Default)]
pub(crate) struct LocalApiState {
    server: Option<crate::server::Server>,
    error: Option<String>,
}

impl LocalApiState {
    /// Where clients call it while it runs.
    fn address(&self) -> Option<String> {
        let a = self.server.as_ref()?.address;
        // Listening everywhere: this computer's own name for it is what a local client uses.
        let host = if a.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            a.ip().to_string()
        };
        Some(format!("http://{host}:{}/v1", a.port()))
    }
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
            downloading: Default::default(),
            cancel_download: Default::default(),
            evaluating: Default::default(),
            cancel_eval: Default::default(),
            cancel_form: Default::default(),
            local_api: Default::default(),
        })
        .setup(move |app| {
            // Open the store at the shared absolute path before anything reads settings.
            let _ = app.store(settings_path.clone());
            let handle = app.handle().clone();
            let state = app.state::<AppState>();
            if let Ok(troupe) = &state.troupe {
                forward_engine_status(&handle, troupe);
                forward_session_changes(&handle, troupe);
                let settings = load_settings(&handle);
                daily_upkeep(troupe, settings.backups);
                if settings.api.start_with_troupe {
                    start_local_api(&handle);
                }
                start_engine(troupe, settings, state.model_override.clone());
            }
            Ok(())
        })
        .invoke_handler(commands())
        .run(tauri::generate_context!())
        .expect("the Tauri runtime failed to start");
}

/// Every command the window can call, one file per area of `ui/src/api/`.
fn commands() -> impl Fn(tauri::ipc::Invoke) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        commands::characters::list_characters,
        commands::characters::get_character,
        commands::conversation::recent_messages,
        commands::conversation::regenerate_reply,
        commands::conversation::continue_reply,
        commands::conversation::select_swipe,
        commands::conversation::prompt_record,
        commands::conversation::search_messages,
        commands::conversation::list_personas,
        commands::conversation::save_persona,
        commands::conversation::delete_persona,
        commands::conversation::list_memories,
        commands::conversation::add_memory,
        commands::conversation::update_memory,
        commands::conversation::delete_memory,
        commands::conversation::rename_session,
        commands::conversation::trash_session,
        commands::conversation::restore_session,
        commands::conversation::edit_message,
        commands::conversation::delete_message,
        commands::conversation::undo_delete,
        commands::backups::list_backups,
        commands::backups::back_up_now,
        commands::backups::restore_backup,
        commands::backups::export_all,
        commands::backups::import_all,
        commands::eval::run_eval,
        commands::eval::cancel_eval,
        commands::eval::eval_runs,
        commands::eval::delete_eval_run,
        commands::conversation::branch_session,
        commands::conversation::suggested_questions,
        commands::characters::get_character_edit,
        commands::characters::preview_character,
        commands::characters::save_character,
        commands::characters::write_profile_form,
        commands::characters::stop_profile_form,
        commands::characters::duplicate_character,
        commands::characters::set_favourite,
        commands::characters::trash_character,
        commands::characters::restore_character,
        commands::characters::list_trash,
        commands::characters::empty_trash,
        commands::characters::search_characters,
        commands::characters::import_cards,
        commands::characters::export_card,
        commands::conversation::list_sessions,
        commands::conversation::create_session,
        commands::conversation::list_messages,
        commands::conversation::send_message,
        commands::conversation::stop_reply,
        commands::conversation::warm_session,
        commands::conversation::warm_character,
        commands::engine::engine_status,
        commands::engine::get_settings,
        commands::engine::save_settings,
        commands::engine::reload_model,
        commands::engine::stop_loading,
        commands::ratings::rate_session,
        commands::ratings::session_rating,
        commands::ratings::set_thumb,
        commands::ratings::session_thumbs,
        commands::ratings::rating_averages,
        commands::ratings::export_training_data,
        commands::arena::arena_contenders,
        commands::arena::arena_turn,
        commands::arena::arena_pick,
        commands::arena::arena_report,
        commands::engine::sampling_presets,
        commands::engine::get_sampling,
        commands::engine::set_sampling,
        commands::engine::list_models,
        commands::engine::add_model,
        commands::engine::forget_model,
        commands::engine::use_model,
        commands::engine::download_model,
        commands::engine::cancel_download,
        commands::engine::model_catalog,
        commands::engine::install_catalog_model,
        commands::engine::open_link,
        commands::groups::start_group,
        commands::groups::get_group,
        commands::groups::set_member_present,
        commands::groups::set_member_muted,
        commands::groups::set_group_strategy,
        commands::groups::reply_as,
        commands::groups::let_them_talk,
        commands::server::local_api,
        commands::server::set_local_api,
        commands::server::new_local_api_key,
    ]
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

/// "Start with Troupe": the local API serves from the window's start (requests wait with 503
/// until the model is loaded).
fn start_local_api(app: &tauri::AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut api = load_settings(&app).api;
        if api.ensure_key() {
            let mut settings = load_settings(&app);
            settings.api = api.clone();
            let _ = save_settings(&app, &settings);
        }
        let state = app.state::<AppState>();
        if let Err(e) = commands::server::apply(&app, &state, Some(api)).await {
            tracing::warn!("the local API did not start: {}", e.message);
        }
    });
}

/// The day's snapshot, rotation and the trash's purge, on a thread of their own: a snapshot is
/// a read on its own connection, so the window and its replies never wait for it.
fn daily_upkeep(troupe: &Troupe, keep: crate::app::vocabulary::BackupSettings) {
    let troupe = troupe.clone();
    std::thread::spawn(move || match troupe.upkeep(keep) {
        Ok(done) => tracing::info!("upkeep: {done:?}"),
        Err(e) => tracing::warn!("upkeep: {e}"),
    });
}

fn forward_engine_status(app: &tauri::AppHandle, troupe: &Troupe) {
    let mut rx = troupe.watch_engine();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        while rx.changed().await.is_ok() {
            let status: json::EngineStatus = rx.borrow_and_update().clone().into();
            let _ = app.emit("engine://status", status);
        }
    });
}

/// `session://changed` with a Session's id when the local API writes to it, so a window
/// showing it reloads.
fn forward_session_changes(app: &tauri::AppHandle, troupe: &Troupe) {
    let mut rx = troupe.watch_sessions();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(id) => {
                    let _ = app.emit("session://changed", id);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
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

/// The settings, read through the store plugin (defaults when unreadable). Read from the file
/// each time: the CLI may have changed it since the window started.
pub(crate) fn load_settings(app: &tauri::AppHandle) -> Settings {
    match settings_store(app) {
        Ok(store) => {
            let _ = store.reload();
            let json = serde_json::Value::Object(store.entries().into_iter().collect());
            Settings::from_stored(json, &Paths::from_env().settings())
        }
        Err(_) => Settings::default(),
    }
}

pub(crate) fn save_settings(app: &tauri::AppHandle, settings: &Settings) -> Result<(), String> {
    let store = settings_store(app)?;
    // Keys the CLI wrote meanwhile, and keys a newer build knows, are kept: only ours change.
    let _ = store.reload();
    let previous = serde_json::Value::Object(store.entries().into_iter().collect());
    let value = settings.to_stored(&Paths::from_env().settings(), &previous);
    for old in OLD_SETTING_KEYS {
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

/// A new file `<stem>.<ext>` in the Downloads folder (else the home folder), numbered
/// "<stem> (2).<ext>" and on when the name is taken: where the window's exports go.
pub(crate) fn downloads_file(
    app: &tauri::AppHandle,
    stem: &str,
    ext: &str,
) -> Result<PathBuf, ApiError> {
    let dir = app
        .path()
        .download_dir()
        .or_else(|_| app.path().home_dir())
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let mut path = dir.join(format!("{stem}.{ext}"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.join(format!("{stem} ({n}).{ext}"));
    }
    Ok(path)
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
