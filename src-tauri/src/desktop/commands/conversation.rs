//! The conversation area's commands (`ui/src/api/conversation.ts`): Sessions, Messages, the
//! streamed reply (over a per-call `Channel`), Stop, warm-ups, personas, memories, the prompt
//! inspector and search. Each converts the wire input, calls one `Troupe` operation and
//! converts the result; what runs when is `app`'s business (`app::chat`).

use tauri::ipc::Channel;
use tauri::{AppHandle, State};

use crate::app::vocabulary::{Message as Reply, ReplyStats, TurnError, TurnEvent};
use crate::app::Rewrite;
use crate::desktop::json::{
    ApiError, ApiResult, ErrorCode, Memory, Message, Persona, PromptRecord, ScenarioJson,
    SearchHit, Session, StreamEvent,
};
use crate::desktop::{load_settings, AppState};

#[tauri::command]
pub fn list_sessions(state: State<'_, AppState>, character_id: String) -> ApiResult<Vec<Session>> {
    Ok(state
        .troupe()?
        .sessions(&character_id)?
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

#[tauri::command]
pub fn list_messages(state: State<'_, AppState>, session_id: i64) -> ApiResult<Vec<Message>> {
    Ok(state
        .troupe()?
        .messages(session_id)?
        .into_iter()
        .map(Into::into)
        .collect())
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
        .recent_messages(session_id, limit)?
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
    let result = troupe
        .send(&load_settings(&app), session_id, &text, &mut |e| {
            // A closed channel (the window reloaded) must not stop the reply being saved.
            let _ = on_event.send(e.into());
        })
        .await;
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
    rewrite(app, state, reply_id, on_event, Rewrite::Regenerate).await
}

/// Continues the last reply where it stopped, streaming the new words over `on_event`.
#[tauri::command]
pub async fn continue_reply(
    app: AppHandle,
    state: State<'_, AppState>,
    reply_id: i64,
    on_event: Channel<StreamEvent>,
) -> ApiResult<Message> {
    rewrite(app, state, reply_id, on_event, Rewrite::Continue).await
}

async fn rewrite(
    app: AppHandle,
    state: State<'_, AppState>,
    reply_id: i64,
    on_event: Channel<StreamEvent>,
    how: Rewrite,
) -> ApiResult<Message> {
    let troupe = state.troupe()?;
    let mut send = |e: TurnEvent| {
        let _ = on_event.send(e.into());
    };
    let result = troupe
        .rewrite(&load_settings(&app), reply_id, how, &mut send)
        .await;
    finish_stream(&on_event, result)
}

/// Ends a streamed reply: `Finished` on the channel (with figures when it completed), and the
/// reply or the error as the command's result.
fn finish_stream(
    on_event: &Channel<StreamEvent>,
    result: Result<(Reply, ReplyStats), TurnError>,
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
        Err(TurnError::Failed { reply, reason }) => Err(stopped_early(on_event, reply, &reason)),
        Err(e) => Err(e.into()),
    }
}

/// A reply the engine failed in the middle of: `Finished` with what was kept, and the error.
pub(super) fn stopped_early(
    on_event: &Channel<StreamEvent>,
    reply: Reply,
    reason: &str,
) -> ApiError {
    let _ = on_event.send(StreamEvent::Finished {
        reply: reply.into(),
        stats: None,
    });
    ApiError::new(
        ErrorCode::ReplyFailed,
        format!("The reply stopped early: {reason}"),
    )
}

/// Shows another version (swipe) of a reply written more than once.
#[tauri::command]
pub fn select_swipe(
    state: State<'_, AppState>,
    message_id: i64,
    index: usize,
) -> ApiResult<Message> {
    Ok(state.troupe()?.select_swipe(message_id, index)?.into())
}

/// The Stop button: ends the reply being written in `session_id`, keeping what was said.
#[tauri::command]
pub fn stop_reply(state: State<'_, AppState>, session_id: i64) -> ApiResult<bool> {
    Ok(state.troupe()?.stop_reply(session_id))
}

/// Gets `session_id` ready for its next message in the background (`Troupe::warm_session`).
#[tauri::command]
pub fn warm_session(app: AppHandle, state: State<'_, AppState>, session_id: i64) -> ApiResult<()> {
    let work = state
        .troupe()?
        .warm_session(&load_settings(&app), session_id)?;
    if let Some(work) = work {
        tauri::async_runtime::spawn(work);
    }
    Ok(())
}

/// Prefills the Character's part of the prompt in the background, when the user opens it.
#[tauri::command]
pub fn warm_character(state: State<'_, AppState>, character_id: String) -> ApiResult<()> {
    if let Some(work) = state.troupe()?.warm_character(&character_id)? {
        tauri::async_runtime::spawn(work);
    }
    Ok(())
}

/// Edits a message's text; refused while a reply is being written into it.
#[tauri::command]
pub fn edit_message(state: State<'_, AppState>, message_id: i64, content: String) -> ApiResult<()> {
    Ok(state.troupe()?.edit_message(message_id, &content)?)
}

/// Deletes a message; refused while a reply is being written into it. Returns the id
/// `undo_delete` takes.
#[tauri::command]
pub fn delete_message(state: State<'_, AppState>, message_id: i64) -> ApiResult<i64> {
    Ok(state.troupe()?.delete_message(message_id)?)
}

/// Brings back a deleted Message, Memory or Persona.
#[tauri::command]
pub fn undo_delete(state: State<'_, AppState>, undo_id: i64) -> ApiResult<()> {
    state.troupe()?.undo_delete(undo_id)?;
    Ok(())
}

/// A new Session with the messages of this one up to `message_id`; returns it.
#[tauri::command]
pub fn branch_session(state: State<'_, AppState>, message_id: i64) -> ApiResult<Session> {
    Ok(state.troupe()?.branch_session(message_id)?.into())
}

#[tauri::command]
pub fn rename_session(state: State<'_, AppState>, session_id: i64, title: String) -> ApiResult<()> {
    Ok(state.troupe()?.rename_session(session_id, &title)?)
}

/// Moves a Session to the trash; `restore_session` undoes it.
#[tauri::command]
pub fn trash_session(state: State<'_, AppState>, session_id: i64) -> ApiResult<()> {
    Ok(state.troupe()?.trash_session(session_id)?)
}

#[tauri::command]
pub fn restore_session(state: State<'_, AppState>, session_id: i64) -> ApiResult<()> {
    Ok(state.troupe()?.restore_session(session_id)?)
}

/// What the reply `message_id` was given, section by section; null for replies from before
/// prompts were kept.
#[tauri::command]
pub fn prompt_record(
    state: State<'_, AppState>,
    message_id: i64,
) -> ApiResult<Option<PromptRecord>> {
    Ok(state.troupe()?.prompt_record(message_id)?.map(Into::into))
}

#[tauri::command]
pub fn search_messages(
    state: State<'_, AppState>,
    query: String,
    limit: Option<usize>,
) -> ApiResult<Vec<SearchHit>> {
    Ok(state
        .troupe()?
        .search_messages(&query, limit.unwrap_or(50))?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Questions to ask in an interview, drawn from the Character's profile.
#[tauri::command]
pub fn suggested_questions(
    state: State<'_, AppState>,
    character_id: String,
) -> ApiResult<Vec<String>> {
    Ok(state.troupe()?.suggested_questions(&character_id)?)
}

#[tauri::command]
pub fn list_personas(state: State<'_, AppState>) -> ApiResult<Vec<Persona>> {
    Ok(state
        .troupe()?
        .personas()?
        .into_iter()
        .map(Into::into)
        .collect())
}

#[tauri::command]
pub fn save_persona(state: State<'_, AppState>, persona: Persona) -> ApiResult<Persona> {
    Ok(state.troupe()?.save_persona(&persona.into())?.into())
}

#[tauri::command]
pub fn delete_persona(state: State<'_, AppState>, id: i64) -> ApiResult<i64> {
    Ok(state.troupe()?.delete_persona(id)?)
}

#[tauri::command]
pub fn list_memories(state: State<'_, AppState>, session_id: i64) -> ApiResult<Vec<Memory>> {
    Ok(state
        .troupe()?
        .memories(session_id)?
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
    Ok(state
        .troupe()?
        .pin_memory(session_id, &content, message_id, for_character)?
        .into())
}

#[tauri::command]
pub fn update_memory(state: State<'_, AppState>, id: i64, content: String) -> ApiResult<()> {
    Ok(state.troupe()?.update_memory(id, &content)?)
}

#[tauri::command]
pub fn delete_memory(state: State<'_, AppState>, id: i64) -> ApiResult<i64> {
    Ok(state.troupe()?.delete_memory(id)?)
}
