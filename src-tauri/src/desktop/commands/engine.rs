//! The engine area's commands (`ui/src/api/engine.ts`): the model's status, the settings,
//! sampling at its three levels, and the model manager (list, add, forget, use, download, the
//! catalog).
//! Settings are read and written through the settings store (`desktop::load_settings`); the
//! rules for each change are `app`'s.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use tauri::ipc::Channel;
use tauri::{AppHandle, State};

use crate::app::vocabulary::{EngineChoice, Sampling, PRESETS};
use crate::app::SamplingScope;
use crate::desktop::json::{
    ApiError, ApiResult, CatalogModelJson, DownloadEvent, EngineStatus, ErrorCode, ModelFileJson,
    PresetJson, SamplingJson, SamplingLevelJson, SettingsJson,
};
use crate::desktop::{load_settings, start_engine, AppState};

#[tauri::command]
pub fn engine_status(state: State<'_, AppState>) -> ApiResult<EngineStatus> {
    Ok(state.troupe()?.engine_status().into())
}

/// Retries loading the model (after the user fixed the file).
#[tauri::command]
pub fn reload_model(app: AppHandle, state: State<'_, AppState>) -> ApiResult<()> {
    let troupe = state.troupe()?;
    start_engine(troupe, load_settings(&app), state.model_override.clone());
    Ok(())
}

/// Stops loading the model (the status bar's Stop); false when nothing was loading.
#[tauri::command]
pub fn stop_loading(state: State<'_, AppState>) -> ApiResult<bool> {
    Ok(state.troupe()?.stop_loading())
}

#[tauri::command]
pub fn get_settings(app: AppHandle, state: State<'_, AppState>) -> ApiResult<SettingsJson> {
    let troupe = state.troupe()?;
    let settings = load_settings(&app);
    let effective = troupe.model_file(&settings, state.model_override.as_deref());
    Ok(SettingsJson::from_settings(
        &settings,
        &effective,
        &troupe.paths.data,
    ))
}

/// Saves the settings; a different model file starts loading it in the background.
#[tauri::command]
pub fn save_settings(
    app: AppHandle,
    state: State<'_, AppState>,
    settings: SettingsJson,
) -> ApiResult<SettingsJson> {
    let troupe = state.troupe()?;
    let old = load_settings(&app);
    let new = settings.to_settings(&old);
    new.validate()?;
    save(&app, &new)?;
    troupe.use_memory_settings(&new);
    let before = troupe.model_file(&old, state.model_override.as_deref());
    let after = troupe.model_file(&new, state.model_override.as_deref());
    let engine_changed = before != after
        || old.engine != new.engine
        || (new.engine == EngineChoice::Remote && old.remote != new.remote);
    if engine_changed {
        start_engine(troupe, new.clone(), state.model_override.clone());
    }
    Ok(SettingsJson::from_settings(
        &new,
        &after,
        &troupe.paths.data,
    ))
}

/// Opens a web or mail link from a message or a card in the system browser, after the person
/// confirmed it in the window. Never in the webview; anything but http(s) and mailto is refused.
#[tauri::command]
pub fn open_link(url: String) -> ApiResult<()> {
    let ok =
        (url.starts_with("https://") || url.starts_with("http://") || url.starts_with("mailto:"))
            && url.len() <= 2048
            && !url
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"');
    if !ok {
        return Err(ApiError::new(
            ErrorCode::InvalidSetting,
            "only web and mail links open",
        ));
    }
    #[cfg(target_os = "macos")]
    let mut command = std::process::Command::new("open");
    #[cfg(target_os = "windows")]
    let mut command = {
        // Not `cmd /c start`, which would read the URL as shell syntax.
        let mut c = std::process::Command::new("rundll32");
        c.arg("url.dll,FileProtocolHandler");
        c
    };
    #[cfg(not(any(target_os = "macos", target_os = "windows")))]
    let mut command = std::process::Command::new("xdg-open");
    command
        .arg(&url)
        .spawn()
        // Reaped off the window's thread, so no zombie is left behind.
        .map(|mut child| drop(std::thread::spawn(move || child.wait())))
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("cannot open a browser: {e}")))
}

/// The named sampling presets.
#[tauri::command]
pub fn sampling_presets() -> Vec<PresetJson> {
    PRESETS
        .iter()
        .map(|(name, s)| PresetJson {
            name: name.to_string(),
            sampling: s.clone().into(),
        })
        .collect()
}

fn scope(character_id: &Option<String>, session_id: Option<i64>) -> ApiResult<SamplingScope<'_>> {
    match (character_id, session_id) {
        (Some(c), None) => Ok(SamplingScope::Character(c)),
        (None, Some(s)) => Ok(SamplingScope::Session(s)),
        _ => Err(ApiError::new(
            ErrorCode::Internal,
            "give either a character or a session",
        )),
    }
}

/// The Sampling of a Character (its default) or a Session (its override).
#[tauri::command]
pub fn get_sampling(
    app: AppHandle,
    state: State<'_, AppState>,
    character_id: Option<String>,
    session_id: Option<i64>,
) -> ApiResult<SamplingLevelJson> {
    let troupe = state.troupe()?;
    let scope = scope(&character_id, session_id)?;
    Ok(troupe.sampling_at(&load_settings(&app), scope)?.into())
}

/// Sets a Character's or Session's Sampling; null clears it, so it inherits again.
#[tauri::command]
pub fn set_sampling(
    app: AppHandle,
    state: State<'_, AppState>,
    character_id: Option<String>,
    session_id: Option<i64>,
    sampling: Option<SamplingJson>,
) -> ApiResult<SamplingLevelJson> {
    let troupe = state.troupe()?;
    let scope = scope(&character_id, session_id)?;
    let sampling: Option<Sampling> = sampling.map(Into::into);
    troupe.set_sampling_at(scope, sampling.as_ref())?;
    Ok(troupe.sampling_at(&load_settings(&app), scope)?.into())
}

/// The model manager's list: the models folder and the files the user added.
/// Async: it reads every model file's header.
#[tauri::command]
pub async fn list_models(
    app: AppHandle,
    state: State<'_, AppState>,
) -> ApiResult<Vec<ModelFileJson>> {
    let troupe = state.troupe()?;
    let settings = load_settings(&app);
    let in_use = troupe.model_file(&settings, state.model_override.as_deref());
    let mem = troupe.machine_memory();
    Ok(troupe
        .models(&settings, state.model_override.as_deref(), &mem)
        .into_iter()
        .map(|m| {
            let added = settings.models.contains(&m.path);
            let using = m.path == in_use;
            ModelFileJson::new(m, using, added)
        })
        .collect())
}

/// Adds a GGUF from elsewhere on disk to the list, after checking it is one Troupe can run.
#[tauri::command]
pub fn add_model(
    app: AppHandle,
    state: State<'_, AppState>,
    path: String,
) -> ApiResult<ModelFileJson> {
    let troupe = state.troupe()?;
    let path = PathBuf::from(path.trim());
    let mut settings = load_settings(&app);
    if troupe.add_model(&mut settings, &path)? {
        save(&app, &settings)?;
    }
    let in_use = troupe.model_file(&settings, state.model_override.as_deref()) == path;
    Ok(ModelFileJson::new(
        troupe.describe_model(&path),
        in_use,
        true,
    ))
}

/// Takes an added file off the list (the file itself is left alone).
#[tauri::command]
pub fn forget_model(app: AppHandle, state: State<'_, AppState>, path: String) -> ApiResult<()> {
    let mut settings = load_settings(&app);
    state
        .troupe()?
        .forget_model(&mut settings, &PathBuf::from(path));
    save(&app, &settings)
}

/// Switches to a model file: it becomes the setting and loads in the background (the current
/// model answers until the new one is ready). No restart.
#[tauri::command]
pub fn use_model(app: AppHandle, state: State<'_, AppState>, path: String) -> ApiResult<()> {
    let troupe = state.troupe()?;
    let mut settings = load_settings(&app);
    troupe.choose_model(&mut settings, &PathBuf::from(path))?;
    save(&app, &settings)?;
    start_engine(troupe, settings, state.model_override.clone());
    Ok(())
}

/// Downloads a GGUF from a Hugging Face repository into the models folder, streaming progress;
/// a second call while one runs is refused. Interrupted downloads resume.
#[tauri::command]
pub async fn download_model(
    state: State<'_, AppState>,
    repo: String,
    file: String,
    on_event: Channel<DownloadEvent>,
) -> ApiResult<ModelFileJson> {
    let troupe = state.troupe()?;
    let (_one_at_a_time, cancel) = begin_download(&state)?;
    let path = troupe
        .download_model(
            &repo,
            &file,
            |p| send_progress(&on_event, p),
            || cancel.load(Ordering::SeqCst),
        )
        .await?;
    Ok(ModelFileJson::new(
        troupe.describe_model(&path),
        false,
        false,
    ))
}

/// The model catalog, each entry with whether it suits this machine and is already here.
#[tauri::command]
pub fn model_catalog(
    app: AppHandle,
    state: State<'_, AppState>,
) -> ApiResult<Vec<CatalogModelJson>> {
    let troupe = state.troupe()?;
    let in_use = troupe.model_file(&load_settings(&app), state.model_override.as_deref());
    Ok(troupe
        .catalog(&in_use)
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Downloads a catalog model (streaming progress, resuming, checked) and switches to it.
#[tauri::command]
pub async fn install_catalog_model(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    on_event: Channel<DownloadEvent>,
) -> ApiResult<ModelFileJson> {
    let troupe = state.troupe()?;
    let (_one_at_a_time, cancel) = begin_download(&state)?;
    let mut settings = load_settings(&app);
    let path = troupe
        .install_from_catalog(
            &mut settings,
            &id,
            |p| send_progress(&on_event, p),
            || cancel.load(Ordering::SeqCst),
        )
        .await?;
    save(&app, &settings)?;
    start_engine(troupe, settings, state.model_override.clone());
    Ok(ModelFileJson::new(
        troupe.describe_model(&path),
        true,
        false,
    ))
}

/// One download at a time: the lock (held until the download ends) and its fresh cancel flag.
fn begin_download(
    state: &AppState,
) -> ApiResult<(
    tokio::sync::OwnedMutexGuard<()>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
)> {
    let Ok(lock) = state.downloading.clone().try_lock_owned() else {
        return Err(ApiError::new(
            ErrorCode::Busy,
            "a download is already running",
        ));
    };
    state.cancel_download.store(false, Ordering::SeqCst);
    Ok((lock, state.cancel_download.clone()))
}

fn send_progress(on_event: &Channel<DownloadEvent>, p: crate::app::vocabulary::DownloadProgress) {
    let _ = on_event.send(DownloadEvent::Progress {
        done: p.done,
        total: p.total,
        resumed_from: p.resumed_from,
    });
}

/// Stops the running download; what arrived is kept for a resume.
#[tauri::command]
pub fn cancel_download(state: State<'_, AppState>) {
    state.cancel_download.store(true, Ordering::SeqCst);
}

/// Saves settings through the settings store, as an `ApiError` when it fails.
fn save(app: &AppHandle, settings: &crate::app::vocabulary::Settings) -> ApiResult<()> {
    crate::desktop::save_settings(app, settings).map_err(|e| ApiError::new(ErrorCode::Internal, e))
}
