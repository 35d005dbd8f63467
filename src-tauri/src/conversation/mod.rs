//! Conversation: prompt assembly, the turn, and memory beyond the prompt.
//!
//! Rooms, each one concept: `prompt` (pure: a Character, a Scenario and history become chat
//! messages; what fits the context), `context` (what a Session's prompt is made from, read from
//! the store), `assemble` (every prompt, built in named steps), `turn` (one exchange: the user's
//! Message stored, the reply streamed by `stream` into a `streaming` Message, each piece
//! committed before it is shown, closed `complete` or `interrupted`), `tidy` (model text made
//! presentable: stop strings, name labels, cut-off sentences, titles), `memory` (rolling summary,
//! facts), `lore` (lorebook activation), `forms` (profile retellings), `naive` (the paper's
//! baseline prompt, which only the evaluation uses), `group` (several Characters in one
//! Session: who speaks next, each speaker's prompt, the round), `detached` (a reply to a conversation the
//! caller holds, nothing stored: the local API's stateless requests), `cancel` and `error`
//! (shared by the turn and the summary, so neither imports the other).
//!
//! Imports run one way: `turn` → `stream`, `assemble`, `memory` → `assemble` → `context`,
//! `prompt`, `lore`; `memory` never imports `turn`, nor `stream` `turn` (checked by
//! tests/architecture.rs).

pub mod assemble;
mod cancel;
pub mod context;
pub mod detached;
mod error;
pub mod forms;
pub mod group;
pub mod lore;
pub mod memory;
mod naive;
pub mod prompt;
mod stream;
#[cfg(test)]
mod tests;
pub mod tidy;
pub mod turn;

pub use cancel::Cancel;
pub use error::TurnError;
pub use prompt::Prompting;
pub use stream::{Detached, ReplyStats, TurnEvent};
pub use turn::{
    continue_reply, regenerate, regenerate_with, send, send_with, warm, warm_character,
};

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
