//! The person as the judge from the command line: `troupe rate` (a Session's seven scores, or
//! what it was given), `troupe thumb` (one reply) and `troupe ratings` (a Character's averages
//! per model). The rules are `app::ratings`'.

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

/// `troupe ratings --character ID`: per model, rated Sessions, the seven means, thumbs.
pub fn averages(troupe: &Troupe, character: &str) -> anyhow::Result<()> {
    troupe.character(character)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "model\tsessions\t{}\tthumbs up\tthumbs down",
        METRICS.join("\t")
    )?;
    for a in troupe.rating_averages(character)? {
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
