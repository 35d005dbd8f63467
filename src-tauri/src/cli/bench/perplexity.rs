//! `troupe bench --perplexity FILE`: how well the model predicts a text, as one number, to
//! compare quantisations of one model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::app::Troupe;
use crate::engine::{Engine, MistralEngine};
use crate::settings::Paths;

/// `troupe bench --perplexity FILE`: how well the model predicts a text, as one number.
pub async fn perplexity(
    troupe: &Troupe,
    model: Option<PathBuf>,
    text: &Path,
    json: bool,
) -> anyhow::Result<()> {
    const WINDOW: usize = 1024;
    let text = std::fs::read_to_string(text)
        .with_context(|| format!("cannot read {} as text", text.display()))?;
    let path = troupe.model_file(&troupe.settings(), model.as_deref());
    let engine = MistralEngine::load(&path, Some(&Paths::model_cache())).await?;
    let started = Instant::now();
    let score = engine.score_text(&text, WINDOW, None).await?;
    let seconds = started.elapsed().as_secs_f64();
    let info = engine.info();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "model": info.name,
                "quantization": info.quantization,
                "tokens": score.nll.len(),
                "windows": score.windows,
                "perplexity": score.perplexity(),
                "seconds": seconds,
            })
        );
    } else {
        println!(
            "{} ({}): perplexity {:.4} over {} tokens ({} windows of up to {WINDOW}, {:.1} s)",
            info.name,
            info.quantization,
            score.perplexity(),
            score.nll.len(),
            score.windows,
            seconds
        );
    }
    Ok(())
}
