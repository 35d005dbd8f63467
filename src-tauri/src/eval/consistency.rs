//! The `consistency` suite: does the Character stay itself? Identity and backstory questions,
//! asked first as the opening question of a fresh chit-chat Session (early) and again at the
//! end of the long companionship Session of the memory suite (late, after more conversation
//! than the context holds). Metrics: the reply names the Character; it matches the profile
//! (a word of the profile field the question is about, not given by the question); breaks of
//! character (speaking as an AI or assistant, writing the person's lines).

use crate::characters::{Character, Scenario};

use super::memory::{excerpt, long_session};
use super::metrics::{mentions, words};
use super::probe::Bench;
use super::{Scores, Suite};

/// What a question checks a reply against.
enum Against {
    /// The Character's name.
    Name,
    /// Words of a profile field.
    Profile(Vec<String>),
    /// Nothing beyond staying in character.
    Nothing,
}

/// The questions and what each reply is checked against.
fn questions(c: &Character) -> Vec<(&'static str, Against)> {
    let a = &c.profile.attributes;
    let field = |text: &str| Against::Profile(keywords(text, &c.name));
    vec![
        ("Who are you?", Against::Name),
        ("What do you do?", field(&a.identity)),
        ("Are you an AI?", Against::Nothing),
        (
            "Who are the people who matter most to you?",
            field(&a.relationships),
        ),
        (
            "What happened in your life that you still think about?",
            field(&a.experiences),
        ),
        (
            "What do you like to do when you have time?",
            field(&a.interests),
        ),
    ]
}

/// The words of a profile field a right answer would use: its names and longer words, less the
/// Character's own name and words every answer uses.
pub(super) fn keywords(text: &str, name: &str) -> Vec<String> {
    let own: Vec<String> = words(name);
    let mut out: Vec<String> = Vec::new();
    for w in words(text) {
        if w.chars().count() >= 5
            && !own.contains(&w)
            && !COMMON.contains(&w.as_str())
            && !out.contains(&w)
        {
            out.push(w);
        }
    }
    out
}

const COMMON: &[&str] = &[
    "about",
    "after",
    "again",
    "always",
    "because",
    "before",
    "being",
    "every",
    "first",
    "great",
    "their",
    "there",
    "these",
    "thing",
    "things",
    "those",
    "through",
    "under",
    "where",
    "which",
    "while",
    "would",
    "years",
    "other",
    "people",
    "never",
    "still",
    "someone",
    "something",
];

/// Phrases that break character: the model speaking as itself.
const BREAKS: &[&str] = &[
    "as an ai",
    "i am an ai",
    "i'm an ai",
    "an ai language",
    "language model",
    "artificial intelligence",
    "virtual assistant",
    "as an assistant",
    "i'm an assistant",
    "i am an assistant",
    "i don't have personal",
    "i do not have personal",
    "openai",
    "i was trained",
];

/// Whether `reply` breaks character: a phrase of `BREAKS`, or a line written as the person.
pub(super) fn breaks(reply: &str, user: &str) -> bool {
    let lower = reply.to_lowercase();
    BREAKS.iter().any(|b| lower.contains(b))
        || lower.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("user:") || l.starts_with(&format!("{}:", user.to_lowercase()))
        })
}

pub(super) async fn run(
    bench: &mut Bench<'_>,
    index: usize,
    scores: &mut Scores,
) -> anyhow::Result<()> {
    let c = bench.character.clone();
    let qs = questions(&c);
    let empty = qs
        .iter()
        .filter(|(_, a)| matches!(a, Against::Profile(k) if k.is_empty()))
        .count();
    if empty == qs.len() - 2 {
        anyhow::bail!(
            "{} has no profile (identity, interests, experiences and relationships are empty): \
             there is nothing to check its replies against",
            c.name
        );
    }
    let early = bench.session(Scenario::ChitChat)?;
    for (q, against) in &qs {
        let reply = bench.ask(early, q).await?;
        score(scores, "early", &c, against, &reply.text);
        {
            scores.note(
                format!("{}: consistency", c.id),
                format!("early, \u{201c}{q}\u{201d}: {}", excerpt(&reply.text)),
            );
        }
    }
    let (late, _) = long_session(bench, index).await?;
    for (q, against) in &qs {
        let reply = bench.ask(late, q).await?;
        score(scores, "late", &c, against, &reply.text);
        {
            scores.note(
                format!("{}: consistency", c.id),
                format!("late, \u{201c}{q}\u{201d}: {}", excerpt(&reply.text)),
            );
        }
    }
    Ok(())
}

fn score(scores: &mut Scores, when: &str, c: &Character, against: &Against, reply: &str) {
    match against {
        Against::Name => {
            let names: Vec<String> = words(&c.name)
                .into_iter()
                .filter(|w| w.len() >= 3)
                .collect();
            scores.flag(
                Suite::Consistency,
                &format!("{when}.names_self"),
                mentions(reply, &names),
            );
        }
        Against::Profile(keywords) if !keywords.is_empty() => {
            scores.flag(
                Suite::Consistency,
                &format!("{when}.profile_match"),
                mentions(reply, keywords),
            );
        }
        _ => {}
    }
    let broke = breaks(reply, "User");
    scores.add(
        Suite::Consistency,
        &format!("{when}.breaks"),
        if broke { 1.0 } else { 0.0 },
        super::Better::Lower,
        "share",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_of_character_are_recognised() {
        assert!(breaks("As an AI, I cannot drink tea.", "User"));
        assert!(breaks("Sure.\nUser: and then I said", "User"));
        assert!(breaks("Well.\nSam: hello", "Sam"));
        assert!(!breaks(
            "I drive a taxi, my friend. Thirty years of nights.",
            "User"
        ));
    }

    #[test]
    fn keywords_leave_out_the_name_and_short_words() {
        let k = keywords(
            "married to Grace for thirty-one years; daughters Ada and Chioma",
            "Walt Okafor",
        );
        assert!(k.contains(&"grace".to_string()) && k.contains(&"chioma".to_string()));
        assert!(!k.contains(&"ada".to_string()) && !k.contains(&"years".to_string()));
        assert!(keywords("", "Walt").is_empty());
    }
}
