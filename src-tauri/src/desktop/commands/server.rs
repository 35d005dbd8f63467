//! Settings → Local API's commands (`ui/src/api/server.ts`): the local API (`crate::server`)
//! runs in the window's process, on its engine and library, from when the person turns it on
//! (or from the start, with "start with Troupe") until they turn it off or the window closes.
//! Changes apply at once: a new port, key or origin restarts it.

use std::sync::Arc;

use tauri::{AppHandle, State};

use crate::app::vocabulary::ApiSettings;
use crate::desktop::json::{ApiError, ApiResult, ErrorCode, LocalApi, LocalApiChange};
use crate::desktop::{load_settings, save_settings, AppState};
use crate::server::{self, Options};

/// The API as it is now.
#[tauri::command]
pub async fn local_api(app: AppHandle, state: State<'_, AppState>) -> ApiResult<LocalApi> {
    let api = load_settings(&app).api;
    let running = state.local_api.lock().await;
    Ok(LocalApi::new(
        &api,
        running.address(),
        running.error.clone(),
    ))
}

/// Turns the API on or off and keeps the choices; a key is made the first time it is on.
#[tauri::command]
pub async fn set_local_api(
    app: AppHandle,
    state: State<'_, AppState>,
    change: LocalApiChange,
) -> ApiResult<LocalApi> {
    let mut settings = load_settings(&app);
    settings.api = change.apply(&settings.api);
    if change.running {
        settings.api.ensure_key();
    }
    save_settings(&app, &settings).map_err(|e| ApiError::new(ErrorCode::Internal, e))?;
    let on = change.running.then_some(settings.api.clone());
    apply(&app, &state, on).await
}

/// A new key; the old one stops working at once.
#[tauri::command]
pub async fn new_local_api_key(app: AppHandle, state: State<'_, AppState>) -> ApiResult<LocalApi> {
    let mut settings = load_settings(&app);
    settings.api.key = Some(ApiSettings::new_key());
    save_settings(&app, &settings).map_err(|e| ApiError::new(ErrorCode::Internal, e))?;
    let running = state.local_api.lock().await.address().is_some();
    apply(&app, &state, running.then_some(settings.api)).await
}

/// The server running with `api` (restarted when it was), or stopped with `None`.
pub(crate) async fn apply(
    app: &AppHandle,
    state: &AppState,
    api: Option<ApiSettings>,
) -> ApiResult<LocalApi> {
    let mut running = state.local_api.lock().await;
    if let Some(server) = running.server.take() {
        server.stop().await;
    }
    running.error = None;
    let Some(api) = api else {
        return Ok(LocalApi::new(&load_settings(app).api, None, None));
    };
    let troupe = state.troupe()?.clone();
    let reader = app.clone();
    let options = Options {
        host: if api.network {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv4Addr::LOCALHOST.into()
        },
        port: api.port,
        key: api.key.clone().unwrap_or_default(),
        origins: api.origins.clone(),
        allow_network: api.network,
    };
    match server::start(troupe, Arc::new(move || load_settings(&reader)), options).await {
        Ok(server) => running.server = Some(server),
        Err(e) => running.error = Some(e.to_string()),
    }
    let (address, error) = (running.address(), running.error.clone());
    match error {
        Some(e) => Err(ApiError::new(ErrorCode::InvalidSetting, e)),
        None => Ok(LocalApi::new(&api, address, None)),
    }
}
