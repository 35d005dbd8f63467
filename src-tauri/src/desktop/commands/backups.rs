//! Settings → Backups: the snapshots, Back up now, Restore, Export everything and Import
//! everything. All async: each reads or writes the whole library, off the window's main thread.

use tauri::{AppHandle, State};

use crate::desktop::json::{ApiError, ApiResult, Backup, CountsJson, ErrorCode, ImportAllResult};
use crate::desktop::AppState;

/// The snapshots, newest first, and what the library holds now.
#[tauri::command]
pub async fn list_backups(state: State<'_, AppState>) -> ApiResult<(Vec<Backup>, CountsJson)> {
    let troupe = state.troupe()?;
    Ok((
        troupe.backups().into_iter().map(Into::into).collect(),
        troupe.counts().into(),
    ))
}

#[tauri::command]
pub async fn back_up_now(state: State<'_, AppState>) -> ApiResult<Backup> {
    Ok(state.troupe()?.back_up(None)?.into())
}

/// Replaces the library with a snapshot (its id); the window reloads afterwards. Returns the
/// id of the snapshot of the library as it was.
#[tauri::command]
pub async fn restore_backup(state: State<'_, AppState>, id: String) -> ApiResult<String> {
    Ok(state.troupe()?.restore(&id)?.before.id)
}

/// Writes everything to `troupe-export-<date>.zip` in the Downloads folder; returns the path.
#[tauri::command]
pub async fn export_all(app: AppHandle, state: State<'_, AppState>) -> ApiResult<String> {
    let stem = format!(
        "troupe-export-{}",
        &crate::app::utc_time(crate::app::now_ms())[..10]
    );
    let path = crate::desktop::downloads_file(&app, &stem, "zip")?;
    Ok(state
        .troupe()?
        .export_all(&path)?
        .path
        .display()
        .to_string())
}

/// Merges an export the user picked (sent as base64: the webview has no paths).
#[tauri::command]
pub async fn import_all(
    state: State<'_, AppState>,
    file: String,
    data: String,
) -> ApiResult<ImportAllResult> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.as_bytes())
        .map_err(|_| {
            ApiError::new(
                ErrorCode::BadBackup,
                format!("{file}: the upload was damaged"),
            )
        })?;
    Ok(state.troupe()?.import_all_bytes(&file, &bytes)?.into())
}
