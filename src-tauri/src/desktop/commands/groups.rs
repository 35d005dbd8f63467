//! Group Sessions' commands (`ui/src/api/groups.ts`): starting a group, its members joining,
//! leaving and being muted, how the next speaker is chosen, "reply as" and "let them talk".
//! A message typed in a group goes through `send_message` like any other; the rounds here
//! stream every speaker's reply over the same `Channel` events (`said`, `speaking`, `text`,
//! then `finished` for each reply).

use tauri::ipc::Channel;
use tauri::{AppHandle, State};

use super::conversation::stopped_early;
use crate::app::vocabulary::{Spoken, TurnError};
use crate::desktop::json::{
    ApiResult, Group, Message, ScenarioJson, Session, StrategyJson, StreamEvent,
};
use crate::desktop::{load_settings, AppState};

/// Starts a group of `character_ids` (the first is the host) and returns its Session.
#[tauri::command]
pub fn start_group(
    state: State<'_, AppState>,
    character_ids: Vec<String>,
    scenario: ScenarioJson,
    strategy: StrategyJson,
    name: Option<String>,
) -> ApiResult<Session> {
    Ok(state
        .troupe()?
        .start_group(
            &character_ids,
            scenario.into(),
            strategy.into(),
            name.as_deref(),
        )?
        .into())
}

/// The group part of a Session; null for a one-Character Session.
#[tauri::command]
pub fn get_group(state: State<'_, AppState>, session_id: i64) -> ApiResult<Option<Group>> {
    let troupe = state.troupe()?;
    Ok(troupe
        .group_cast(session_id)?
        .map(|(group, cast)| Group::new(group, cast)))
}

/// A Character joins (`present`) or leaves the group; returns the group as it is now.
#[tauri::command]
pub fn set_member_present(
    state: State<'_, AppState>,
    session_id: i64,
    character_id: String,
    present: bool,
) -> ApiResult<Option<Group>> {
    state
        .troupe()?
        .set_member_present(session_id, &character_id, present)?;
    get_group(state, session_id)
}

/// Mutes or unmutes a member; returns the group as it is now.
#[tauri::command]
pub fn set_member_muted(
    state: State<'_, AppState>,
    session_id: i64,
    character_id: String,
    muted: bool,
) -> ApiResult<Option<Group>> {
    state
        .troupe()?
        .set_member_muted(session_id, &character_id, muted)?;
    get_group(state, session_id)
}

/// Changes how the next speaker is chosen; returns the group as it is now.
#[tauri::command]
pub fn set_group_strategy(
    state: State<'_, AppState>,
    session_id: i64,
    strategy: StrategyJson,
) -> ApiResult<Option<Group>> {
    state
        .troupe()?
        .set_group_strategy(session_id, strategy.into())?;
    get_group(state, session_id)
}

/// "Reply as …": the member `character_id` answers next (muted or not), streamed.
#[tauri::command]
pub async fn reply_as(
    app: AppHandle,
    state: State<'_, AppState>,
    session_id: i64,
    character_id: String,
    on_event: Channel<StreamEvent>,
) -> ApiResult<Vec<Message>> {
    let troupe = state.troupe()?;
    let result = troupe
        .group_send(
            &load_settings(&app),
            session_id,
            None,
            Some(&character_id),
            &mut |e| {
                let _ = on_event.send(e.into());
            },
        )
        .await;
    finish_round(&on_event, result)
}

/// "Let them talk": `rounds` replies with no message from the person, streamed.
#[tauri::command]
pub async fn let_them_talk(
    app: AppHandle,
    state: State<'_, AppState>,
    session_id: i64,
    rounds: usize,
    on_event: Channel<StreamEvent>,
) -> ApiResult<Vec<Message>> {
    let troupe = state.troupe()?;
    let result = troupe
        .let_them_talk(
            &load_settings(&app),
            session_id,
            rounds.clamp(1, 10),
            &mut |e| {
                let _ = on_event.send(e.into());
            },
        )
        .await;
    finish_round(&on_event, result)
}

/// Ends a round: `finished` for each reply, and the replies or the error as the result.
fn finish_round(
    on_event: &Channel<StreamEvent>,
    result: Result<Vec<Spoken>, TurnError>,
) -> ApiResult<Vec<Message>> {
    match result {
        Ok(spoken) => Ok(spoken
            .into_iter()
            .map(|s| {
                let reply: Message = s.reply.into();
                let _ = on_event.send(StreamEvent::Finished {
                    reply: reply.clone(),
                    stats: Some(s.stats.into()),
                });
                reply
            })
            .collect()),
        Err(TurnError::Failed { reply, reason }) => Err(stopped_early(on_event, reply, &reason)),
        Err(e) => Err(e.into()),
    }
}
