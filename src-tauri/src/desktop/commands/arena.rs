//! The arena (`ui/src/api/arena.ts`): the contenders on offer, a compared turn streamed side
//! by side, the pick, and the results. The rules are `app::arena`'s.

use tauri::ipc::Channel;
use tauri::{AppHandle, State};

use crate::app::Contender;
use crate::desktop::json::{
    ApiError, ApiResult, ArenaContender, ArenaEvent, ArenaPair, ArenaPicked, ArenaTurnJson,
    ErrorCode,
};
use crate::desktop::{load_settings, AppState};

/// What the model in use can be compared with: the other model files, the server when one is
/// set, the sampling presets and the paper's naive prompting.
#[tauri::command]
pub async fn arena_contenders(
    app: AppHandle,
    state: State<'_, AppState>,
) -> ApiResult<Vec<ArenaContender>> {
    let troupe = state.troupe()?;
    let settings = load_settings(&app);
    let in_use = troupe.model_file(&settings, state.model_override.as_deref());
    let mut out: Vec<ArenaContender> = troupe
        .models(
            &settings,
            state.model_override.as_deref(),
            &troupe.machine_memory(),
        )
        .into_iter()
        .filter(|m| m.path != in_use && m.header.is_ok())
        .map(|m| ArenaContender {
            spec: m.path.display().to_string(),
            label: m
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
        .collect();
    if !settings.remote.base_url.trim().is_empty() {
        out.push(ArenaContender {
            spec: "remote".into(),
            label: format!("{} ({})", settings.remote.base_url, settings.remote.model),
        });
    }
    for (name, _) in crate::app::vocabulary::PRESETS.iter() {
        out.push(ArenaContender {
            spec: format!("preset:{name}"),
            label: format!("preset: {name}"),
        });
    }
    out.push(ArenaContender {
        spec: "prompt:naive".into(),
        label: "naive prompt (the paper's baseline)".into(),
    });
    Ok(out)
}

/// Writes the next reply twice, the model in use against `vs`, streaming both over
/// `on_event`; resolves with the two versions, A first.
#[tauri::command]
pub async fn arena_turn(
    app: AppHandle,
    state: State<'_, AppState>,
    session_id: i64,
    text: String,
    vs: String,
    on_event: Channel<ArenaEvent>,
) -> ApiResult<ArenaTurnJson> {
    let troupe = state.troupe()?;
    let vs = Contender::parse(&vs).map_err(arena_error)?;
    let compared = troupe
        .arena_turn(
            &load_settings(&app),
            session_id,
            &text,
            &Contender::Current,
            &vs,
            &mut |side, e| {
                for event in ArenaEvent::from_turn(side, e) {
                    let _ = on_event.send(event);
                }
            },
        )
        .await
        .map_err(arena_error)?;
    Ok(compared.into())
}

/// The person's pick on the Session's latest compared turn: "a", "b", "tie" or "bad".
#[tauri::command]
pub fn arena_pick(
    state: State<'_, AppState>,
    session_id: i64,
    choice: String,
) -> ApiResult<ArenaPicked> {
    let turn = state
        .troupe()?
        .arena_pick(session_id, &choice)
        .map_err(arena_error)?;
    Ok(ArenaPicked {
        choice: turn.choice.unwrap_or_default(),
        a: turn.a,
        b: turn.b,
    })
}

#[tauri::command]
pub fn arena_report(state: State<'_, AppState>) -> ApiResult<Vec<ArenaPair>> {
    Ok(state
        .troupe()?
        .arena_report()?
        .into_iter()
        .map(Into::into)
        .collect())
}

fn arena_error(e: crate::app::ArenaError) -> ApiError {
    use crate::app::ArenaError as E;
    match e {
        E::Engine(e) => e.into(),
        E::Turn(e) => e.into(),
        E::Store(e) => e.into(),
        E::StillWriting => ApiError::new(ErrorCode::Busy, e.to_string()),
        e => ApiError::new(ErrorCode::InvalidSetting, e.to_string()),
    }
}
