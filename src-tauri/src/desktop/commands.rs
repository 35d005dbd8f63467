//! The Tauri commands: each converts wire input, calls the core once and maps the error. The
//! list of what the window can ask for is `desktop::run`'s `generate_handler!`.

use std::sync::Arc;
use std::time::Duration;

use tauri::ipc::Channel;
use tauri::{AppHandle, State};

use super::json::{
    ApiError, ApiResult, AvatarUpload, CharacterDetail, CharacterEdit, CharacterPreview,
    CharacterSummary, DownloadEvent, EngineStatus, ErrorCode, ImportResult, Memory, Message,
    ModelFileJson, Persona, PresetJson, Problem, ProfileFormJson, PromptRecord, SamplingJson,
    SamplingLevelJson, ScenarioJson, SearchHit, Session, SettingsJson, StreamEvent,
};
use super::AppState;
use crate::app::{
    now_ms, sampling_at, sampling_for_session, set_sampling_at, AvatarChange, CardFormat, Imported,
    SamplingScope,
};
use crate::characters;
use crate::conversation::{self, Cancel, Scenario, TurnError};
use crate::engine::Sampling;
use crate::engine::{download, models};
use crate::settings::EngineChoice;

#[tauri::command]
pub fn list_characters(state: State<'_, AppState>) -> ApiResult<Vec<CharacterSummary>> {
    Ok(state
        .troupe()?
        .store
        .list_characters()?
        .into_iter()
        .map(Into::into)
        .collect())
}

#[tauri::command]
pub fn get_character(state: State<'_, AppState>, id: String) -> ApiResult<CharacterDetail> {
    Ok(state.troupe()?.store.get_character(&id)?.into())
}

/// A Character as the editor edits it.
#[tauri::command]
pub fn get_character_edit(state: State<'_, AppState>, id: String) -> ApiResult<CharacterEdit> {
    Ok(state.troupe()?.store.get_character(&id)?.into())
}

/// The Character an edit would make: over the stored one, or over a blank one when new.
fn edited(troupe: &crate::app::Troupe, edit: CharacterEdit) -> ApiResult<characters::Character> {
    let base = match &edit.id {
        Some(id) => troupe.store.get_character(id)?,
        None => characters::Character::blank(),
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
    let c = edited(&troupe, edit)?;
    let scenario: Scenario = scenario.into();
    let messages = conversation::prompt::opening(&c, scenario);
    let mut context = conversation::turn::CONTEXT_CAP;
    let (rendered, note) = match troupe.engine.engine() {
        Ok(engine) => {
            context = engine.info().context_length.min(context);
            match engine.render_prompt(&messages).await {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(e.to_string())),
            }
        }
        Err(e) => (None, Some(e.to_string())),
    };
    let mut problems: Vec<Problem> = c
        .problems()
        .into_iter()
        .map(|p| Problem {
            field: p.field,
            message: p.message,
        })
        .collect();
    if let Some(r) = &rendered {
        // The opening must leave room for a conversation: the reply and a few turns.
        if r.tokens + 1024 > context {
            problems.push(Problem {
                field: "prompt".into(),
                message: format!(
                    "The opening prompt takes {} of the model's {context} tokens, leaving too little \
                     for the conversation; shorten the profile or the example dialogue.",
                    r.tokens
                ),
            });
        }
    }
    let fallback = || {
        messages
            .iter()
            .map(|m| format!("[{}]\n{}", m.role.as_str(), m.content))
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    Ok(CharacterPreview {
        profile_text: c.profile.text(&c.name),
        prose: c.profile.to_prose(&c.name),
        prompt: rendered
            .as_ref()
            .map(|r| r.text.clone())
            .unwrap_or_else(fallback),
        tokens: rendered.as_ref().map(|r| r.tokens),
        exact: rendered.as_ref().is_some_and(|r| r.exact),
        context_tokens: context,
        note,
        problems,
    })
}

/// Saves the editor's Character (new when its id is null) with, optionally, a new picture
/// or none; returns its detail.
#[tauri::command]
pub fn save_character(
    state: State<'_, AppState>,
    edit: CharacterEdit,
    avatar: Option<AvatarUpload>,
    remove_avatar: bool,
) -> ApiResult<CharacterDetail> {
    use base64::Engine as _;
    let troupe = state.troupe()?;
    let is_new = edit.id.is_none();
    let c = edited(&troupe, edit)?;
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
            crop: Some(characters::avatar::Crop {
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
/// editor's current fields. Nothing is saved: the editor shows the text.
#[tauri::command]
pub async fn write_profile_form(
    state: State<'_, AppState>,
    edit: CharacterEdit,
    form: ProfileFormJson,
) -> ApiResult<String> {
    let troupe = state.troupe()?;
    let engine = troupe.engine.engine()?;
    let c = edited(&troupe, edit)?;
    Ok(conversation::forms::write(engine.as_ref(), &c, form.into()).await?)
}

#[tauri::command]
pub fn duplicate_character(state: State<'_, AppState>, id: String) -> ApiResult<CharacterSummary> {
    let troupe = state.troupe()?;
    let copy = troupe.duplicate_character(&id)?;
    summary_of(&troupe, &copy.id)
}

fn summary_of(troupe: &crate::app::Troupe, id: &str) -> ApiResult<CharacterSummary> {
    troupe
        .store
        .list_characters()?
        .into_iter()
        .find(|c| c.id == id)
        .map(Into::into)
        .ok_or_else(|| crate::store::Error::CharacterNotFound(id.to_string()).into())
}

#[tauri::command]
pub fn set_favourite(state: State<'_, AppState>, id: String, favourite: bool) -> ApiResult<()> {
    Ok(state.troupe()?.store.set_favourite(&id, favourite)?)
}

/// Moves a Character to the trash; `restore_character` undoes it.
#[tauri::command]
pub fn trash_character(state: State<'_, AppState>, id: String) -> ApiResult<()> {
    Ok(state.troupe()?.trash_character(&id)?)
}

#[tauri::command]
pub fn restore_character(state: State<'_, AppState>, id: String) -> ApiResult<()> {
    Ok(state.troupe()?.store.restore_character(&id)?)
}

#[tauri::command]
pub fn list_trash(state: State<'_, AppState>) -> ApiResult<Vec<CharacterSummary>> {
    Ok(state
        .troupe()?
        .store
        .list_trash()?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Deletes everything in the trash for good; returns how many Characters went.
#[tauri::command]
pub fn empty_trash(state: State<'_, AppState>) -> ApiResult<usize> {
    Ok(state.troupe()?.empty_trash()?)
}

/// Ids of the Characters whose name or profile text contains `query`.
#[tauri::command]
pub fn search_characters(state: State<'_, AppState>, query: String) -> ApiResult<Vec<String>> {
    Ok(state.troupe()?.store.search_characters(&query)?)
}

/// Imports files the user picked or dropped, sent as base64 (the webview reads them; it has
/// no paths). One result per file: a bad file is reported and changes nothing.
#[tauri::command]
pub fn import_cards(
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
pub fn export_card(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    format: String,
) -> ApiResult<String> {
    use tauri::Manager;
    let format = match format.as_str() {
        "json" => CardFormat::Json,
        "charx" => CardFormat::Charx,
        _ => CardFormat::Png,
    };
    let bytes = state.troupe()?.export_card(&id, format)?;
    let dir = app
        .path()
        .download_dir()
        .or_else(|_| app.path().home_dir())
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let mut path = dir.join(format!("{id}.{}", format.extension()));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.join(format!("{id} ({n}).{}", format.extension()));
    }
    std::fs::write(&path, bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::Internal,
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    Ok(path.display().to_string())
}

#[tauri::command]
pub fn list_sessions(state: State<'_, AppState>, character_id: String) -> ApiResult<Vec<Session>> {
    Ok(state
        .troupe()?
        .store
        .list_sessions(&character_id)?
        .into_iter()
        .map(Into::into)
        .collect())
}

#[tauri::command]
pub fn create_session(
    state: State<'_, AppState>,
    character_id: String,
    scenario: ScenarioJson,
    persona_id: Option<i64>,
) -> ApiResult<Session> {
    let troupe = state.troupe()?;
    Ok(troupe
        .start_session(&character_id, scenario.into(), persona_id)?
        .into())
}

/// The newest `limit` messages of a Session (what opening it shows first).
#[tauri::command]
pub fn recent_messages(
    state: State<'_, AppState>,
    session_id: i64,
    limit: usize,
) -> ApiResult<Vec<Message>> {
    Ok(state
        .troupe()?
        .store
        .recent_messages(session_id, limit)?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// What the reply `message_id` was given, section by section; null for replies from before
/// prompts were kept.
#[tauri::command]
pub fn prompt_record(
    state: State<'_, AppState>,
    message_id: i64,
) -> ApiResult<Option<PromptRecord>> {
    let json = state.troupe()?.store.prompt_record(message_id)?;
    Ok(json
        .and_then(|j| serde_json::from_str::<conversation::prompt::PromptRecord>(&j).ok())
        .map(Into::into))
}

#[tauri::command]
pub fn search_messages(
    state: State<'_, AppState>,
    query: String,
    limit: Option<usize>,
) -> ApiResult<Vec<SearchHit>> {
    Ok(state
        .troupe()?
        .store
        .search_messages(&query, limit.unwrap_or(50))?
        .into_iter()
        .map(Into::into)
        .collect())
}

#[tauri::command]
pub fn list_personas(state: State<'_, AppState>) -> ApiResult<Vec<Persona>> {
    Ok(state
        .troupe()?
        .store
        .list_personas()?
        .into_iter()
        .map(Into::into)
        .collect())
}

#[tauri::command]
pub fn save_persona(state: State<'_, AppState>, persona: Persona) -> ApiResult<Persona> {
    if persona.name.trim().is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidSetting,
            "A persona needs a name.",
        ));
    }
    Ok(state
        .troupe()?
        .store
        .save_persona(&persona.into(), now_ms())?
        .into())
}

#[tauri::command]
pub fn delete_persona(state: State<'_, AppState>, id: i64) -> ApiResult<()> {
    Ok(state.troupe()?.store.delete_persona(id)?)
}

#[tauri::command]
pub fn list_memories(state: State<'_, AppState>, session_id: i64) -> ApiResult<Vec<Memory>> {
    Ok(state
        .troupe()?
        .store
        .memories_for_session(session_id)?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Pins a memory: written by the user, or a message's text (`message_id`); for this Session,
/// or for every Session with the Character (`for_character`).
#[tauri::command]
pub fn add_memory(
    state: State<'_, AppState>,
    session_id: i64,
    content: String,
    message_id: Option<i64>,
    for_character: bool,
) -> ApiResult<Memory> {
    let troupe = state.troupe()?;
    let s = troupe.store.get_session(session_id)?;
    let content = match (content.trim(), message_id) {
        ("", Some(id)) => troupe
            .store
            .get_message(id)?
            .map(|m| m.content)
            .unwrap_or_default(),
        (text, _) => text.to_string(),
    };
    if content.trim().is_empty() {
        return Err(ApiError::new(
            ErrorCode::EmptyMessage,
            "An empty memory: nothing was pinned.",
        ));
    }
    Ok(troupe
        .store
        .add_memory(
            &s.character_id,
            (!for_character).then_some(session_id),
            crate::store::MemoryKind::Pinned,
            content.trim(),
            message_id,
            now_ms(),
        )?
        .into())
}

#[tauri::command]
pub fn update_memory(state: State<'_, AppState>, id: i64, content: String) -> ApiResult<()> {
    Ok(state
        .troupe()?
        .store
        .update_memory(id, content.trim(), now_ms())?)
}

#[tauri::command]
pub fn delete_memory(state: State<'_, AppState>, id: i64) -> ApiResult<()> {
    Ok(state.troupe()?.store.delete_memory(id)?)
}

#[tauri::command]
pub fn rename_session(state: State<'_, AppState>, session_id: i64, title: String) -> ApiResult<()> {
    let title = title.trim();
    if title.is_empty() {
        return Err(ApiError::new(
            ErrorCode::EmptyMessage,
            "A conversation needs a title.",
        ));
    }
    Ok(state.troupe()?.store.rename_session(session_id, title)?)
}

/// Moves a Session to the trash; `restore_session` undoes it.
#[tauri::command]
pub fn trash_session(state: State<'_, AppState>, session_id: i64) -> ApiResult<()> {
    Ok(state.troupe()?.store.trash_session(session_id, now_ms())?)
}

#[tauri::command]
pub fn restore_session(state: State<'_, AppState>, session_id: i64) -> ApiResult<()> {
    Ok(state.troupe()?.store.restore_session(session_id)?)
}

/// Edits a message's text; refused while a reply is being written into it.
#[tauri::command]
pub fn edit_message(state: State<'_, AppState>, message_id: i64, content: String) -> ApiResult<()> {
    if content.trim().is_empty() {
        return Err(ApiError::new(
            ErrorCode::EmptyMessage,
            "The message is empty; delete it instead.",
        ));
    }
    Ok(state
        .troupe()?
        .store
        .edit_message(message_id, content.trim())?)
}

/// Deletes a message; refused while a reply is being written into it.
#[tauri::command]
pub fn delete_message(state: State<'_, AppState>, message_id: i64) -> ApiResult<()> {
    Ok(state.troupe()?.store.delete_message(message_id)?)
}

/// A new Session with the messages of this one up to `message_id`; returns it.
#[tauri::command]
pub fn branch_session(state: State<'_, AppState>, message_id: i64) -> ApiResult<Session> {
    Ok(state
        .troupe()?
        .store
        .branch_session(message_id, now_ms())?
        .into())
}

/// Questions to ask in an interview, drawn from the Character's profile.
#[tauri::command]
pub fn suggested_questions(
    state: State<'_, AppState>,
    character_id: String,
) -> ApiResult<Vec<String>> {
    let c = state.troupe()?.store.get_character(&character_id)?;
    Ok(conversation::suggested_questions(&c))
}

#[tauri::command]
pub fn list_messages(state: State<'_, AppState>, session_id: i64) -> ApiResult<Vec<Message>> {
    Ok(state
        .troupe()?
        .store
        .list_messages(session_id)?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Sends the user's message and streams the reply over `on_event`; resolves with the final reply.
#[tauri::command]
pub async fn send_message(
    app: AppHandle,
    state: State<'_, AppState>,
    session_id: i64,
    text: String,
    on_event: Channel<StreamEvent>,
) -> ApiResult<Message> {
    let troupe = state.troupe()?;
    let engine = troupe.engine.engine()?;
    let sampling = sampling_for_session(&troupe.store, &super::load_settings(&app), session_id)?;
    let cancel = state.start_reply(session_id)?;
    // A summary being written goes second: the reply is what the user waits for.
    state.cancel_summary(session_id);
    // A warm-up of this session still prefilling: wait for it, so this reply reuses its work
    // instead of competing with it for the same cores.
    let warming = state.warm_lock(session_id);
    // (One after the other, never both held: the session's warm-up itself waits for the
    // Character's.)
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        drop(state.character_warming.lock().await);
        drop(warming.lock().await);
    })
    .await;
    let result = conversation::send(
        &troupe.store,
        engine.as_ref(),
        session_id,
        &text,
        &sampling,
        &cancel,
        &now_ms,
        &mut |e| {
            // A closed channel (the window reloaded) must not stop the reply being saved.
            let _ = on_event.send(e.into());
        },
    )
    .await;
    state.end_reply(session_id);
    finish_stream(&on_event, result)
}

/// Writes the last reply again (kept as a new swipe) and streams it over `on_event`.
#[tauri::command]
pub async fn regenerate_reply(
    app: AppHandle,
    state: State<'_, AppState>,
    reply_id: i64,
    on_event: Channel<StreamEvent>,
) -> ApiResult<Message> {
    rewrite(app, state, reply_id, on_event, false).await
}

/// Continues the last reply where it stopped, streaming the new words over `on_event`.
#[tauri::command]
pub async fn continue_reply(
    app: AppHandle,
    state: State<'_, AppState>,
    reply_id: i64,
    on_event: Channel<StreamEvent>,
) -> ApiResult<Message> {
    rewrite(app, state, reply_id, on_event, true).await
}

/// Regenerate and continue: like `send_message`, one reply per Session at a time, Stop works.
async fn rewrite(
    app: AppHandle,
    state: State<'_, AppState>,
    reply_id: i64,
    on_event: Channel<StreamEvent>,
    continuing: bool,
) -> ApiResult<Message> {
    let troupe = state.troupe()?;
    let engine = troupe.engine.engine()?;
    let session_id = troupe
        .store
        .get_message(reply_id)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "That message is gone."))?
        .session_id;
    let sampling = sampling_for_session(&troupe.store, &super::load_settings(&app), session_id)?;
    let cancel = state.start_reply(session_id)?;
    state.cancel_summary(session_id);
    let mut send = |e: conversation::TurnEvent| {
        let _ = on_event.send(e.into());
    };
    let result = if continuing {
        conversation::continue_reply(
            &troupe.store,
            engine.as_ref(),
            reply_id,
            &sampling,
            &cancel,
            &mut send,
        )
        .await
    } else {
        conversation::regenerate(
            &troupe.store,
            engine.as_ref(),
            reply_id,
            &sampling,
            &cancel,
            &mut send,
        )
        .await
    };
    state.end_reply(session_id);
    finish_stream(&on_event, result)
}

/// Ends a streamed reply: `Finished` on the channel (with figures when it completed), and the
/// reply or the error as the command's result.
fn finish_stream(
    on_event: &Channel<StreamEvent>,
    result: Result<(crate::store::Message, conversation::ReplyStats), TurnError>,
) -> ApiResult<Message> {
    match result {
        Ok((reply, stats)) => {
            let reply: Message = reply.into();
            let _ = on_event.send(StreamEvent::Finished {
                reply: reply.clone(),
                stats: Some(stats.into()),
            });
            Ok(reply)
        }
        Err(TurnError::Failed { reply, reason }) => {
            let _ = on_event.send(StreamEvent::Finished {
                reply: reply.into(),
                stats: None,
            });
            Err(ApiError::new(
                ErrorCode::ReplyFailed,
                format!("The reply stopped early: {reason}"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Shows another version (swipe) of a reply written more than once.
#[tauri::command]
pub fn select_swipe(
    state: State<'_, AppState>,
    message_id: i64,
    index: usize,
) -> ApiResult<Message> {
    Ok(state
        .troupe()?
        .store
        .select_swipe(message_id, index)?
        .into())
}

/// Prefills the prompt of `session_id`'s next reply in the background (see
/// `conversation::warm`), once per state of the session, so its first word comes quickly.
#[tauri::command]
pub fn warm_session(app: AppHandle, state: State<'_, AppState>, session_id: i64) -> ApiResult<()> {
    let troupe = state.troupe()?;
    let engine = troupe.engine.engine()?;
    let n_messages = troupe.store.get_session(session_id)?.n_messages;
    if !state.should_warm(session_id, n_messages) {
        return Ok(());
    }
    let Ok(warming) = state.warm_lock(session_id).try_lock_owned() else {
        return Ok(()); // One is running already.
    };
    let store = troupe.store.clone();
    let sampling = sampling_for_session(&store, &super::load_settings(&app), session_id)?;
    let character_warming = state.character_warming.clone();
    let summarising = state.summarising.clone();
    tauri::async_runtime::spawn(async move {
        // Held until the prefill is done; `send_message` waits on it.
        let _warming = warming;
        // A Character warm-up still running: let it finish, then build on its prefix.
        drop(character_warming.lock().await);
        // First the summary of what the window moved past (the next prompt includes it), unless
        // the user sends a message meanwhile.
        let cancel = Cancel::new();
        summarising
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session_id, cancel.clone());
        let summary = conversation::memory::catch_up(
            &store,
            engine.as_ref(),
            session_id,
            &sampling,
            &cancel,
            &now_ms,
        )
        .await;
        summarising
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&session_id);
        if let Err(e) = summary {
            tracing::warn!("summarising session {session_id} failed: {e}");
        }
        if cancel.is_cancelled() {
            return; // A message is on its way; its turn prefills what it needs.
        }
        if let Err(e) = conversation::warm(&store, engine.as_ref(), session_id, &sampling).await {
            tracing::debug!("warming session {session_id} failed: {e}");
        }
    });
    Ok(())
}

/// Prefills the Character's part of the prompt in the background (see
/// `conversation::warm_character`), when the user opens a Character; skipped if one runs.
#[tauri::command]
pub fn warm_character(state: State<'_, AppState>, character_id: String) -> ApiResult<()> {
    let troupe = state.troupe()?;
    let engine = troupe.engine.engine()?;
    let character = troupe.store.get_character(&character_id)?;
    let Ok(warming) = state.character_warming.clone().try_lock_owned() else {
        return Ok(());
    };
    tauri::async_runtime::spawn(async move {
        let _warming = warming;
        conversation::warm_character(engine.as_ref(), &character).await;
    });
    Ok(())
}

/// The Stop button: ends the reply being written in `session_id`, keeping what was said.
#[tauri::command]
pub fn stop_reply(state: State<'_, AppState>, session_id: i64) -> ApiResult<bool> {
    Ok(state.stop_reply(session_id))
}

#[tauri::command]
pub fn engine_status(state: State<'_, AppState>) -> ApiResult<EngineStatus> {
    Ok(state.troupe()?.engine.status().into())
}

#[tauri::command]
pub fn get_settings(app: AppHandle, state: State<'_, AppState>) -> ApiResult<SettingsJson> {
    let troupe = state.troupe()?;
    let settings = super::load_settings(&app);
    let effective = troupe.model_file(&settings, state.model_override.as_deref());
    Ok(SettingsJson::from_settings(&settings, &effective))
}

/// Saves the settings; a different model file starts loading it in the background.
#[tauri::command]
pub fn save_settings(
    app: AppHandle,
    state: State<'_, AppState>,
    settings: SettingsJson,
) -> ApiResult<SettingsJson> {
    let troupe = state.troupe()?;
    let old = super::load_settings(&app);
    let new = settings.to_settings(&old);
    new.validate()?;
    super::save_settings(&app, &new).map_err(|e| ApiError::new(ErrorCode::Internal, e))?;
    let before = troupe.model_file(&old, state.model_override.as_deref());
    let after = troupe.model_file(&new, state.model_override.as_deref());
    let engine_changed = before != after
        || old.engine != new.engine
        || (new.engine == EngineChoice::Remote && old.remote != new.remote);
    if engine_changed {
        super::start_engine(troupe, new.clone(), state.model_override.clone());
    }
    Ok(SettingsJson::from_settings(&new, &after))
}

/// The named sampling presets.
#[tauri::command]
pub fn sampling_presets() -> Vec<PresetJson> {
    crate::engine::sampling::PRESETS
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
    let settings = super::load_settings(&app);
    Ok(sampling_at(&troupe.store, &settings, scope(&character_id, session_id)?)?.into())
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
    set_sampling_at(&troupe.store, scope, sampling.as_ref())?;
    let settings = super::load_settings(&app);
    Ok(sampling_at(&troupe.store, &settings, scope)?.into())
}

/// The model manager's list: the models folder and the files the user added.
#[tauri::command]
pub fn list_models(app: AppHandle, state: State<'_, AppState>) -> ApiResult<Vec<ModelFileJson>> {
    let troupe = state.troupe()?;
    let settings = super::load_settings(&app);
    let in_use = troupe.model_file(&settings, state.model_override.as_deref());
    let mem = models::machine_memory();
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
    let path = std::path::PathBuf::from(path.trim());
    crate::engine::check_model_file(&path)?;
    let mut settings = super::load_settings(&app);
    if !settings.models.contains(&path) {
        settings.models.push(path.clone());
        super::save_settings(&app, &settings).map_err(|e| ApiError::new(ErrorCode::Internal, e))?;
    }
    let in_use = troupe.model_file(&settings, state.model_override.as_deref()) == path;
    Ok(ModelFileJson::new(
        models::describe(&path, &models::machine_memory()),
        in_use,
        true,
    ))
}

/// Takes an added file off the list (the file itself is left alone).
#[tauri::command]
pub fn forget_model(app: AppHandle, path: String) -> ApiResult<()> {
    let mut settings = super::load_settings(&app);
    settings.models.retain(|p| p.as_os_str() != path.as_str());
    super::save_settings(&app, &settings).map_err(|e| ApiError::new(ErrorCode::Internal, e))
}

/// Switches to a model file: it becomes the setting and loads in the background (the current
/// model answers until the new one is ready). No restart.
#[tauri::command]
pub fn use_model(app: AppHandle, state: State<'_, AppState>, path: String) -> ApiResult<()> {
    let troupe = state.troupe()?;
    let path = std::path::PathBuf::from(path);
    crate::engine::check_model_file(&path)?;
    let mut settings = super::load_settings(&app);
    settings.model_path = (path != troupe.paths.default_model()).then_some(path);
    settings.engine = EngineChoice::Local;
    super::save_settings(&app, &settings).map_err(|e| ApiError::new(ErrorCode::Internal, e))?;
    super::start_engine(troupe, settings, state.model_override.clone());
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
    let Ok(_one_at_a_time) = state.downloading.clone().try_lock_owned() else {
        return Err(ApiError::new(
            ErrorCode::Busy,
            "a download is already running",
        ));
    };
    state
        .cancel_download
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let cancel = state.cancel_download.clone();
    let token = std::env::var("HF_TOKEN").ok();
    let path = download::download(
        &download::endpoint(),
        &download::Request::new(&repo, &file),
        &troupe.paths.models(),
        token.as_deref(),
        |p| {
            let _ = on_event.send(DownloadEvent::Progress {
                done: p.done,
                total: p.total,
                resumed_from: p.resumed_from,
            });
        },
        || cancel.load(std::sync::atomic::Ordering::SeqCst),
    )
    .await?;
    Ok(ModelFileJson::new(
        models::describe(&path, &models::machine_memory()),
        false,
        false,
    ))
}

/// Stops the running download; what arrived is kept for a resume.
#[tauri::command]
pub fn cancel_download(state: State<'_, AppState>) {
    state
        .cancel_download
        .store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Retries loading the model (after the user fixed the file).
#[tauri::command]
pub fn reload_model(app: AppHandle, state: State<'_, AppState>) -> ApiResult<()> {
    let troupe = state.troupe()?;
    let settings = super::load_settings(&app);
    super::start_engine(troupe, settings, state.model_override.clone());
    Ok(())
}

impl AppState {
    fn start_reply(&self, session_id: i64) -> ApiResult<Cancel> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(&session_id) {
            return Err(ApiError::new(
                ErrorCode::Busy,
                "a reply is already being written in this session",
            ));
        }
        let cancel = Cancel::new();
        running.insert(session_id, cancel.clone());
        Ok(cancel)
    }

    /// False when a reply is running in the session or it was already warmed as it is now (an
    /// identical prompt gets no help from the prefix cache, so warming it again is wasted).
    fn should_warm(&self, session_id: i64, n_messages: i64) -> bool {
        if self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&session_id)
        {
            return false;
        }
        let mut warmed = self.warmed.lock().unwrap_or_else(|p| p.into_inner());
        warmed.insert(session_id, n_messages) != Some(n_messages)
    }

    /// The lock a session's warm-up holds while it prefills.
    fn warm_lock(&self, session_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        self.warming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(session_id)
            .or_default()
            .clone()
    }

    /// A summary being written for `session_id` goes second: a reply is what the user waits for.
    fn cancel_summary(&self, session_id: i64) {
        if let Some(c) = self
            .summarising
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&session_id)
        {
            c.cancel();
        }
    }

    fn end_reply(&self, session_id: i64) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&session_id);
    }

    fn stop_reply(&self, session_id: i64) -> bool {
        match self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&session_id)
        {
            Some(c) => {
                c.cancel();
                true
            }
            None => false,
        }
    }
}
