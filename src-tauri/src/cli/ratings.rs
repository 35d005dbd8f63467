//! The person as the judge from the command line: `troupe rate` (a Session's seven scores, or
//! what it was given), `troupe thumb` (one reply), `troupe ratings` (a Character's averages
//! per model) and `troupe export-data` (what was judged, as training files). The rules are
//! `app::ratings`' and `app::training_data`'.

use std::io::Write;

use clap::Args;

use crate::app::vocabulary::Rating;
use crate::app::{scores, Troupe, METRICS};

/// `troupe rate`: all seven scores rate the Session; none prints its rating.
#[derive(Debug, Args)]
pub struct RateArgs {
    #[arg(long)]
    pub session: i64,
    /// Stable attributes and behaviours throughout (1–5).
    #[arg(long)]
    pub consistency: Option<i64>,
    /// Talks like a person, not a machine (1–5).
    #[arg(long)]
    pub human_likeness: Option<i64>,
    /// Makes you want to keep talking (1–5).
    #[arg(long)]
    pub engagement: Option<i64>,
    /// Fluent and coherent with what was said (1–5).
    #[arg(long)]
    pub quality: Option<i64>,
    /// Respects ethical norms (1–5).
    #[arg(long)]
    pub safety: Option<i64>,
    /// Free of made-up facts (1–5).
    #[arg(long)]
    pub correctness: Option<i64>,
    /// Overall (1–5).
    #[arg(long)]
    pub overall: Option<i64>,
    #[arg(long, default_value = "")]
    pub comment: String,
}

pub fn rate(troupe: &Troupe, a: RateArgs) -> anyhow::Result<()> {
    troupe.session(a.session)?;
    let given = [
        a.consistency,
        a.human_likeness,
        a.engagement,
        a.quality,
        a.safety,
        a.correctness,
        a.overall,
    ];
    if given.iter().all(Option::is_none) {
        return match troupe.session_rating(a.session)? {
            Some(r) => print_rating(&r),
            None => {
                println!("session {} is not rated yet", a.session);
                Ok(())
            }
        };
    }
    let missing: Vec<String> = given
        .iter()
        .zip(METRICS)
        .filter(|(v, _)| v.is_none())
        .map(|(_, m)| format!("--{}", m.replace('_', "-")))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "a rating needs all seven scores; missing {}",
            missing.join(", ")
        );
    }
    let values = given.map(|v| v.unwrap_or_default());
    let rating = troupe.rate_session(a.session, scores(values)?, &a.comment)?;
    print_rating(&rating)
}

fn print_rating(r: &Rating) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "session {}\tmodel {}", r.session_id, r.model)?;
    for (name, v) in METRICS.iter().zip(r.scores.as_array()) {
        writeln!(out, "{name}\t{v}")?;
    }
    if !r.comment.is_empty() {
        writeln!(out, "comment\t{}", r.comment)?;
    }
    Ok(())
}

/// `troupe thumb MESSAGE up|down|none`.
pub fn thumb(troupe: &Troupe, message: i64, value: &str) -> anyhow::Result<()> {
    let v = match value {
        "up" => 1,
        "down" => -1,
        "none" => 0,
        other => anyhow::bail!("'{other}': say up, down or none"),
    };
    troupe.set_thumb(message, v)?;
    Ok(())
}

/// `troupe ratings [--character ID]`: per model, rated Sessions, the seven means, thumbs.
pub fn averages(troupe: &Troupe, character: Option<&str>) -> anyhow::Result<()> {
    if let Some(c) = character {
        troupe.character(c)?;
    }
    print_averages(&troupe.rating_averages(character)?)
}

/// The averages as a table (the paper's Table 2): a header line, then a line per model.
pub fn print_averages(rows: &[crate::app::vocabulary::RatingAverages]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "model\tsessions\t{}\tthumbs up\tthumbs down",
        METRICS.join("\t")
    )?;
    for a in rows {
        let means: Vec<String> = a
            .means
            .iter()
            .map(|m| {
                if a.sessions == 0 {
                    "-".into()
                } else {
                    format!("{m:.2}")
                }
            })
            .collect();
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            a.model,
            a.sessions,
            means.join("\t"),
            a.thumbs_up,
            a.thumbs_down
        )?;
    }
    Ok(())
}

/// `troupe export-data`: what the person judged, as training files (docs/DATA.md).
#[derive(Debug, Args)]
pub struct ExportDataArgs {
    /// Write the SFT rows (every kept reply of rated conversations) here, as JSONL.
    #[arg(long, value_name = "FILE", required_unless_present = "dpo")]
    pub sft: Option<std::path::PathBuf>,
    /// Write the DPO rows (chosen and rejected versions of replies written again) here.
    #[arg(long, value_name = "FILE")]
    pub dpo: Option<std::path::PathBuf>,
    /// SFT: only conversations rated at least this overall (1–5).
    #[arg(long, value_name = "N")]
    pub min_rating: Option<u8>,
    #[arg(long, value_name = "ID")]
    pub character: Option<String>,
    /// Only replies written on or after this day (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DAY")]
    pub since: Option<String>,
}

pub fn export_data(troupe: &Troupe, a: ExportDataArgs) -> anyhow::Result<()> {
    if let Some(c) = &a.character {
        troupe.character(c)?;
    }
    let since = match &a.since {
        Some(day) => Some(
            crate::app::parse_day(day)
                .ok_or_else(|| anyhow::anyhow!("--since '{day}': write a day as YYYY-MM-DD"))?,
        ),
        None => None,
    };
    let filter = crate::app::DataFilter {
        min_rating: a.min_rating,
        character: a.character.clone(),
        since,
    };
    let report = troupe.export_training_data(&filter, a.sft.as_deref(), a.dpo.as_deref())?;
    let mut out = std::io::stdout().lock();
    if let Some(p) = &a.sft {
        writeln!(out, "{} SFT rows -> {}", report.sft_rows, p.display())?;
    }
    if let Some(p) = &a.dpo {
        writeln!(out, "{} DPO rows -> {}", report.dpo_rows, p.display())?;
    }
    if report.sft_rows + report.dpo_rows == 0 {
        writeln!(
            out,
            "nothing matched: rate a conversation (troupe rate) or write a reply again and go on \
             with the version you like; the files are empty"
        )?;
    }
    if report.without_prompt > 0 {
        writeln!(
            out,
            "{} replies left out: written before Troupe kept the messages the model saw",
            report.without_prompt
        )?;
    }
    Ok(())
}
