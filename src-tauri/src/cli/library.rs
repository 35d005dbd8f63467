//! Reading and keeping the library from the command line: `troupe characters`, `sessions`,
//! `history`, `search`, `personas`, `memories` and `prompt`. Ids first, one item per line.

use std::io::Write;
use std::path::PathBuf;

use crate::app::vocabulary::{Persona, Role};
use crate::app::Troupe;

/// `troupe characters`: id, category and name.
pub fn characters(troupe: &Troupe) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for c in troupe.characters()? {
        writeln!(out, "{}\t{}\t{}", c.id, c.category.as_str(), c.name)?;
    }
    Ok(())
}

/// `troupe sessions --character ID`: id, scenario, message count and title.
pub fn sessions(troupe: &Troupe, character: &str) -> anyhow::Result<()> {
    troupe.character(character)?;
    let mut out = std::io::stdout().lock();
    for s in troupe.sessions(character)? {
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            s.id,
            s.scenario.as_str(),
            s.n_messages,
            s.title
        )?;
    }
    Ok(())
}

/// `troupe history --session ID`: who said what; with `ids`, each line starts with the
/// message's id (for `troupe thumb`).
pub fn history(troupe: &Troupe, session: i64, ids: bool) -> anyhow::Result<()> {
    let s = troupe.session(session)?;
    let c = troupe.character(&s.character_id)?;
    // In a group each reply is its speaker's (one deleted for good shows under its id).
    let mut names = std::collections::HashMap::from([(c.id.clone(), c.name.clone())]);
    let mut out = std::io::stdout().lock();
    for m in troupe.messages(session)? {
        let speaker = m.speaker.unwrap_or_else(|| c.id.clone());
        let who = if m.role == Role::User {
            "You"
        } else {
            names.entry(speaker.clone()).or_insert_with(|| {
                troupe
                    .character(&speaker)
                    .map(|c| c.name)
                    .unwrap_or(speaker)
            })
        };
        if ids {
            write!(out, "{}\t", m.id)?;
        }
        writeln!(out, "{who}: {}", m.content)?;
    }
    Ok(())
}

/// `troupe search QUERY`: session id, message id, character, and the text around the match.
pub fn search(troupe: &Troupe, query: &str, limit: usize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for h in troupe.search_messages(query, limit)? {
        let who = if h.role == Role::User {
            "you"
        } else {
            h.character_name.as_str()
        };
        writeln!(
            out,
            "{}\t{}\t{}\t{}: {}",
            h.session_id,
            h.message_id,
            h.character_name,
            who,
            h.snippet.replace('\n', " ")
        )?;
    }
    Ok(())
}

/// `troupe personas [--add NAME]`: list them, or add one.
pub fn personas(
    troupe: &Troupe,
    add: Option<String>,
    description: Option<String>,
    default: bool,
) -> anyhow::Result<()> {
    if let Some(name) = add {
        let p = troupe.save_persona(&Persona {
            id: 0,
            name,
            description: description.unwrap_or_default(),
            is_default: default,
        })?;
        println!("{}\t{}", p.id, p.name);
        return Ok(());
    }
    for p in troupe.personas()? {
        println!(
            "{}\t{}{}\t{}",
            p.id,
            p.name,
            if p.is_default { " (default)" } else { "" },
            p.description
        );
    }
    Ok(())
}

/// `troupe memories --session ID [--pin TEXT]`: a Session's memories, after pinning one.
pub fn memories(troupe: &Troupe, session: i64, pin: Option<String>) -> anyhow::Result<()> {
    troupe.session(session)?;
    if let Some(text) = pin {
        troupe.pin_memory(session, &text, None, false)?;
    }
    for m in troupe.memories(session)? {
        println!("{}\t{}\t{}", m.id, m.kind.as_str(), m.content);
    }
    Ok(())
}

/// `troupe prompt --session ID [--message TEXT]`: the prompt the next reply would get,
/// section by section.
pub async fn prompt(
    troupe: &Troupe,
    model: Option<PathBuf>,
    session: i64,
    message: Option<&str>,
    speaker: Option<&str>,
) -> anyhow::Result<()> {
    let settings = troupe.settings();
    troupe.start_engine(&settings, model.as_deref()).await?;
    let r = match speaker {
        Some(s) => troupe.group_prompt(&settings, session, s, message).await?,
        None => troupe.next_prompt(&settings, session, message).await?,
    };
    let mut out = std::io::stdout().lock();
    for s in &r.sections {
        writeln!(out, "=== {} · {} tokens", s.name, s.tokens)?;
        writeln!(out, "{}\n", s.text)?;
    }
    writeln!(
        out,
        "=== {} of {} tokens · {} older messages left out{}",
        r.tokens,
        r.budget,
        r.dropped_messages,
        if r.examples_dropped {
            " · example dialogue left out"
        } else {
            ""
        }
    )?;
    for f in &r.lore {
        writeln!(out, "lore: {} ({})", f.name, f.reason)?;
    }
    for name in &r.lore_left_out {
        writeln!(out, "lore left out (over budget): {name}")?;
    }
    Ok(())
}
