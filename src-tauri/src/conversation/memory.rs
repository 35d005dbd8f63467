//! Memory beyond the prompt's window.
//!
//! - **Rolling summary.** When the window moves past a chunk of messages, the model summarises
//!   that chunk (`catch_up`), stored as a `summary` Memory that covers up to its last message.
//!   It runs in the background after a reply, never before one: until it is written, the turn
//!   keeps the uncovered messages word for word while they fit (see `assemble`). Whole
//!   chunks keep the prompt's prefix stable between them. A summary that comes back empty is
//!   replaced by an extract of the chunk (the user's messages, shortened), so nothing is lost.
//! - **Facts about the user** (`facts_in`), kept in companionship Sessions: the user's own
//!   sentences that say something about themselves ("my…", "I'm…", "I have…"). Plain rules,
//!   not the model: a 135 M model asked to extract facts invents them.
//! - **Pinned memories** are written by the user (or pinned from a message); `store` keeps them.

use crate::engine::{ChatMessage, ChatRole, Engine, EngineEvent, Sampling};
use crate::store::{self, MemoryKind, Message, Role, Store};

use super::assemble::{assemble, budget};
use super::context::context;
use super::prompt;
use super::tidy::trim_incomplete_sentence;
use super::{Cancel, TurnError};

/// Longest summary of one chunk, in tokens.
pub const SUMMARY_TOKENS: usize = 96;

/// Sentences of `text` in which the user says something about themselves, as they said it.
pub fn facts_in(text: &str) -> Vec<String> {
    const OPENINGS: &[&str] = &[
        "my ",
        "i'm ",
        "i am ",
        "i have ",
        "i've ",
        "i live",
        "i work",
        "i was born",
        "i grew up",
        "i love ",
        "i like ",
        "i hate ",
        "i study",
        "i moved",
        "i got ",
        "i teach",
        "i own ",
        "i'm allergic",
        "we have ",
        "our ",
    ];
    let mut out = Vec::new();
    for sentence in text.split_inclusive(['.', '!', '?', '\n']) {
        let s = sentence.trim();
        let lower = s.to_lowercase();
        // A question about oneself ("my name? what is it?") is not a fact.
        if s.ends_with('?') || s.len() < 8 || s.len() > 240 {
            continue;
        }
        // Anywhere in the sentence, not only at its start: people open with "Hi, I'm…",
        // "So yesterday my cat…", "Honestly I'm allergic…", "By the way, I've got a sister…".
        let about_themselves = OPENINGS.iter().any(|o| {
            lower.starts_with(o)
                || [" ", ",", "(", "\u{2014}"]
                    .iter()
                    .any(|before| lower.contains(&format!("{before}{o}")))
        });
        if about_themselves {
            let mut f = s.trim_end_matches(['.', '!', '\n']).to_string();
            f.push('.');
            out.push(f);
        }
    }
    out
}

/// The line a companionship greeting adds to pick up from the last conversation: the last thing
/// the user told about themselves, else the last thing they said. `None` with neither.
pub fn pick_up(facts: &[String], last_said: Option<&str>) -> Option<String> {
    let shorten = |t: &str| -> String {
        let t = t.trim();
        let s: String = t.chars().take(140).collect();
        if s.len() < t.len() {
            format!("{}…", s.trim_end())
        } else {
            s
        }
    };
    if let Some(f) = facts.last() {
        return Some(format!(
            "Last time you told me: \u{201c}{}\u{201d} How have things been since?",
            shorten(f)
        ));
    }
    let said = last_said.map(str::trim).filter(|s| !s.is_empty())?;
    Some(format!(
        "Last time you said: \u{201c}{}\u{201d} I've been thinking about it. How are you today?",
        shorten(said)
    ))
}

/// The request that summarises `chunk` of a conversation between `user` and `character`.
pub fn request(character: &str, user: &str, chunk: &[Message]) -> Vec<ChatMessage> {
    let transcript = chunk
        .iter()
        .filter(|m| !m.content.trim().is_empty())
        .map(|m| {
            let who = match m.role {
                Role::User => user,
                Role::Character => character,
            };
            format!("{who}: {}", m.content.trim())
        })
        .collect::<Vec<_>>()
        .join("\n");
    vec![
        ChatMessage::new(
            ChatRole::System,
            "You summarise conversations faithfully and briefly.",
        ),
        ChatMessage::new(
            ChatRole::User,
            format!(
                "{transcript}\n\nSummarise this part of the conversation between {user} and \
                 {character} in two or three sentences. Keep names, facts about {user}, and \
                 what happened."
            ),
        ),
    ]
}

/// An extract of `chunk` for when the model's summary comes back empty: each of the user's
/// messages, shortened.
pub fn extract(user: &str, chunk: &[Message]) -> String {
    let said: Vec<String> = chunk
        .iter()
        .filter(|m| m.role == Role::User && !m.content.trim().is_empty())
        .map(|m| {
            let t = m.content.trim();
            let short: String = t.chars().take(120).collect();
            if short.len() < t.len() {
                format!("{short}…")
            } else {
                short
            }
        })
        .collect();
    if said.is_empty() {
        String::new()
    } else {
        format!("{user} said: {}", said.join(" / "))
    }
}

/// Writes the summary of every chunk the window has moved past and the summary does not cover
/// yet. Returns the summaries written. `cancel` stops it between (or during) chunks: a reply
/// the user asked for goes first; what was not summarised is done next time.
pub async fn catch_up(
    store: &Store,
    engine: &dyn Engine,
    session_id: i64,
    sampling: &Sampling,
    cancel: &Cancel,
    now: &(dyn Fn() -> i64 + Sync),
) -> Result<Vec<store::Memory>, TurnError> {
    let mut written = Vec::new();
    loop {
        if cancel.is_cancelled() {
            return Ok(written);
        }
        let ctx = context(store, session_id)?;
        let plan = assemble(engine, &ctx, None, budget(engine, sampling)).await?;
        let from = ctx.summarised();
        if from >= plan.window_start {
            return Ok(written);
        }
        let to = plan.window_start.min(from + prompt::DROP_CHUNK);
        let chunk = &ctx.messages[from..to];
        let Some(last) = chunk.last() else {
            return Ok(written);
        };
        let mut text = String::new();
        let mut generation = engine.generate(
            request(&ctx.character.name, &ctx.user.name, chunk),
            Sampling {
                temperature: 0.0,
                repetition_penalty: 1.1,
                stop: prompt::stop_strings(),
                ..Sampling::greedy(SUMMARY_TOKENS)
            },
        );
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return Ok(written),
                e = generation.recv() => e,
            };
            match event {
                Some(EngineEvent::Text(t)) => text.push_str(&t),
                Some(EngineEvent::Finished { .. }) | None => break,
                Some(EngineEvent::Failed(_)) => {
                    text.clear();
                    break;
                }
            }
        }
        let mut summary = trim_incomplete_sentence(text.trim()).trim().to_string();
        if let Some((label, rest)) = summary.split_once(':') {
            if label.split_whitespace().count() <= 2 && !label.contains(['.', ',']) {
                summary = rest.trim().to_string();
            }
        }
        if summary.is_empty() {
            summary = extract(&ctx.user.name, chunk);
        }
        written.push(store.add_memory(
            &ctx.character.id,
            Some(session_id),
            MemoryKind::Summary,
            &summary,
            Some(last.id),
            now(),
        )?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_the_users_sentences_about_themselves() {
        assert_eq!(
            facts_in("Hi! My dog's name is Biscuit. What about you? I'm a nurse in Leeds"),
            vec!["My dog's name is Biscuit.", "I'm a nurse in Leeds."]
        );
        assert!(facts_in("Do you remember my name?").is_empty());
        assert!(facts_in("The weather is nice.").is_empty());
        assert_eq!(
            facts_in("Well, my name is Sam."),
            vec!["Well, my name is Sam."]
        );
        // How people actually open: the fact mid-sentence, after a greeting or an aside.
        for said in [
            "Hi! So yesterday my cat Miso knocked a glass off the table.",
            "Hi, I'm Sam and I teach chemistry at a school in Porto.",
            "Honestly I'm allergic to peanuts, so no cake for me.",
            "By the way, I've got a younger sister called Ines.",
            "Long day \u{2014} I work nights at the hospital now.",
        ] {
            let facts = facts_in(said);
            assert_eq!(facts.len(), 1, "{said}: {facts:?}");
            assert!(
                said.contains(facts[0].trim_end_matches('.')),
                "{said}: {facts:?}"
            );
        }
        assert!(facts_in("What do you think I should cook tonight?").is_empty());
        assert!(facts_in("Tell me about your ship.").is_empty());
    }

    #[test]
    fn an_empty_summary_falls_back_to_what_the_user_said() {
        let m = |role, content: &str| Message {
            id: 1,
            session_id: 1,
            role,
            content: content.into(),
            status: store::MessageStatus::Complete,
            created_at: 0,
            swipes: vec![],
            swipe: 0,
        };
        let chunk = [
            m(Role::Character, "Hello!"),
            m(Role::User, "I adopted a cat."),
            m(Role::Character, "Lovely."),
            m(Role::User, &"x".repeat(300)),
        ];
        let e = extract("Sam", &chunk);
        assert!(e.starts_with("Sam said: I adopted a cat. / xxx"));
        assert!(e.ends_with('…'));
        assert_eq!(extract("Sam", &chunk[..1]), "");
    }
}
