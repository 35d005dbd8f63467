//! The Evaluate tab: run the quick suites on a Character with the model in use (in the
//! background, with progress and Stop), and the runs kept for it. One run at a time.

use tauri::ipc::Channel;
use tauri::{AppHandle, State};

use crate::app::vocabulary::{EvalOptions, Suite};
use crate::app::{Cancel, EvalRequest};
use crate::desktop::json::{ApiError, ApiResult, ErrorCode, EvalEvent, EvalRun};
use crate::desktop::{load_settings, AppState};

/// Runs the quick suites (memory, consistency, repetition, speed) on `character_id` with the
/// engine in use and Troupe's prompting; streams progress; keeps and returns the run.
#[tauri::command]
pub async fn run_eval(
    app: AppHandle,
    state: State<'_, AppState>,
    character_id: String,
    on_event: Channel<EvalEvent>,
) -> ApiResult<EvalRun> {
    let troupe = state.troupe()?;
    let Ok(_one_at_a_time) = state.evaluating.clone().try_lock_owned() else {
        return Err(ApiError::new(
            ErrorCode::Busy,
            "an evaluation is already running",
        ));
    };
    let cancel = Cancel::new();
    *state.cancel_eval.lock().unwrap_or_else(|p| p.into_inner()) = Some(cancel.clone());
    let req = EvalRequest {
        characters: vec![character_id.clone()],
        setup: "troupe".into(),
        options: EvalOptions {
            suites: Suite::QUICK.to_vec(),
            // A shorter chat than the CLI's: the window's run should take a minute or two.
            turns: 10,
            ..Default::default()
        },
        ..Default::default()
    };
    let evaluation = troupe
        .evaluate(&load_settings(&app), &req, &cancel, &mut |p| {
            let _ = on_event.send(EvalEvent::Progress {
                done: p.done,
                total: p.total,
                item: p.item,
            });
        })
        .await
        .map_err(|e| ApiError::new(ErrorCode::ModelUnavailable, e.to_string()))?;
    let kept = troupe.eval_runs(Some(&character_id), 1)?.into_iter().next();
    let (id, at) = kept.map(|k| (k.id, k.created_at)).unwrap_or((0, 0));
    Ok(EvalRun::new(id, at, evaluation.report))
}

/// Stops the running evaluation; what was measured is kept.
#[tauri::command]
pub fn cancel_eval(state: State<'_, AppState>) {
    if let Some(c) = state
        .cancel_eval
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        c.cancel();
    }
}

/// The runs kept for a Character, newest first.
#[tauri::command]
pub async fn eval_runs(
    state: State<'_, AppState>,
    character_id: String,
) -> ApiResult<Vec<EvalRun>> {
    Ok(state
        .troupe()?
        .eval_runs(Some(&character_id), 50)?
        .into_iter()
        .map(|k| EvalRun::new(k.id, k.created_at, k.report))
        .collect())
}

#[tauri::command]
pub async fn delete_eval_run(state: State<'_, AppState>, id: i64) -> ApiResult<()> {
    Ok(state.troupe()?.delete_eval_run(id)?)
}
