//! Ratings (`ui/src/api/ratings.ts`): rate a Session, thumb a reply, a Character's averages.
//! The rules are `app::ratings`'.

use tauri::State;

use crate::app::scores;
use crate::desktop::json::{ApiResult, Rating, RatingAverages, Scores, Thumb};
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

#[tauri::command]
pub fn rating_averages(
    state: State<'_, AppState>,
    character_id: String,
) -> ApiResult<Vec<RatingAverages>> {
    Ok(state
        .troupe()?
        .rating_averages(&character_id)?
        .into_iter()
        .map(Into::into)
        .collect())
}
