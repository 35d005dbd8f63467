//! The Characters area's commands (`ui/src/api/characters.ts`): the gallery, a Character's page,
//! the editor, favourites, the trash, search, card import and export. Each converts the wire
//! input, calls one `Troupe` operation and converts the result. Those that decode pictures or
//! read and write files are `async`: Tauri runs a plain command on the window's main thread,
//! which would freeze the window meanwhile.

use tauri::{AppHandle, State};

use crate::app::vocabulary::{Character, Crop, Scenario};
use crate::app::{AvatarChange, Cancel, CardFormat, Imported, Troupe};
use crate::desktop::json::{
    ApiError, ApiResult, AvatarUpload, CharacterDetail, CharacterEdit, CharacterPreview,
    CharacterSummary, ErrorCode, ImportResult, Problem, ProfileFormJson, ScenarioJson,
};
use crate::desktop::AppState;

#[tauri::command]
pub fn list_characters(state: State<'_, AppState>) -> ApiResult<Vec<CharacterSummary>> {
    Ok(state
        .troupe()?
        .characters()?
        .into_iter()
        .map(Into::into)
        .collect())
}

#[tauri::command]
pub fn get_character(state: State<'_, AppState>, id: String) -> ApiResult<CharacterDetail> {
    Ok(state.troupe()?.character(&id)?.into())
}

/// A Character as the editor edits it.
#[tauri::command]
pub fn get_character_edit(state: State<'_, AppState>, id: String) -> ApiResult<CharacterEdit> {
    Ok(state.troupe()?.character(&id)?.into())
}

/// The Character an edit would make: over the stored one, or over a blank one when new.
fn edited(troupe: &Troupe, edit: CharacterEdit) -> ApiResult<Character> {
    let base = match &edit.id {
        Some(id) => troupe.character(id)?,
        None => Character::blank(),
    };
    Ok(edit.apply(base))
}

/// The editor's live preview: the profile text, the opening prompt of a new Session in
/// `scenario` as the model would read it, its token count, and what must be fixed.
#[tauri::command]
pub async fn preview_character(
    state: State<'_, AppState>,
    edit: CharacterEdit,
    scenario: ScenarioJson,
) -> ApiResult<CharacterPreview> {
    let troupe = state.troupe()?;
    let c = edited(troupe, edit)?;
    let scenario: Scenario = scenario.into();
    let p = troupe.preview(&c, scenario).await;
    Ok(CharacterPreview {
        profile_text: p.profile_text,
        prose: p.prose,
        prompt: p.prompt,
        tokens: p.tokens,
        exact: p.exact,
        context_tokens: p.context_tokens,
        note: p.note,
        problems: p
            .problems
            .into_iter()
            .map(|(field, message)| Problem { field, message })
            .collect(),
    })
}

/// Saves the editor's Character (new when its id is null) with, optionally, a new picture
/// or none; returns its detail.
#[tauri::command]
pub async fn save_character(
    state: State<'_, AppState>,
    edit: CharacterEdit,
    avatar: Option<AvatarUpload>,
    remove_avatar: bool,
) -> ApiResult<CharacterDetail> {
    use base64::Engine as _;
    let troupe = state.troupe()?;
    let is_new = edit.id.is_none();
    let c = edited(troupe, edit)?;
    let change = match avatar {
        Some(a) => AvatarChange::Set {
            bytes: base64::engine::general_purpose::STANDARD
                .decode(a.data.as_bytes())
                .map_err(|_| {
                    ApiError::new(
                        ErrorCode::InvalidCharacter,
                        "the picture's upload was damaged",
                    )
                })?,
            crop: Some(Crop {
                x: a.x,
                y: a.y,
                scale: a.scale,
            }),
        },
        None if remove_avatar => AvatarChange::Remove,
        None => AvatarChange::Keep,
    };
    Ok(troupe.save_character(c, change, is_new)?.into())
}

/// Has the model write a form of the profile (summary, paraphrase, self-introduction) from the
/// editor's current fields. Nothing is saved: the editor shows the text. `stop_profile_form`
/// stops it.
#[tauri::command]
pub async fn write_profile_form(
    state: State<'_, AppState>,
    edit: CharacterEdit,
    form: ProfileFormJson,
) -> ApiResult<String> {
    let troupe = state.troupe()?;
    let c = edited(troupe, edit)?;
    let cancel = Cancel::new();
    *state.cancel_form.lock().unwrap_or_else(|p| p.into_inner()) = Some(cancel.clone());
    Ok(troupe.write_profile_form(&c, form.into(), &cancel).await?)
}

/// The editor's Stop while the model writes a form.
#[tauri::command]
pub fn stop_profile_form(state: State<'_, AppState>) {
    if let Some(c) = state
        .cancel_form
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        c.cancel();
    }
}

#[tauri::command]
pub fn duplicate_character(state: State<'_, AppState>, id: String) -> ApiResult<CharacterSummary> {
    let troupe = state.troupe()?;
    let copy = troupe.duplicate_character(&id)?;
    Ok(troupe.character_summary(&copy.id)?.into())
}

#[tauri::command]
pub fn set_favourite(state: State<'_, AppState>, id: String, favourite: bool) -> ApiResult<()> {
    Ok(state.troupe()?.set_favourite(&id, favourite)?)
}

/// Moves a Character to the trash; `restore_character` undoes it.
#[tauri::command]
pub fn trash_character(state: State<'_, AppState>, id: String) -> ApiResult<()> {
    Ok(state.troupe()?.trash_character(&id)?)
}

#[tauri::command]
pub fn restore_character(state: State<'_, AppState>, id: String) -> ApiResult<()> {
    Ok(state.troupe()?.restore_character(&id)?)
}

#[tauri::command]
pub fn list_trash(state: State<'_, AppState>) -> ApiResult<Vec<CharacterSummary>> {
    Ok(state
        .troupe()?
        .trash()?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Deletes everything in the trash for good; returns how many Characters went.
#[tauri::command]
pub async fn empty_trash(state: State<'_, AppState>) -> ApiResult<usize> {
    Ok(state.troupe()?.empty_trash()?)
}

/// Ids of the Characters whose name or profile text contains `query`.
#[tauri::command]
pub fn search_characters(state: State<'_, AppState>, query: String) -> ApiResult<Vec<String>> {
    Ok(state.troupe()?.search_characters(&query)?)
}

/// Imports files the user picked or dropped, sent as base64 (the webview reads them; it has
/// no paths). One result per file: a bad file is reported and changes nothing.
#[tauri::command]
pub async fn import_cards(
    state: State<'_, AppState>,
    files: Vec<(String, String)>,
    lorebook_for: Option<String>,
) -> ApiResult<Vec<ImportResult>> {
    use base64::Engine as _;
    let troupe = state.troupe()?;
    Ok(files
        .into_iter()
        .map(|(file, data)| {
            let outcome = base64::engine::general_purpose::STANDARD
                .decode(data.as_bytes())
                .map_err(|_| format!("{file}: the upload was damaged"))
                .and_then(|bytes| {
                    troupe
                        .import_card_bytes(&file, &bytes, lorebook_for.as_deref())
                        .map_err(|e| e.to_string())
                });
            let (character_id, lore_entries, error) = match outcome {
                Ok(Imported::Character(c)) => (Some(c.id), None, None),
                Ok(Imported::Lorebook { entries, .. }) => (None, Some(entries), None),
                Err(e) => (None, None, Some(e)),
            };
            ImportResult {
                file,
                character_id,
                lore_entries,
                error,
            }
        })
        .collect())
}

/// Writes a Character's card (png, json or charx) into the user's Downloads folder and returns
/// the path.
#[tauri::command]
pub async fn export_card(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    format: String,
) -> ApiResult<String> {
    let format = match format.as_str() {
        "json" => CardFormat::Json,
        "charx" => CardFormat::Charx,
        _ => CardFormat::Png,
    };
    let bytes = state.troupe()?.export_card(&id, format)?;
    let path = crate::desktop::downloads_file(&app, &id, format.extension())?;
    std::fs::write(&path, bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::Internal,
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    Ok(path.display().to_string())
}
