//! `troupe chat`: one message and its reply, streamed to stdout, in the Character's most recent
//! Session (or a new one, or the Session named); Ctrl+C stops the reply and keeps what was
//! said, like the window's Stop button. Afterwards, as the window does, the rolling summary
//! catches up with what the history window has moved past.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::app::vocabulary::{EngineStatus, Scenario, Session, TurnError, TurnEvent};
use crate::app::{Cancel, Troupe};

/// Which Session a message goes to, as the command line says it.
pub struct Target {
    pub character: Option<String>,
    pub session: Option<i64>,
    /// Start a new Session even if one exists.
    pub new: bool,
    /// The Scenario of a new Session.
    pub scenario: String,
    /// Who the user is: a persona's name or id.
    pub persona: Option<String>,
}

pub async fn chat(
    troupe: &Troupe,
    model: Option<PathBuf>,
    to: Target,
    message: &str,
    speaker: Option<&str>,
) -> anyhow::Result<()> {
    if message.trim().is_empty() {
        bail!("the message is empty: nothing sent");
    }
    let session = find_session(troupe, &to)?;
    let character = troupe.character(&session.character_id)?;
    eprintln!(
        "[session {} · {} · {}]",
        session.id,
        character.name,
        session.scenario.label()
    );
    let settings = troupe.settings();
    troupe.start_engine(&settings, model.as_deref()).await?;
    if troupe.group(session.id)?.is_some() {
        return super::groups::chat(troupe, &settings, session.id, message, speaker).await;
    }
    if speaker.is_some() {
        bail!(
            "--as picks a speaker in a group; session {} has one character",
            session.id
        );
    }

    // Ctrl+C stops the reply (and a summary after it), keeping what was said.
    let cancel = Cancel::new();
    let (t, c) = (troupe.clone(), cancel.clone());
    let session_id = session.id;
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            t.stop_reply(session_id);
            c.cancel();
        }
    });
    let mut stdout = std::io::stdout();
    let result = troupe
        .send(&settings, session.id, message, &mut |e| match e {
            TurnEvent::Started { dropped, .. } if dropped > 0 => {
                eprintln!("[{dropped} older messages did not fit the context and were left out]")
            }
            TurnEvent::Started { .. }
            | TurnEvent::Rewriting { .. }
            | TurnEvent::Said { .. }
            | TurnEvent::Speaking { .. } => {}
            TurnEvent::Text(t) => {
                let _ = stdout.write_all(t.as_bytes());
                let _ = stdout.flush();
            }
        })
        .await;
    println!();
    let stats = match result {
        Ok((_, stats)) => stats,
        Err(TurnError::Failed { reason, .. }) => {
            bail!("the reply stopped early (what was said is saved): {reason}")
        }
        Err(e) => return Err(e.into()),
    };
    // Where it ran ("CPU (AVX2)"), as the window's status bar says it.
    let device = match troupe.engine_status() {
        EngineStatus::Ready(info) => info.device,
        _ => String::new(),
    };
    eprintln!(
        "[{} tokens · first token {} ms · {:.1} tokens/s · {device}]",
        stats.reply_tokens, stats.first_token_ms, stats.tokens_per_second,
    );
    let written = troupe.summarise(&settings, session.id, &cancel).await?;
    if !written.is_empty() {
        eprintln!(
            "[older messages summarised into {} summary chunk(s)]",
            written.len()
        );
    }
    Ok(())
}

/// The Session `to` names: the one given, else the Character's most recent (unless `new`),
/// else a new one; with the persona set when one is named.
pub(super) fn find_session(troupe: &Troupe, to: &Target) -> anyhow::Result<Session> {
    let scenario = Scenario::parse(&to.scenario).with_context(|| {
        format!(
            "unknown scenario '{}': use chit_chat, interview or companionship",
            to.scenario
        )
    })?;
    let persona_id = match &to.persona {
        Some(p) => Some(
            troupe
                .personas()?
                .into_iter()
                .find(|x| x.id.to_string() == *p || x.name.eq_ignore_ascii_case(p))
                .with_context(|| {
                    format!("no persona '{p}': see `troupe personas`, or add one with --add")
                })?
                .id,
        ),
        None => None,
    };
    let existing = match (to.session, &to.character) {
        (Some(id), _) => Some(troupe.session(id)?),
        (None, Some(cid)) => {
            troupe.character(cid)?;
            troupe.sessions(cid)?.into_iter().next().filter(|_| !to.new)
        }
        (None, None) => bail!("give --character or --session"),
    };
    match (existing, &to.character) {
        (Some(s), _) => {
            if let Some(p) = persona_id {
                troupe.set_session_persona(s.id, p)?;
            }
            Ok(s)
        }
        (None, Some(cid)) => Ok(troupe.start_session(cid, scenario, persona_id)?),
        (None, None) => unreachable!("checked above"),
    }
}
