//! Memory beyond the prompt's window.
//!
//! - **Rolling summary.** When the window moves past a chunk of messages, the model summarises
//!   that chunk (`catch_up`), stored as a `summary` Memory that covers up to its last message.
//!   It runs in the background after a reply, never before one: until it is written, the turn
//!   keeps the uncovered messages word for word while they fit (see `assemble`). Whole
//!   chunks keep the prompt's prefix stable between them. A summary that comes back empty is
//!   replaced by an extract of the chunk (the user's messages, shortened), so nothing is lost;
//!   so is one that names people, places or things the chunk never mentions (`grounded`): a
//!   small model summarising a chat invents ("a poem called The Linter", "a trip across the
//!   ocean"), and an invented memory is worse than a plain extract.
//! - **Facts about the user**, kept in companionship Sessions, always as the user's own
//!   sentences. Rules find the plain ones as the message is stored (`facts_in`: "my…", "I'm…",
//!   "I have…" anywhere in a sentence); after the reply, the model reads the message for the
//!   rest (`learn`: "Pepper (that's my beagle) chewed my shoes"), and each fact it names is
//!   kept only as the sentence of the message it matches: the model finds, the user's words
//!   are what is kept, so an invented fact has no sentence to land on and is dropped.
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
        "allergic",
        "i can't eat",
        "i spend ",
        "i play ",
        "i speak ",
        "i drive ",
        "i used to ",
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
        let said = chunk
            .iter()
            .map(|m| m.content.as_str())
            .chain([ctx.character.name.as_str(), ctx.user.name.as_str()])
            .collect::<Vec<_>>()
            .join("\n");
        if let Err(invented) = grounded(&summary, &said) {
            tracing::info!("summary of session {session_id} set aside: it invents {invented:?}");
            summary.clear();
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

/// Words a summary may use without the chunk having said them: how summaries are written.
const SUMMARY_WORDS: &[&str] = &[
    "the",
    "a",
    "an",
    "they",
    "he",
    "she",
    "it",
    "in",
    "on",
    "after",
    "then",
    "meanwhile",
    "later",
    "both",
    "this",
    "that",
    "when",
    "while",
    "as",
    "we",
    "you",
    "user",
    "i",
    "their",
    "his",
    "her",
    "later",
    "also",
    "finally",
    "first",
    "next",
    "during",
    "together",
];

/// Words of `text`, lower-cased, possessives and punctuation stripped.
fn words(text: &str) -> impl Iterator<Item = (String, bool)> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '\u{2019}'))
        .filter(|w| !w.is_empty())
        .map(|w| {
            let w = w
                .trim_matches(['\'', '\u{2019}'])
                .trim_end_matches("'s")
                .trim_end_matches("\u{2019}s");
            let capital = w.chars().next().is_some_and(char::is_uppercase);
            (w.to_lowercase(), capital)
        })
        .filter(|(w, _)| !w.is_empty())
}

/// Whether `word` (lower case) was said in `said`, allowing a different ending ("hiking" for
/// "hike", "daughters" for "daughter").
fn was_said(word: &str, said: &std::collections::HashSet<String>) -> bool {
    if said.contains(word) {
        return true;
    }
    let stem: String = word.chars().take(5).collect();
    word.chars().count() >= 5 && said.iter().any(|s| s.starts_with(&stem))
}

/// Checks a summary against what its chunk said (`said`: the messages and the two names):
/// every name it uses (a capitalised word that does not only open a sentence) and every number
/// must occur there, and at most two of its longer words may be new. `Err` lists what it
/// invented.
pub fn grounded(summary: &str, said: &str) -> Result<(), Vec<String>> {
    let said: std::collections::HashSet<String> = words(said).map(|(w, _)| w).collect();
    let mut invented = Vec::new();
    let mut new_long = Vec::new();
    for sentence in summary.split_inclusive(['.', '!', '?']) {
        for (i, (w, capital)) in words(sentence).enumerate() {
            if was_said(&w, &said) || SUMMARY_WORDS.contains(&w.as_str()) {
                continue;
            }
            let number = w.chars().any(|c| c.is_ascii_digit());
            if (capital && i > 0) || number {
                invented.push(w);
            } else if w.chars().count() >= 6 && !REPORTING_WORDS.contains(&w.as_str()) {
                new_long.push(w);
            }
        }
    }
    if new_long.len() > 2 {
        invented.extend(new_long);
    }
    if invented.is_empty() {
        Ok(())
    } else {
        Err(invented)
    }
}

/// Longer words a faithful summary uses of any conversation.
const REPORTING_WORDS: &[&str] = &[
    "talked",
    "talking",
    "discussed",
    "discussing",
    "conversation",
    "mentioned",
    "mentions",
    "shared",
    "sharing",
    "explained",
    "explains",
    "expressed",
    "described",
    "describes",
    "decided",
    "wondered",
    "replied",
    "responded",
    "agreed",
    "suggested",
    "thanked",
    "offered",
    "reminded",
    "admitted",
    "revealed",
    "learned",
    "enjoyed",
    "another",
    "something",
    "someone",
    "things",
    "asked",
    "asking",
    "telling",
    "about",
    "feeling",
    "feelings",
    "thought",
    "thoughts",
    "advice",
    "encouraged",
    "interested",
    "briefly",
    "recently",
];

/// The request that asks the model which facts the user states about themselves in `text`:
/// quote the sentences, shown once by example. Asked for a list of facts by category, small
/// models fill in a form ("Name: John"); asked to quote, they copy, and a quote maps back to
/// the user's sentence.
pub fn learn_request(user: &str, text: &str) -> Vec<ChatMessage> {
    let ask = |who: &str, said: &str| {
        format!(
            "{who} wrote: \"{said}\"\n\nQuote each part where {who} tells something about \
             themselves or their life (family, pets, work, home, health, food, hobbies, plans), \
             one per line starting with \"- \". Copy the words exactly. If there is none, write \
             \"- none\"."
        )
    };
    vec![
        ChatMessage::new(
            ChatRole::System,
            "You find what a person says about themselves. You quote, you never guess.",
        ),
        ChatMessage::new(
            ChatRole::User,
            ask(
                "Kim",
                "Rough day. My brother Tom is visiting, and I can't eat gluten so dinner was \
                 tricky. What would you cook?",
            ),
        ),
        ChatMessage::new(
            ChatRole::Assistant,
            "- My brother Tom is visiting\n- I can't eat gluten",
        ),
        ChatMessage::new(ChatRole::User, ask(user, text)),
    ]
}

/// The sentences of `text` that the model's `listed` facts point at: for each listed line, the
/// user's sentence sharing the most of its words, kept when it shares at least half of them
/// (and one at least), with the sentence before it when it is short. What is kept is always
/// the user's own words, never the model's.
pub fn sentences_for(listed: &str, text: &str) -> Vec<String> {
    let sentences: Vec<&str> = text
        .split_inclusive(['.', '!', '?', '\n'])
        .map(str::trim)
        .filter(|s| s.len() >= 8 && s.len() <= 240 && !s.ends_with('?'))
        .collect();
    let mut out: Vec<String> = Vec::new();
    for line in listed.lines() {
        let line = line
            .trim()
            .trim_start_matches(['-', '*', '\u{2022}'])
            .trim();
        let content: Vec<String> = words(line)
            .map(|(w, _)| w)
            .filter(|w| w.chars().count() >= 3 && !FACT_FILLER.contains(&w.as_str()))
            .collect();
        if content.is_empty() {
            continue;
        }
        // The first sentence with the most hits.
        let best = sentences
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let said: std::collections::HashSet<String> = words(s).map(|(w, _)| w).collect();
                let hits = content.iter().filter(|w| was_said(w, &said)).count();
                (hits, std::cmp::Reverse(i))
            })
            .max()
            .map(|(hits, i)| (hits, i.0));
        if let Some((hits, at)) = best {
            if hits >= 1 && hits * 2 >= content.len() {
                // A short sentence leans on the one before ("Peanuts again. One bite and I
                // swell up."): kept alone, it would not say what it is about.
                let sentence = match at.checked_sub(1) {
                    Some(before) if sentences[at].split_whitespace().count() < 8 => {
                        format!("{} {}", sentences[before], sentences[at])
                    }
                    _ => sentences[at].to_string(),
                };
                let mut f = sentence.trim_end_matches(['.', '!', '\n']).to_string();
                f.push('.');
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
    }
    out
}

/// Words of a listed fact that say nothing about it ("The user has a…").
const FACT_FILLER: &[&str] = &[
    "the",
    "user",
    "users",
    "has",
    "have",
    "had",
    "and",
    "their",
    "they",
    "them",
    "his",
    "her",
    "who",
    "whose",
    "with",
    "named",
    "name",
    "called",
    "are",
    "was",
    "were",
    "is",
    "that",
    "this",
    "for",
    "from",
    "none",
    "fact",
    "facts",
    "states",
    "themselves",
    "lives",
    "works",
    "likes",
    "person",
    "she",
    "he",
    "one",
];

/// Longest answer of `learn`'s request, in tokens.
pub const LEARN_TOKENS: usize = 64;

/// After a reply in a companionship Session: asks the model which facts the user's last
/// message states, and keeps the sentences they point at (`sentences_for`) that are not kept
/// yet. Returns the facts added. Other Scenarios, and a message already read, add nothing.
pub async fn learn(
    store: &Store,
    engine: &dyn Engine,
    session_id: i64,
    cancel: &Cancel,
    now: &(dyn Fn() -> i64 + Sync),
) -> Result<Vec<store::Memory>, TurnError> {
    // Every warm-up asks; only companionship reads the whole Session.
    if store.get_session(session_id)?.scenario != crate::characters::Scenario::Companionship {
        return Ok(Vec::new());
    }
    let ctx = context(store, session_id)?;
    let Some(last) = ctx.messages.iter().rev().find(|m| m.role == Role::User) else {
        return Ok(Vec::new());
    };
    let mut generation = engine.generate(
        learn_request(&ctx.user.name, last.content.trim()),
        Sampling {
            stop: prompt::stop_strings(),
            ..Sampling::greedy(LEARN_TOKENS)
        },
    );
    let mut listed = String::new();
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return Ok(Vec::new()),
            e = generation.recv() => e,
        };
        match event {
            Some(EngineEvent::Text(t)) => listed.push_str(&t),
            Some(EngineEvent::Finished { .. }) | None => break,
            Some(EngineEvent::Failed(e)) => return Err(crate::engine::Error::Backend(e).into()),
        }
    }
    tracing::debug!("facts the model names in session {session_id}: {listed:?}");
    let known = ctx.texts(MemoryKind::Fact);
    let mut added = Vec::new();
    for fact in sentences_for(&listed, &last.content) {
        // A rule may have kept the same sentence, or a longer one holding it.
        if known.iter().any(|k| k.contains(fact.trim_end_matches('.'))) {
            continue;
        }
        added.push(store.add_memory(
            &ctx.character.id,
            Some(session_id),
            MemoryKind::Fact,
            &fact,
            Some(last.id),
            now(),
        )?);
    }
    Ok(added)
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
    fn a_summary_that_invents_is_caught() {
        let said = "Sam\nWalt Okafor\nMy cat Miso knocked a glass off the table.\n\
                    Ah, cats. My Grace had one that hated the radio.";
        assert_eq!(
            grounded(
                "Sam told Walt Okafor that the cat Miso knocked a glass off the table.",
                said
            ),
            Ok(())
        );
        assert_eq!(
            grounded("They talked about cats and the radio.", said),
            Ok(())
        );
        // The inventions: a poem's title, a trip nobody took.
        assert!(grounded("Sam wrote a poem called The Linter.", said).is_err());
        assert!(grounded(
            "Sam turned to the cat's tail and sailed across the ocean on a voyage.",
            said
        )
        .is_err());
        assert!(grounded("Sam is 34 years old.", said).is_err());
    }

    #[test]
    fn learned_facts_are_the_users_own_sentences() {
        let text = "Ugh, Pepper (that's my beagle) chewed my shoes again. What a day. \
                    Greetings from Lisbon, where it rains all week.";
        let listed = "- The user has a beagle named Pepper\n- The user lives in Lisbon\n\
                      - The user is a pilot";
        assert_eq!(
            sentences_for(listed, text),
            vec![
                "Ugh, Pepper (that's my beagle) chewed my shoes again.",
                "Greetings from Lisbon, where it rains all week."
            ]
        );
        // A short sentence keeps the one before it, which says what it is about.
        assert_eq!(
            sentences_for(
                "- One bite and I swell up",
                "Had to skip the cake, peanuts again. One bite and I swell up."
            ),
            vec!["Had to skip the cake, peanuts again. One bite and I swell up."]
        );
        // Nothing the user said, nothing kept.
        assert!(sentences_for("- The user is a pilot\n- none", text).is_empty());
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
            speaker: None,
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
