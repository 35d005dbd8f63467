//! Conversation: Scenarios, prompt assembly and the turn.
//!
//! `prompt` is pure: it turns a Character, a Scenario and history into chat messages, decides
//! what fits the context, and filters stop strings out of streamed text. `turn` runs one
//! exchange against a `Store` and an `Engine`: it stores the user's Message, streams the
//! Character's reply into a `streaming` Message (each piece committed before it is shown) and
//! closes it as `complete` or `interrupted`.

pub mod forms;
pub mod lore;
pub mod memory;
pub mod prompt;
pub mod turn;

pub use turn::{
    continue_reply, regenerate, send, warm, warm_character, Cancel, ReplyStats, TurnError,
    TurnEvent,
};

/// The three conversation scenarios of the CharacterGLM evaluation, chosen per Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Casual talk; the character moves topics along.
    ChitChat,
    /// The user interviews the character about its life, work and views.
    Interview,
    /// The character keeps the user company and attends to their feelings.
    Companionship,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [
        Scenario::ChitChat,
        Scenario::Interview,
        Scenario::Companionship,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::ChitChat => "chit_chat",
            Scenario::Interview => "interview",
            Scenario::Companionship => "companionship",
        }
    }

    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.as_str() == s || x.label().eq_ignore_ascii_case(s))
    }

    /// The word a person reads.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::ChitChat => "Chit-chat",
            Scenario::Interview => "Interview",
            Scenario::Companionship => "Companionship",
        }
    }

    /// How the system prompt frames this Scenario (the paper's proactivity in chit-chat,
    /// answering in depth in interviews, attention to feelings in companionship).
    pub fn framing(self, name: &str) -> String {
        match self {
            Scenario::ChitChat => format!(
                "You are having a relaxed, friendly chat with the user. Keep it light and \
                 lively: share small stories and opinions as {name} would, ask the user about \
                 themselves, and move the conversation to new topics when it slows down."
            ),
            Scenario::Interview => format!(
                "The user is interviewing you. Answer their questions in depth and in your own \
                 voice, drawing on {name}'s experiences, achievements and views, with concrete \
                 details. Do not interview them back."
            ),
            Scenario::Companionship => format!(
                "You are keeping the user company as a caring friend. Notice how they feel, \
                 respond with warmth and patience, remember what they tell you about their life, \
                 and gently encourage them, as {name} would."
            ),
        }
    }
}

/// Questions for an interview, drawn from the Character's experiences, achievements and
/// viewpoints (two of each, in that order). Profile fields list items separated by `;`; an
/// item that starts like a noun phrase is asked about as one ("Tell me about meeting Babbage"),
/// one that starts with a verb as something done ("Tell me about the time you drove…").
pub fn suggested_questions(character: &crate::characters::Character) -> Vec<String> {
    let a = &character.profile.attributes;
    let items = |text: &str| -> Vec<String> {
        text.split([';', '\n'])
            .map(|s| {
                let s = s.trim().trim_end_matches(',');
                // "3 a.m." keeps its dots; a sentence's full stop goes.
                let last = s.rsplit(' ').next().unwrap_or("");
                if last.matches('.').count() == 1 {
                    s.trim_end_matches('.').trim().to_string()
                } else {
                    s.to_string()
                }
            })
            .filter(|s| s.len() >= 8 && s.len() <= 140)
            .take(2)
            .collect()
    };
    // The profile speaks of the character; the question speaks to it.
    let to_you = |item: &str| -> (String, bool) {
        let (first, rest) = item.split_once(' ').unwrap_or((item, ""));
        let lower = first.to_lowercase();
        let swapped = match lower.as_str() {
            "her" | "his" | "their" => Some("your"),
            "she" | "he" | "they" => Some("you"),
            _ => None,
        };
        let noun = matches!(
            lower.as_str(),
            "a" | "an" | "the" | "her" | "his" | "their" | "my" | "its" | "our" | "your"
        ) || lower.ends_with("ing");
        let text = match swapped {
            Some(w) => format!("{w} {rest}"),
            None => item.to_string(),
        };
        (text.trim().to_string(), noun)
    };
    let mut out = Vec::new();
    for item in items(&a.experiences) {
        let (t, noun) = to_you(&item);
        out.push(if noun {
            format!("Tell me about {t}.")
        } else {
            format!("Tell me about the time you {t}.")
        });
    }
    for item in items(&a.achievements) {
        let (t, noun) = to_you(&item);
        out.push(if noun {
            format!("Tell me about {t}.")
        } else {
            format!("Tell me how you {t}.")
        });
    }
    for item in items(&a.viewpoints) {
        let (t, _) = to_you(&item);
        out.push(format!("Why do you believe that {t}?"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interview_questions_come_from_the_profile() {
        let all = crate::characters::builtin::all();
        let walt = all.iter().find(|c| c.id == "walt-okafor").unwrap();
        let q = suggested_questions(walt);
        assert_eq!(q.len(), 6, "{q:?}");
        assert_eq!(
            q[0],
            "Tell me about the time you came to the city at twenty-two with one suitcase."
        );
        assert_eq!(
            q[2],
            "Tell me how you paid for both daughters' university degrees."
        );
        assert_eq!(
            q[4],
            "Why do you believe that everybody is more interesting at 3 a.m.?"
        );
        let ada = all.iter().find(|c| c.id == "ada-lovelace").unwrap();
        let q = suggested_questions(ada);
        assert!(q.contains(&"Tell me about your Notes on the Analytical Engine, three times longer than the paper they annotate, include what is often called the first published computer program, for Bernoulli numbers.".to_string()) || q.iter().any(|x| x.starts_with("Tell me about a childhood")), "{q:?}");
        assert!(suggested_questions(&crate::characters::Character::blank()).is_empty());
    }
}
