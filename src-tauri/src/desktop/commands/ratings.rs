//! Ratings (`ui/src/api/ratings.ts`): rate a Session, thumb a reply, a Character's averages.
//! The rules are `app::ratings`'.

use tauri::{AppHandle, State};

use crate::app::{scores, DataFilter};
use crate::desktop::json::{ApiResult, Rating, RatingAverages, Scores, Thumb, TrainingData};
use crate::desktop::AppState;

/// Rates a Session on the seven metrics (again: replaces the rating).
#[tauri::command]
pub fn rate_session(
    state: State<'_, AppState>,
    session_id: i64,
    scores: Scores,
    comment: String,
) -> ApiResult<Rating> {
    let troupe = state.troupe()?;
    let valid = self::scores(scores.values())?;
    Ok(troupe.rate_session(session_id, valid, &comment)?.into())
}

#[tauri::command]
pub fn session_rating(state: State<'_, AppState>, session_id: i64) -> ApiResult<Option<Rating>> {
    Ok(state.troupe()?.session_rating(session_id)?.map(Into::into))
}

/// A thumb up (1), down (-1) or none (0) on a reply.
#[tauri::command]
pub fn set_thumb(state: State<'_, AppState>, message_id: i64, value: i64) -> ApiResult<()> {
    Ok(state.troupe()?.set_thumb(message_id, value)?)
}

#[tauri::command]
pub fn session_thumbs(state: State<'_, AppState>, session_id: i64) -> ApiResult<Vec<Thumb>> {
    Ok(state
        .troupe()?
        .thumbs(session_id)?
        .into_iter()
        .map(|(message_id, value)| Thumb {
            message_id,
            value: value.into(),
        })
        .collect())
}

/// Writes what the person judged (all Characters, or one) as SFT and DPO JSONL files in the
/// Downloads folder (docs/DATA.md).
#[tauri::command]
pub async fn export_training_data(
    app: AppHandle,
    state: State<'_, AppState>,
    character_id: Option<String>,
) -> ApiResult<TrainingData> {
    let day = &crate::app::utc_time(crate::app::now_ms())[..10];
    let sft = crate::desktop::downloads_file(&app, &format!("troupe-sft-{day}"), "jsonl")?;
    let dpo = crate::desktop::downloads_file(&app, &format!("troupe-dpo-{day}"), "jsonl")?;
    let filter = DataFilter {
        character: character_id,
        ..Default::default()
    };
    let report = state
        .troupe()?
        .export_training_data(&filter, Some(&sft), Some(&dpo))?;
    Ok(TrainingData {
        sft_path: sft.display().to_string(),
        sft_rows: report.sft_rows,
        dpo_path: dpo.display().to_string(),
        dpo_rows: report.dpo_rows,
        without_prompt: report.without_prompt,
    })
}

#[tauri::command]
pub fn rating_averages(
    state: State<'_, AppState>,
    character_id: Option<String>,
) -> ApiResult<Vec<RatingAverages>> {
    Ok(state
        .troupe()?
        .rating_averages(character_id.as_deref())?
        .into_iter()
        .map(Into::into)
        .collect())
}
