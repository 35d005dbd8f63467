//! `troupe group …` and a group's side of `troupe chat`: start a group of Characters, let
//! members join, leave and be muted, send a message (the group answers by its strategy, or
//! `--as` picks the speaker; each reply printed under its speaker's name), `talk` to let the
//! members answer each other, `show` who is in it.

use std::io::Write;

use anyhow::{bail, Context};

use crate::app::vocabulary::{Scenario, Settings, Strategy, TurnError, TurnEvent};
use crate::app::{CastMember, Troupe};

#[derive(Debug, clap::Subcommand)]
pub enum GroupAction {
    /// Start a group Session: --characters a,b,c (two or more; the first is the host).
    New {
        #[arg(long, value_delimiter = ',', required = true)]
        characters: Vec<String>,
        /// chit_chat (friends), interview (a panel) or companionship.
        #[arg(long, default_value = "chit_chat")]
        scenario: String,
        /// Who speaks next: natural, list, pooled or manual.
        #[arg(long, default_value = "natural")]
        strategy: String,
        /// The group's name (default: its members').
        #[arg(long)]
        name: Option<String>,
    },
    /// Who is in a group: each member, whether present and muted, and the strategy.
    Show {
        #[arg(long)]
        session: i64,
    },
    /// A Character joins the group (from now on).
    Join {
        #[arg(long)]
        session: i64,
        character: String,
    },
    /// A member leaves the room; what is said meanwhile is not in their prompt.
    Leave {
        #[arg(long)]
        session: i64,
        character: String,
    },
    /// A muted member is never chosen to speak (asked with --as, they still answer).
    Mute {
        #[arg(long)]
        session: i64,
        character: String,
    },
    Unmute {
        #[arg(long)]
        session: i64,
        character: String,
    },
    /// Let them talk: members answer each other for a few rounds.
    Talk {
        #[arg(long)]
        session: i64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

pub async fn group(
    troupe: &Troupe,
    model: Option<std::path::PathBuf>,
    action: GroupAction,
) -> anyhow::Result<()> {
    match action {
        GroupAction::New {
            characters,
            scenario,
            strategy,
            name,
        } => {
            let scenario = Scenario::parse(&scenario).with_context(|| {
                format!("unknown scenario '{scenario}': use chit_chat, interview or companionship")
            })?;
            let strategy = Strategy::parse(&strategy).with_context(|| {
                format!("unknown strategy '{strategy}': use natural, list, pooled or manual")
            })?;
            let s = troupe.start_group(&characters, scenario, strategy, name.as_deref())?;
            println!("{}\t{}", s.id, s.title);
            Ok(())
        }
        GroupAction::Show { session } => show(troupe, session),
        GroupAction::Join { session, character } => {
            Ok(troupe.set_member_present(session, &character, true)?)
        }
        GroupAction::Leave { session, character } => {
            Ok(troupe.set_member_present(session, &character, false)?)
        }
        GroupAction::Mute { session, character } => {
            Ok(troupe.set_member_muted(session, &character, true)?)
        }
        GroupAction::Unmute { session, character } => {
            Ok(troupe.set_member_muted(session, &character, false)?)
        }
        GroupAction::Talk { session, rounds } => {
            let settings = troupe.settings();
            troupe.start_engine(&settings, model.as_deref()).await?;
            let mut out = Printer::new(troupe);
            let r = troupe
                .let_them_talk(&settings, session, rounds, &mut |e| out.event(e))
                .await;
            out.end();
            said(r.map(|_| ()))
        }
    }
}

/// A message to a group: answered by its strategy, or by `asked`.
pub async fn chat(
    troupe: &Troupe,
    settings: &Settings,
    session: i64,
    message: &str,
    asked: Option<&str>,
) -> anyhow::Result<()> {
    let mut out = Printer::new(troupe);
    let r = troupe
        .group_send(settings, session, Some(message), asked, &mut |e| {
            out.event(e)
        })
        .await;
    out.end();
    said(r.map(|_| ()))
}

fn said(r: Result<(), TurnError>) -> anyhow::Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(TurnError::NoSpeaker) => {
            eprintln!("[{}; your message is kept]", TurnError::NoSpeaker);
            Ok(())
        }
        Err(TurnError::Failed { reason, .. }) => {
            bail!("a reply stopped early (what was said is saved): {reason}")
        }
        Err(e) => Err(e.into()),
    }
}

fn show(troupe: &Troupe, session: i64) -> anyhow::Result<()> {
    let Some((group, cast)) = troupe.group_cast(session)? else {
        bail!("session {session} is a conversation with one character, not a group");
    };
    println!("{}\t{}", group.name, group.strategy.as_str());
    for CastMember { member, character } in cast {
        let state = match (member.present, member.muted) {
            (false, _) => "left",
            (true, true) => "muted",
            (true, false) => "present",
        };
        let who = match character {
            Some(c) if c.deleted_at.is_some() => format!("{} (in the trash)", c.name),
            Some(c) => c.name,
            None => format!("{} (deleted)", member.character_id),
        };
        println!("{}\t{state}\t{who}", member.character_id);
    }
    Ok(())
}

/// Prints each reply under its speaker's name as it streams.
struct Printer<'a> {
    troupe: &'a Troupe,
    open: bool,
}

impl<'a> Printer<'a> {
    fn new(troupe: &'a Troupe) -> Printer<'a> {
        Printer {
            troupe,
            open: false,
        }
    }

    fn event(&mut self, e: TurnEvent) {
        let mut stdout = std::io::stdout();
        match e {
            TurnEvent::Speaking { speaker, .. } => {
                let name = self
                    .troupe
                    .character(&speaker)
                    .map(|c| c.name)
                    .unwrap_or(speaker);
                let gap = if self.open { "\n\n" } else { "" };
                let _ = write!(stdout, "{gap}[{name}] ");
                self.open = true;
            }
            TurnEvent::Text(t) => {
                let _ = stdout.write_all(t.as_bytes());
            }
            _ => {}
        }
        let _ = stdout.flush();
    }

    fn end(&self) {
        if self.open {
            println!();
        }
    }
}
