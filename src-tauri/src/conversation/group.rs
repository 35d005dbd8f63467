//! Group Sessions: several Characters in one conversation, each staying themselves.
//!
//! - **Who speaks next** (`next_speakers`, pure): by the group's `Strategy` — *natural* (the
//!   members the last message names, in the order it names them; else one member drawn with
//!   odds in proportion to their talkativeness; never the last speaker twice in a row), *list*
//!   (everyone in order), *pooled* (one member who has not spoken since the person's last
//!   message), *manual* (nobody unless asked). Muted members, members out of the room and
//!   members in the trash are never chosen; asked for by name they still answer.
//! - **Each speaker's prompt** (`speaker_context`): the speaker's own Character leads, so its
//!   profile opens the system prompt byte for byte as in a one-Character Session (the prefix
//!   cache serves it); then a cast line (who else is here, one line each); the history holds
//!   only the messages the speaker was in the room for: the person's lines as the user's, their
//!   own as the assistant's, every other member's as the user's under that member's name. The summary
//!   goes in only for a member who was there from the start. Stop strings for every other
//!   name's label, so no member writes another's line.
//! - **The turn** (`send`): the person's message (if any) stored, then each chosen speaker's
//!   reply written in turn into its own row (`speaker_id`), streamed like any reply.

use std::collections::HashMap;

use crate::characters::Character;
use crate::engine::{Engine, Sampling};
use crate::store::{self, Group, Message, MessageStatus, Role, Store, Strategy};

use super::assemble::{assemble, budget};
use super::context::{context, Context};
use super::stream::{stream_reply, ReplyStats, TurnEvent};
use super::{prompt, Cancel, TurnError};

/// A member as the choice of the next speaker sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    /// 0–1: how readily they speak unasked.
    pub talkativeness: f64,
    /// In the room, not muted, not in the trash.
    pub can_speak: bool,
}

/// Who speaks next (see the module doc). `last_text` is the last message, `last_speaker` the
/// member who wrote it (`None`: the person), `spoke_since_person` the members who replied since
/// the person's last message; `roll` gives numbers in [0, 1).
pub fn next_speakers(
    strategy: Strategy,
    members: &[Candidate],
    last_text: &str,
    last_speaker: Option<&str>,
    spoke_since_person: &[String],
    roll: &mut dyn FnMut() -> f64,
) -> Vec<String> {
    let able: Vec<&Candidate> = members.iter().filter(|m| m.can_speak).collect();
    if able.is_empty() {
        return Vec::new();
    }
    let not_last: Vec<&Candidate> = able
        .iter()
        .copied()
        .filter(|m| Some(m.id.as_str()) != last_speaker)
        .collect();
    match strategy {
        Strategy::Manual => Vec::new(),
        Strategy::List => able.iter().map(|m| m.id.clone()).collect(),
        Strategy::Pooled => {
            let fresh: Vec<&Candidate> = not_last
                .iter()
                .copied()
                .filter(|m| !spoke_since_person.contains(&m.id))
                .collect();
            let pool = if fresh.is_empty() { &not_last } else { &fresh };
            let pool = if pool.is_empty() { &able } else { pool };
            vec![pool[pick(pool.len(), roll)].id.clone()]
        }
        Strategy::Natural => {
            let named = mentioned(members, last_text);
            let named: Vec<String> = named
                .into_iter()
                .filter(|id| not_last.iter().any(|m| &m.id == id))
                .collect();
            if !named.is_empty() {
                return named;
            }
            let pool = if not_last.is_empty() {
                &able
            } else {
                &not_last
            };
            vec![by_talkativeness(pool, roll)]
        }
    }
}

fn pick(n: usize, roll: &mut dyn FnMut() -> f64) -> usize {
    ((roll() * n as f64) as usize).min(n - 1)
}

/// One member drawn with odds in proportion to talkativeness (all equal when nobody has any).
fn by_talkativeness(pool: &[&Candidate], roll: &mut dyn FnMut() -> f64) -> String {
    let total: f64 = pool.iter().map(|m| m.talkativeness.max(0.0)).sum();
    if total <= 0.0 {
        return pool[pick(pool.len(), roll)].id.clone();
    }
    let mut at = roll() * total;
    for m in pool {
        at -= m.talkativeness.max(0.0);
        if at < 0.0 {
            return m.id.clone();
        }
    }
    pool[pool.len() - 1].id.clone()
}

/// The members `text` names, in the order it names them: by full name, or by a first or last
/// name no other member shares (a name two members share names neither).
pub fn mentioned(members: &[Candidate], text: &str) -> Vec<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_end_matches("'s").to_lowercase())
        .collect();
    let parts = |m: &Candidate| -> Vec<String> {
        m.name
            .split_whitespace()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| w.len() >= 2)
            .collect()
    };
    let mut count: HashMap<String, usize> = HashMap::new();
    for m in members {
        for p in parts(m) {
            *count.entry(p).or_default() += 1;
        }
    }
    let mut found: Vec<(usize, String)> = Vec::new();
    for m in members {
        let unique: Vec<String> = parts(m).into_iter().filter(|p| count[p] == 1).collect();
        if let Some(at) = words.iter().position(|w| unique.contains(w)) {
            found.push((at, m.id.clone()));
        } else if let Some(at) = full_name_at(&words, &parts(m)) {
            found.push((at, m.id.clone()));
        }
    }
    found.sort();
    found.into_iter().map(|(_, id)| id).collect()
}

fn full_name_at(words: &[String], name: &[String]) -> Option<usize> {
    if name.len() < 2 {
        return None;
    }
    words.windows(name.len()).position(|w| w == name)
}

/// The prompt `speaker` gets in group Session `session_id`: see the module doc.
pub fn speaker_context(
    store: &Store,
    session_id: i64,
    speaker: &str,
) -> Result<Context, TurnError> {
    let mut ctx = context(store, session_id)?;
    let group = store
        .group(session_id)?
        .ok_or_else(|| TurnError::NotAReply(format!("session {session_id} is not a group")))?;
    let speaker_character = store.get_character(speaker)?;
    let names = member_names(store, &group);
    let speakers = store.speakers(session_id)?;
    let presence = store.presence(session_id, speaker)?;
    let host = ctx.session.character_id.clone();
    let from_start = presence.first().is_some_and(|(after, _)| *after == 0) && presence.len() == 1;
    ctx.messages = ctx
        .messages
        .into_iter()
        .filter(|m| was_there(&presence, m.id))
        .map(|mut m| {
            let by = match m.role {
                Role::User => None,
                Role::Character => Some(speakers.get(&m.id).unwrap_or(&host).clone()),
            };
            // Another member's line comes as the user's, under that member's name; the
            // person's own lines stay plain user turns, as in a one-Character Session.
            if let Some(other) = by.filter(|id| id != speaker) {
                let label = names.get(&other).cloned().unwrap_or(other);
                m.role = Role::User;
                m.content = format!("{label}: {}", m.content);
            }
            m
        })
        .collect();
    if !from_start {
        ctx.memories
            .retain(|m| m.kind != store::MemoryKind::Summary);
    }
    // The Session's memories, and the speaker's own (not the host's).
    ctx.memories.retain(|m| m.session_id == Some(session_id));
    ctx.memories.extend(
        store
            .memories_for_character(speaker)?
            .into_iter()
            .filter(|m| m.session_id.is_none()),
    );
    ctx.cast = Some(cast_line(&speaker_character, &group, store, &ctx.user));
    ctx.character = speaker_character;
    Ok(ctx)
}

/// Whether the message `id` was said while the member was in the room.
fn was_there(presence: &[(i64, Option<i64>)], id: i64) -> bool {
    presence
        .iter()
        .any(|(after, until)| id > *after && until.is_none_or(|u| id <= u))
}

/// Members' names by id (a member purged for good keeps its id).
fn member_names(store: &Store, group: &Group) -> HashMap<String, String> {
    group
        .members
        .iter()
        .map(|m| {
            let name = store
                .get_character(&m.character_id)
                .map(|c| c.name)
                .unwrap_or_else(|_| m.character_id.clone());
            (m.character_id.clone(), name)
        })
        .collect()
}

/// Who else is in the room, one line each, and how to write.
fn cast_line(speaker: &Character, group: &Group, store: &Store, user: &prompt::User) -> String {
    let others: Vec<String> = group
        .members
        .iter()
        .filter(|m| m.present && m.character_id != speaker.id)
        .filter_map(|m| store.get_character(&m.character_id).ok())
        .map(|c| {
            let line = if c.tagline.trim().is_empty() {
                c.profile.attributes.identity.trim().to_string()
            } else {
                c.tagline.trim().to_string()
            };
            if line.is_empty() {
                c.name
            } else {
                format!("{} ({line})", c.name)
            }
        })
        .collect();
    let name = &speaker.name;
    let person = if user.name == "User" {
        "the user".to_string()
    } else {
        user.name.clone()
    };
    format!(
        "This is a group conversation. With {name} and {person} here: {}. Their lines start with \
         their names. Write only {name}'s next reply, in {name}'s own voice, without a name \
         label; never write a line for anyone else.",
        others.join("; ")
    )
}

/// Stop strings for a speaker's reply: every other member's and the person's label.
pub fn stops_for(
    base: &Sampling,
    names: &[String],
    speaker_name: &str,
    user: &prompt::User,
) -> Sampling {
    let mut s = base.clone();
    for stop in prompt::stop_strings_for(user) {
        if !s.stop.contains(&stop) {
            s.stop.push(stop);
        }
    }
    // Names come up in every line of a group: DRY must not make the model misspell them.
    s.dry_names = names.to_vec();
    s.dry_names.push(user.name.clone());
    for name in names.iter().filter(|n| n.as_str() != speaker_name) {
        for stop in [format!("\n{name}:"), format!("{name}:")] {
            if !s.stop.contains(&stop) {
                s.stop.push(stop);
            }
        }
    }
    s
}

/// The candidates for the next speaker, with who can speak now.
pub fn candidates(store: &Store, group: &Group) -> Result<Vec<Candidate>, TurnError> {
    let mut out = Vec::new();
    for m in &group.members {
        let character = store.get_character(&m.character_id).ok();
        let in_trash = store.in_trash(&m.character_id).unwrap_or(true);
        out.push(Candidate {
            id: m.character_id.clone(),
            name: character
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_else(|| m.character_id.clone()),
            talkativeness: character.as_ref().map_or(0.5, Character::talkativeness),
            can_speak: m.present && !m.muted && !in_trash,
        });
    }
    Ok(out)
}

/// Who should answer now in `session_id`, by its strategy.
pub fn choose(
    store: &Store,
    session_id: i64,
    roll: &mut dyn FnMut() -> f64,
) -> Result<Vec<String>, TurnError> {
    let group = store
        .group(session_id)?
        .ok_or_else(|| TurnError::NotAReply(format!("session {session_id} is not a group")))?;
    let members = candidates(store, &group)?;
    let messages = store.list_messages(session_id)?;
    let speakers = store.speakers(session_id)?;
    let since_person: Vec<String> = messages
        .iter()
        .rev()
        .take_while(|m| m.role == Role::Character)
        .filter_map(|m| speakers.get(&m.id).cloned())
        .collect();
    let (text, last_speaker) = match messages.last() {
        Some(m) if m.role == Role::Character => {
            (m.content.as_str(), speakers.get(&m.id).map(String::as_str))
        }
        Some(m) => (m.content.as_str(), None),
        None => ("", None),
    };
    Ok(next_speakers(
        group.strategy,
        &members,
        text,
        last_speaker,
        &since_person,
        roll,
    ))
}

/// A reply written in a group, by whom.
#[derive(Debug, Clone, PartialEq)]
pub struct Spoken {
    pub speaker: String,
    pub reply: Message,
    pub stats: ReplyStats,
}

/// One round of a group: the person's `text` (if any) stored, then each of `speakers` replies in
/// turn (see the module doc). Stops after a reply that was cancelled or failed.
#[allow(clippy::too_many_arguments)]
pub async fn send(
    store: &Store,
    engine: &dyn Engine,
    session_id: i64,
    text: Option<&str>,
    speakers: &[String],
    sampling: &Sampling,
    cancel: &Cancel,
    now: &(dyn Fn() -> i64 + Sync),
    on_event: &mut (dyn FnMut(TurnEvent) + Send),
) -> Result<Vec<Spoken>, TurnError> {
    let group = store
        .group(session_id)?
        .ok_or_else(|| TurnError::NotAReply(format!("session {session_id} is not a group")))?;
    if let Some(t) = text {
        let t = t.trim();
        if t.is_empty() {
            return Err(TurnError::EmptyMessage);
        }
        let user =
            store.insert_message(session_id, Role::User, t, MessageStatus::Complete, now())?;
        on_event(TurnEvent::Said { user });
    }
    let names: Vec<String> = member_names(store, &group).into_values().collect();
    let mut spoken = Vec::new();
    for speaker in speakers {
        if cancel.is_cancelled() {
            break;
        }
        let reply = speak(
            store, engine, session_id, speaker, &names, sampling, cancel, now, on_event,
        )
        .await?;
        spoken.push(reply);
    }
    Ok(spoken)
}

/// One member's reply, into a row of its own.
#[allow(clippy::too_many_arguments)]
async fn speak(
    store: &Store,
    engine: &dyn Engine,
    session_id: i64,
    speaker: &str,
    names: &[String],
    sampling: &Sampling,
    cancel: &Cancel,
    now: &(dyn Fn() -> i64 + Sync),
    on_event: &mut (dyn FnMut(TurnEvent) + Send),
) -> Result<Spoken, TurnError> {
    let mut ctx = speaker_context(store, session_id, speaker)?;
    // The last line the speaker was there for is what they answer; their own, if it is theirs,
    // is history and they go on.
    let message = match ctx.messages.last() {
        Some(m) if m.role == Role::User => ctx.messages.pop().map(|m| m.content),
        _ => None,
    };
    let assembled = assemble(engine, &ctx, message.as_deref(), budget(engine, sampling)).await?;
    let sampling = stops_for(sampling, names, &ctx.character.name, &ctx.user);
    let mut reply = store.insert_message(
        session_id,
        Role::Character,
        "",
        MessageStatus::Streaming,
        now(),
    )?;
    store.set_speaker(reply.id, speaker)?;
    reply.speaker = Some(speaker.to_string());
    store.save_prompt_record(
        reply.id,
        &super::prompt::kept_record(
            assembled.record,
            &assembled.messages,
            &engine.info().name,
            super::prompt::Prompting::Troupe,
            &sampling,
        ),
    )?;
    on_event(TurnEvent::Speaking {
        reply: reply.clone(),
        speaker: speaker.to_string(),
    });
    let (reply, stats) = stream_reply(
        store,
        engine,
        assembled.messages,
        reply,
        "",
        &sampling,
        cancel,
        &ctx.character.name,
        on_event,
    )
    .await?;
    Ok(Spoken {
        speaker: speaker.to_string(),
        reply,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, name: &str, talk: f64) -> Candidate {
        Candidate {
            id: id.into(),
            name: name.into(),
            talkativeness: talk,
            can_speak: true,
        }
    }

    fn cast() -> Vec<Candidate> {
        vec![
            member("ada", "Ada Lovelace", 0.5),
            member("sherlock", "Sherlock Holmes", 0.5),
            member("mycroft", "Mycroft Holmes", 0.5),
        ]
    }

    fn never() -> impl FnMut() -> f64 {
        || panic!("no roll expected")
    }

    #[test]
    fn a_name_two_members_share_names_neither() {
        let c = cast();
        assert_eq!(mentioned(&c, "Holmes, a word?"), Vec::<String>::new());
        assert_eq!(
            mentioned(&c, "Mycroft and Sherlock Holmes, and you, Ada"),
            ["mycroft", "sherlock", "ada"]
        );
        assert_eq!(mentioned(&c, "I read Ada's notes"), ["ada"]);
        assert_eq!(mentioned(&c, "adamant"), Vec::<String>::new());
    }

    #[test]
    fn each_strategy_chooses_as_it_says() {
        let c = cast();
        let all = ["ada", "sherlock", "mycroft"];
        // Named members answer the person, in the order named, no roll needed.
        let named = next_speakers(
            Strategy::Natural,
            &c,
            "Sherlock? Ada?",
            None,
            &[],
            &mut never(),
        );
        assert_eq!(named, ["sherlock", "ada"]);
        // Between members, the one who just spoke does not answer themselves.
        let chain = next_speakers(
            Strategy::Natural,
            &c,
            "Ada, indeed.",
            Some("ada"),
            &[],
            &mut || 0.0,
        );
        assert_eq!(chain, ["sherlock"]);
        assert_eq!(
            next_speakers(Strategy::List, &c, "", None, &[], &mut never()),
            all
        );
        assert!(next_speakers(Strategy::Manual, &c, "Ada?", None, &[], &mut never()).is_empty());
        let spoke = vec!["ada".to_string(), "sherlock".to_string()];
        let pooled = next_speakers(
            Strategy::Pooled,
            &c,
            "",
            Some("sherlock"),
            &spoke,
            &mut || 0.99,
        );
        assert_eq!(pooled, ["mycroft"]);
        // Nobody able: nobody chosen, whatever the strategy.
        let muted: Vec<Candidate> = c
            .iter()
            .cloned()
            .map(|m| Candidate {
                can_speak: false,
                ..m
            })
            .collect();
        for s in [Strategy::Natural, Strategy::List, Strategy::Pooled] {
            assert!(next_speakers(s, &muted, "Ada?", None, &[], &mut || 0.5).is_empty());
        }
        // Talkativeness 0 speaks only when named.
        let shy = vec![member("a", "Ann", 0.0), member("b", "Bo", 1.0)];
        for r in [0.0, 0.3, 0.99] {
            assert_eq!(
                next_speakers(Strategy::Natural, &shy, "hi", None, &[], &mut || r),
                ["b"]
            );
        }
        assert_eq!(
            next_speakers(Strategy::Natural, &shy, "Ann?", None, &[], &mut never()),
            ["a"]
        );
    }

    #[test]
    fn presence_spans_include_their_ends() {
        let spans = [(0, Some(5)), (9, None)];
        let seen: Vec<i64> = (1..=12).filter(|&id| was_there(&spans, id)).collect();
        assert_eq!(seen, [1, 2, 3, 4, 5, 10, 11, 12]);
    }
}
