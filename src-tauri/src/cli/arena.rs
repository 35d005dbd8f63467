//! `troupe arena`: the next reply written twice, by the model in use (or `--with`) and `--vs`,
//! printed as A and B in an order drawn at random; `troupe arena pick` records the person's
//! choice and says who wrote which; `troupe arena report` adds the picks up per pair of
//! contenders, by category and scenario, as the paper's Table 3, and the ratings per model as
//! its Table 2. The rules are `app::arena`'s.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::chat::{find_session, Target};
use crate::app::vocabulary::TurnEvent;
use crate::app::{wilson, Contender, PairResult, Tally, Troupe};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ArenaArgs {
    #[command(subcommand)]
    pub action: Option<ArenaAction>,
    /// The conversation to continue (or --character, as `troupe chat` takes it).
    #[arg(long)]
    pub session: Option<i64>,
    #[arg(long, conflicts_with = "session")]
    pub character: Option<String>,
    /// Start a new conversation (with --character).
    #[arg(long)]
    pub new: bool,
    #[arg(long, default_value = "chit_chat")]
    pub scenario: String,
    /// The second contender: a .gguf file, remote, preset:NAME or prompt:naive.
    #[arg(long, value_name = "CONTENDER")]
    pub vs: Option<String>,
    /// The first contender (default: the model in use as the conversation samples it).
    #[arg(long, value_name = "CONTENDER", default_value = "current")]
    pub with: String,
    /// Your message.
    pub message: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ArenaAction {
    /// Pick the better reply of the conversation's latest compared turn: A, B, tie or bad.
    Pick {
        #[arg(long)]
        session: i64,
        choice: String,
    },
    /// Wins, ties and losses per pair of contenders, by category and scenario.
    Report {
        #[arg(long)]
        json: bool,
    },
}

pub async fn arena(troupe: &Troupe, model: Option<PathBuf>, a: ArenaArgs) -> anyhow::Result<()> {
    match a.action {
        Some(ArenaAction::Pick { session, choice }) => {
            let turn = troupe.arena_pick(session, &choice)?;
            println!(
                "picked {}: A was {}, B was {}",
                choice.to_ascii_uppercase(),
                turn.a,
                turn.b
            );
            Ok(())
        }
        Some(ArenaAction::Report { json }) => report(troupe, json),
        None => {
            let (Some(vs), Some(message)) = (a.vs, a.message) else {
                anyhow::bail!(
                    "give --vs CONTENDER and your message (or: arena pick, arena report)"
                );
            };
            let to = Target {
                character: a.character,
                session: a.session,
                new: a.new,
                scenario: a.scenario,
                persona: None,
            };
            turn(troupe, model, &to, &a.with, &vs, &message).await
        }
    }
}

async fn turn(
    troupe: &Troupe,
    model: Option<PathBuf>,
    to: &Target,
    with: &str,
    vs: &str,
    message: &str,
) -> anyhow::Result<()> {
    let (x, y) = (Contender::parse(with)?, Contender::parse(vs)?);
    let session = find_session(troupe, to)?;
    let character = troupe.character(&session.character_id)?;
    eprintln!(
        "[session {} · {} · {} · arena]",
        session.id,
        character.name,
        session.scenario.label()
    );
    let settings = troupe.settings();
    troupe.start_engine(&settings, model.as_deref()).await?;
    let mut out = std::io::stdout();
    let mut side = "";
    let compared = troupe
        .arena_turn(&settings, session.id, message, &x, &y, &mut |s, e| {
            if s != side {
                let _ = write!(out, "{}{s}: ", if side.is_empty() { "" } else { "\n\n" });
                side = if s == "A" { "A" } else { "B" };
            }
            if let TurnEvent::Text(t) = e {
                let _ = out.write_all(t.as_bytes());
                let _ = out.flush();
            }
        })
        .await?;
    println!();
    if compared.parked {
        eprintln!(
            "[the two models do not fit in memory together: the model in use was set aside while \
             the other wrote, and loaded again]"
        );
    }
    for (name, failed) in [("A", &compared.a_failed), ("B", &compared.b_failed)] {
        if let Some(why) = failed {
            eprintln!("[{name} stopped early: {why}; what it wrote is kept]");
        }
    }
    eprintln!(
        "[pick: troupe arena pick --session {} A|B|tie|bad]",
        session.id
    );
    Ok(())
}

/// The paper's Table 3 from the picks (pairwise), then its Table 2 from the ratings
/// (pointwise: every Character's ratings per model).
fn report(troupe: &Troupe, json: bool) -> anyhow::Result<()> {
    let pairs = troupe.arena_report()?;
    let pointwise = troupe.rating_averages(None)?;
    if json {
        let both = serde_json::json!({ "pairwise": pairs, "pointwise": pointwise });
        println!("{}", serde_json::to_string_pretty(&both)?);
        return Ok(());
    }
    if pairs.is_empty() {
        println!("no picks yet: compare replies with `troupe arena --vs …` and pick one\n");
    }
    for p in &pairs {
        print_pair(p);
    }
    println!("your ratings per model (1-5):");
    super::ratings::print_averages(&pointwise)
}

/// One pair as the paper's Table 3: win/tie/lose of the first contender, overall and per
/// category × scenario, with the 95% interval of the win and loss shares.
fn print_pair(p: &PairResult) {
    println!("{} vs {}", p.first, p.second);
    println!("  overall\t{}", cell(&p.overall));
    for (k, t) in &p.cells {
        println!("  {k}\t{}", cell(t));
    }
    println!();
}

fn cell(t: &Tally) -> String {
    let n = t.n().max(1) as f64;
    let pct = |k: usize| 100.0 * k as f64 / n;
    let (wl, wh) = wilson(t.win, t.n());
    let (ll, lh) = wilson(t.lose, t.n());
    format!(
        "n={}\twin {:.0}% [{:.0}, {:.0}]\ttie {:.0}%{}\tlose {:.0}% [{:.0}, {:.0}]",
        t.n(),
        pct(t.win),
        100.0 * wl,
        100.0 * wh,
        pct(t.tie),
        if t.both_bad > 0 {
            format!(" ({} both bad)", t.both_bad)
        } else {
            String::new()
        },
        pct(t.lose),
        100.0 * ll,
        100.0 * lh
    )
}
