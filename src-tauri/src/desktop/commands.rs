//! The Tauri commands: each converts wire input, calls the core once and maps the error. The
//! list of what the window can ask for is `desktop::run`'s `generate_handler!`.

use std::sync::Arc;
use std::time::Duration;

use tauri::ipc::Channel;
use tauri::{AppHandle, State};

use super::json::{
    ApiError, ApiResult, CharacterDetail, CharacterSummary, EngineStatus, ErrorCode, Message,
    ScenarioJson, Session, SettingsJson, StreamEvent,
};
use super::AppState;
use crate::app::{now_ms, sampling};
use crate::conversation::{self, Cancel, Scenario, TurnError};

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
) -> ApiResult<Session> {
    let troupe = state.troupe()?;
    let character = troupe.store.get_character(&character_id)?;
    let scenario = Scenario::from(scenario);
    let greeting = character.greetings.for_scenario(scenario);
    Ok(troupe
        .store
        .create_session(
            &character_id,
            scenario,
            scenario.label(),
            greeting,
            now_ms(),
        )?
        .into())
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
    let settings = super::load_settings(&app);
    let cancel = state.start_reply(session_id)?;
    // A warm-up of this session still prefilling: wait for it, so this reply reuses its work
    // instead of competing with it for the same cores.
    let warming = state.warm_lock(session_id);
    let _ = tokio::time::timeout(Duration::from_secs(30), warming.lock()).await;
    let result = conversation::send(
        &troupe.store,
        engine.as_ref(),
        session_id,
        &text,
        &sampling(&settings),
        &cancel,
        &now_ms,
        &mut |e| {
            // A closed channel (the window reloaded) must not stop the reply being saved.
            let _ = on_event.send(e.into());
        },
    )
    .await;
    state.end_reply(session_id);
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
    let sampling = sampling(&super::load_settings(&app));
    tauri::async_runtime::spawn(async move {
        let _warming = warming; // Held until the prefill is done; `send_message` waits on it.
        if let Err(e) = conversation::warm(&store, engine.as_ref(), session_id, &sampling).await {
            tracing::debug!("warming session {session_id} failed: {e}");
        }
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
    let new = settings.to_settings();
    new.validate()?;
    let old = super::load_settings(&app);
    super::save_settings(&app, &new).map_err(|e| ApiError::new(ErrorCode::Internal, e))?;
    let before = troupe.model_file(&old, state.model_override.as_deref());
    let after = troupe.model_file(&new, state.model_override.as_deref());
    if before != after {
        super::load_model(troupe.engine.clone(), after.clone());
    }
    Ok(SettingsJson::from_settings(&new, &after))
}

/// Retries loading the model (after the user fixed the file).
#[tauri::command]
pub fn reload_model(app: AppHandle, state: State<'_, AppState>) -> ApiResult<()> {
    let troupe = state.troupe()?;
    let settings = super::load_settings(&app);
    super::load_model(
        troupe.engine.clone(),
        troupe.model_file(&settings, state.model_override.as_deref()),
    );
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
