//! Prompt assembly: a Character, a Scenario and a Session's history become the messages the
//! Engine sees. Pure functions; the token counts come from the caller (the Engine's real
//! tokenizer), so this module stays testable without a model.

use crate::characters::{Character, ProfileForm};
use crate::engine::{ChatMessage, ChatRole, Sampling};
use crate::store::{Message, Role};

use crate::characters::Scenario;

/// Who the user is, as the prompt tells it (the Session's persona).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub description: String,
}

impl Default for User {
    fn default() -> Self {
        User {
            name: "User".into(),
            description: String::new(),
        }
    }
}

/// The system message: who the character is, who the user is, the lore that is always true,
/// and how to behave in this Scenario. It depends only on the Character, the Scenario, the
/// Session's persona and the lorebook's constant entries, so it is byte-stable across the turns
/// of a Session and the engine's prefix cache reuses its computation.
pub fn system_prompt_for(
    character: &Character,
    scenario: Scenario,
    user: &User,
    constant_lore: &[String],
) -> String {
    let name = &character.name;
    let mut s = character_prefix_for(character, user);
    if user.name != "User" || !user.description.trim().is_empty() {
        s.push_str(&format!("\n\nThe user is {}.", user.name.trim()));
        if !user.description.trim().is_empty() {
            s.push(' ');
            s.push_str(&character.fill_macros_as(user.description.trim(), &user.name));
        }
    }
    for lore in constant_lore {
        s.push_str("\n\n");
        s.push_str(&character.fill_macros_as(lore, &user.name));
    }
    let user_name = if user.name == "User" {
        "the user"
    } else {
        user.name.as_str()
    };
    let original = format!(
        "{}\n\nStay in character: you are {name}, a real person talking with {user}. Reply in \
         first person with a few natural sentences. Never write {user}'s lines. Asked whether you \
         are an AI, a bot or a program, stay {name} and laugh it off, for example: \"An AI? No, \
         I'm {name}.\"",
        scenario.framing(name),
        user = user_name,
    );
    // A card's own system prompt replaces Troupe's framing; `{{original}}` puts it back in.
    let own = character.system_prompt.trim();
    let framing = if own.is_empty() {
        original
    } else {
        character.fill_macros_as(&own.replace("{{original}}", &original), &user.name)
    };
    s.push_str("\n\n");
    s.push_str(&framing);
    s
}

/// `system_prompt_for` with the default persona and no lore.
pub fn system_prompt(character: &Character, scenario: Scenario) -> String {
    system_prompt_for(character, scenario, &User::default(), &[])
}

/// The part of the system prompt that depends on the Character alone (who it is, its profile,
/// how it talks), which comes first so that it is the same in every Scenario: the engine can
/// prefill it as soon as the Character is opened, before a Scenario is chosen.
pub fn character_prefix(character: &Character) -> String {
    character_prefix_for(character, &User::default())
}

pub fn character_prefix_for(character: &Character, user: &User) -> String {
    let name = &character.name;
    let c = character;
    let mut s = format!("You are {name}.");
    // A card brings its own description; the structured profile is added when it has one, or
    // stands alone when the description is empty.
    if !c.profile.is_blank()
        || c.profile.uses != ProfileForm::Prose
        || c.description.trim().is_empty()
    {
        let text = c.profile.text(name);
        if c.profile.uses == ProfileForm::SelfIntro && text != c.profile.to_prose(name) {
            s.push_str(&format!("\n\n{name}, in their own words: {text}"));
        } else {
            s.push_str(&format!("\n\nAbout {name}: {text}"));
        }
    }
    for (label, text) in [
        ("", &c.description),
        ("Personality: ", &c.personality),
        ("Setting: ", &c.setting),
    ] {
        if !text.trim().is_empty() {
            s.push_str(&format!(
                "\n\n{label}{}",
                c.fill_macros_as(text.trim(), &user.name)
            ));
        }
    }
    s
}

/// The example dialogue, as its own system message: the first thing left out when the
/// conversation needs the room.
pub fn examples(character: &Character, user: &User) -> Option<String> {
    let c = character;
    let name = &c.name;
    let fill = |t: &str| c.fill_macros_as(t.trim(), &user.name);
    if !c.example_dialogue.is_empty() {
        let mut s = format!("Examples of how {name} talks:");
        for ex in &c.example_dialogue {
            if !ex.user.trim().is_empty() {
                s.push_str(&format!("\n{}: {}", user.name, fill(&ex.user)));
            }
            s.push_str(&format!("\n{name}: {}", fill(&ex.character)));
        }
        Some(s)
    } else if !c.card.mes_example.trim().is_empty() {
        let examples = c
            .card
            .mes_example
            .replace("<START>", "")
            .replace("<start>", "");
        Some(format!(
            "Examples of how {name} talks:\n{}",
            fill(&examples)
        ))
    } else {
        None
    }
}

/// What the model reads before the user's first message in a new Session: the system message
/// and the Scenario's greeting (when the Character has one).
pub fn opening(character: &Character, scenario: Scenario) -> Vec<ChatMessage> {
    let user = User::default();
    let constant: Vec<String> = super::lore::constant(character);
    let mut m = vec![ChatMessage::new(
        ChatRole::System,
        system_prompt_for(character, scenario, &user, &constant),
    )];
    if let Some(ex) = examples(character, &user) {
        m.push(ChatMessage::new(ChatRole::System, ex));
    }
    if let Some(g) = character.greeting(scenario) {
        m.push(ChatMessage::new(ChatRole::Assistant, g));
    }
    m
}

/// Strings that mean the model has started writing the user's turn: generation stops there.
pub fn stop_strings() -> Vec<String> {
    ["\nUser:", "\nuser:", "\nYou:", "<|im_end|>", "<|im_start|>"]
        .into_iter()
        .map(String::from)
        .collect()
}

/// `stop_strings` with the user's persona name too ("\nSam:").
pub fn stop_strings_for(user: &User) -> Vec<String> {
    let mut s = stop_strings();
    let name = user.name.trim();
    if !name.is_empty() && name != "User" {
        s.push(format!("\n{name}:"));
    }
    s
}

/// The notes placed just before the user's newest message (SillyTavern's author's note at
/// depth 1): what the Character must keep in mind (pinned memories), what the user told about
/// themselves, and the lore the recent messages called up. Written as plain sentences: a small
/// model continues a bulleted list instead of answering. `None` when there is nothing to say.
pub fn notes(
    character: &Character,
    user: &User,
    pinned: &[String],
    facts: &[String],
    lore: &[String],
) -> Option<String> {
    let sentence = |t: &str| {
        let t = t.trim();
        if t.ends_with(['.', '!', '?', '"', '\u{201d}']) {
            t.to_string()
        } else {
            format!("{t}.")
        }
    };
    let mut parts = Vec::new();
    if !pinned.is_empty() {
        parts.push(format!(
            "Keep in mind: {}",
            pinned
                .iter()
                .map(|p| sentence(p))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if !facts.is_empty() {
        parts.push(format!(
            "{} has told you: {}",
            user.name,
            facts
                .iter()
                .map(|f| format!("\u{201c}{}\u{201d}", sentence(f)))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    for l in lore {
        parts.push(character.fill_macros_as(l.trim(), &user.name));
    }
    (!parts.is_empty()).then(|| format!("(Notes for {}) {}", character.name, parts.join("\n")))
}

/// The card's post-history instructions, the last thing before the reply (`{{original}}`
/// stands for Troupe's, which are none).
pub fn post_history(character: &Character, user: &User) -> Option<String> {
    let phi = character
        .post_history_instructions
        .replace("{{original}}", "");
    let phi = phi.trim();
    (!phi.is_empty()).then(|| character.fill_macros_as(phi, &user.name))
}

/// The rolling summary as the prompt gives it.
pub fn summary_message(summary: &[String]) -> Option<String> {
    let text: Vec<&str> = summary
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    (!text.is_empty()).then(|| format!("Earlier in this conversation: {}", text.join(" ")))
}

/// One part of a prompt, for the prompt inspector.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Section {
    /// "System prompt", "Example dialogue", "Summary", "History", "Message", "Notes".
    pub name: String,
    pub text: String,
    /// Tokens it takes in the prompt (its messages with their template).
    pub tokens: usize,
}

/// What one reply was given, and what was left out: kept with the reply for the inspector.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PromptRecord {
    pub sections: Vec<Section>,
    /// Lore entries in the prompt, with why.
    pub lore: Vec<super::lore::Fired>,
    /// Lore entries that matched but did not fit the lore budget.
    pub lore_left_out: Vec<String>,
    /// Messages of the Session left out (the oldest; the summary covers them).
    pub dropped_messages: usize,
    /// Whether the example dialogue was left out to make room.
    pub examples_dropped: bool,
    /// The exact size of the whole prompt, and the most it may be.
    pub tokens: usize,
    pub budget: usize,
    /// What wrote the reply: the model file's name, how the prompt was made ("troupe" or
    /// "naive") and the sampling. Empty in records kept before ratings existed.
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub prompting: String,
    #[serde(default)]
    pub sampling: Option<crate::engine::Sampling>,
    /// The chat messages exactly as the engine got them, for exported training data.
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
}

/// A Session's stored messages as chat messages (interrupted replies included: what was shown
/// is part of the conversation).
pub fn history(messages: &[Message]) -> Vec<ChatMessage> {
    messages
        .iter()
        .filter(|m| !m.content.trim().is_empty())
        .map(|m| ChatMessage {
            role: match m.role {
                Role::User => ChatRole::User,
                Role::Character => ChatRole::Assistant,
            },
            content: m.content.clone(),
        })
        .collect()
}

/// How much of the history fits. `system_tokens` and `message_tokens` (one per history message,
/// oldest first) are counts from the real tokenizer, each including its template overhead;
/// `budget` is the context length minus the reply budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// Keep the newest `keep` messages (dropping the older ones), using `tokens` in all.
    Keep { keep: usize, tokens: usize },
    /// Even the system prompt and the newest message alone are `needed` tokens, over `budget`.
    TooLong { needed: usize, budget: usize },
}

/// When history must be dropped, it is dropped in whole chunks of this many messages, counted
/// from the Session's first message: the kept history then starts at the same message for
/// several turns in a row, so the prompt's prefix stays the same and the engine's prefix cache
/// serves it. Dropping exactly what no longer fits would change the first kept message on
/// every turn once a chat is long: a full prefill of the whole context (tens of seconds on a
/// CPU) before every reply. The price is up to this many messages more left out.
pub const DROP_CHUNK: usize = 24;

pub fn fit(system_tokens: usize, message_tokens: &[usize], budget: usize) -> Fit {
    let Some(&newest) = message_tokens.last() else {
        return if system_tokens <= budget {
            Fit::Keep {
                keep: 0,
                tokens: system_tokens,
            }
        } else {
            Fit::TooLong {
                needed: system_tokens,
                budget,
            }
        };
    };
    let mut used = system_tokens + newest;
    if used > budget {
        return Fit::TooLong {
            needed: used,
            budget,
        };
    }
    let mut keep = 1;
    for &t in message_tokens.iter().rev().skip(1) {
        if used + t > budget {
            break;
        }
        used += t;
        keep += 1;
    }
    let n = message_tokens.len();
    if keep < n {
        // Start at the next chunk boundary (never past the newest message). In a context so
        // small that a whole chunk would drop more than two thirds of what fits, smaller chunks.
        let min_start = n - keep;
        for chunk in [DROP_CHUNK, DROP_CHUNK / 2, DROP_CHUNK / 4, 2, 1] {
            let start = (min_start.div_ceil(chunk) * chunk).min(n - 1);
            if n - start >= keep.div_ceil(3) || chunk == 1 {
                keep = n - start;
                break;
            }
        }
        used = system_tokens + message_tokens[n - keep..].iter().sum::<usize>();
    }
    Fit::Keep { keep, tokens: used }
}

/// Tokens `fit_turn` keeps free for the user's next message when it decides which history to
/// keep: a chat message rarely runs longer.
pub const NEXT_MESSAGE_RESERVE: usize = 256;

/// `fit` for a turn's prompt: `history` (the stored messages) and the user's new `message`, or
/// `None` when warming the prompt before the message exists. Which history is kept is decided
/// as if `NEXT_MESSAGE_RESERVE` tokens were taken, with or without the message, so the warm-up
/// and the turn that follows it keep the same messages and the turn finds the warmed prompt in
/// the prefix cache. (Deciding each with what it has made the warm-up keep a chunk the turn then
/// dropped: a full prefill, ~20 s at 3,000 tokens, once every dozen turns of a long chat.) A
/// message longer than the reserve falls back to `fit` over everything.
pub fn fit_turn(
    system_tokens: usize,
    history: &[usize],
    message: Option<usize>,
    budget: usize,
) -> Fit {
    let reserved = budget.saturating_sub(NEXT_MESSAGE_RESERVE);
    if let Fit::Keep { keep, tokens } = fit(system_tokens, history, reserved) {
        match message {
            None => return Fit::Keep { keep, tokens },
            Some(m) if tokens + m <= budget => {
                return Fit::Keep {
                    keep: keep + 1,
                    tokens: tokens + m,
                }
            }
            Some(_) => {}
        }
    }
    let mut all = history.to_vec();
    all.extend(message);
    fit(system_tokens, &all, budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::characters::builtin;

    #[test]
    fn system_prompt_holds_profile_framing_and_examples() {
        let c = builtin::all()
            .into_iter()
            .find(|c| c.id == "sherlock-holmes")
            .unwrap();
        let p = system_prompt(&c, Scenario::Interview);
        assert!(p.starts_with("You are Sherlock Holmes.\n\nAbout Sherlock Holmes: "));
        assert!(
            p.starts_with(&character_prefix(&c)),
            "the Character part comes first"
        );
        assert!(p.contains("221B Baker Street"));
        assert!(p.contains(&Scenario::Interview.framing("Sherlock Holmes")));
        // The example dialogue is its own message, the first thing dropped for room.
        assert!(!p.contains("Examples of how"));
        assert!(examples(&c, &User::default())
            .unwrap()
            .starts_with("Examples of how Sherlock Holmes talks:\nUser: How did you know"));
        // Byte-stable: the same inputs give the same prefix on every turn.
        assert_eq!(p, system_prompt(&c, Scenario::Interview));
        assert_ne!(p, system_prompt(&c, Scenario::Companionship));
    }

    #[test]
    fn a_cards_system_prompt_replaces_the_framing_and_original_brings_it_back() {
        let mut c = builtin::all().remove(0);
        let plain = system_prompt(&c, Scenario::ChitChat);
        c.system_prompt = "Write as {{char}}. {{original}} Keep it PG.".into();
        let p = system_prompt(&c, Scenario::ChitChat);
        let framing = Scenario::ChitChat.framing(&c.name);
        assert!(
            p.contains(&format!("Write as {}. {framing}", c.name)),
            "{p}"
        );
        assert!(p.ends_with(" Keep it PG."));
        assert_eq!(p.matches(&framing).count(), 1);
        c.system_prompt = "Only this.".into();
        let p = system_prompt(&c, Scenario::ChitChat);
        assert!(!p.contains(&framing) && p.ends_with("\n\nOnly this."));
        assert!(plain.starts_with(&character_prefix(&c)) && p.starts_with(&character_prefix(&c)));
    }

    #[test]
    fn the_chosen_profile_form_stands_for_the_profile() {
        use crate::characters::ProfileForm;
        let mut c = builtin::all().remove(0);
        let prose = c.profile.to_prose(&c.name);
        assert!(character_prefix(&c).contains(&prose));
        c.profile.uses = ProfileForm::SelfIntro;
        // Not written yet: the prose stays.
        assert!(character_prefix(&c).contains(&prose));
        c.profile.forms.self_intro = "I count things.".into();
        let p = character_prefix(&c);
        assert!(!p.contains(&prose));
        assert!(p.contains(&format!("{}, in their own words: I count things.", c.name)));
    }

    #[test]
    fn long_chats_keep_the_same_first_message_for_many_turns() {
        // 10-token messages, room for 40 of them: as the chat grows by a turn (2 messages) at a
        // time, the first kept message moves only in steps of DROP_CHUNK.
        let mut starts = Vec::new();
        for n in (40..=140).step_by(2) {
            let Fit::Keep { keep, tokens } = fit(0, &vec![10; n], 400) else {
                panic!()
            };
            assert!(tokens <= 400);
            assert!(keep >= 40 - DROP_CHUNK, "kept {keep} of {n}");
            starts.push(n - keep);
        }
        assert!(starts.iter().all(|s| s % DROP_CHUNK == 0), "{starts:?}");
        let changes = starts.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(
            changes <= 5,
            "the prefix changed {changes} times in 50 turns: {starts:?}"
        );
    }

    #[test]
    fn warm_up_and_turn_keep_the_same_history() {
        // A long chat, turn after turn: the warm-up (no message yet) and the turn that follows
        // (with the message) must keep the same first message, or the turn misses the cache.
        let mut history = Vec::new();
        for turn in 0..200 {
            let Fit::Keep { keep: warm, .. } = fit_turn(300, &history, None, 2000) else {
                panic!()
            };
            let message = 20 + turn % 7 * 30; // 20..200 tokens, under the reserve
            let Fit::Keep { keep, tokens } = fit_turn(300, &history, Some(message), 2000) else {
                panic!()
            };
            assert!(tokens <= 2000);
            assert_eq!(keep, warm + 1, "turn {turn}: the turn kept other messages");
            history.push(message);
            history.push(60); // the reply
        }
        // A message longer than the reserve still fits, by dropping more.
        let Fit::Keep { keep, tokens } = fit_turn(300, &history, Some(900), 2000) else {
            panic!()
        };
        assert!(tokens <= 2000 && keep >= 1);
        // Plain `fit` without the reserve: the turn drops a chunk the warm-up kept.
        let mismatched = (10..200).any(|n| {
            let h = vec![60; n];
            let Fit::Keep { keep: w, .. } = fit(300, &h, 2000) else {
                panic!()
            };
            let mut with = h.clone();
            with.push(150);
            let Fit::Keep { keep: t, .. } = fit(300, &with, 2000) else {
                panic!()
            };
            t != w + 1
        });
        assert!(mismatched, "the test no longer shows what fit_turn fixes");
    }

    #[test]
    fn fit_keeps_newest_messages_within_budget() {
        assert_eq!(
            fit(100, &[50, 50, 50], 1000),
            Fit::Keep {
                keep: 3,
                tokens: 250
            }
        );
        // Dropping goes by chunks from the first message; tiny contexts get tiny chunks.
        assert_eq!(
            fit(100, &[50, 50, 50], 220),
            Fit::Keep {
                keep: 1,
                tokens: 150
            }
        );
        assert_eq!(
            fit(100, &[500, 10, 50], 200),
            Fit::Keep {
                keep: 1,
                tokens: 150
            }
        );
        // 30 messages of 10, room for 20: a chunk of 12 from the start keeps 18 (a chunk of 24
        // would keep only 6, under a third of what fits).
        assert_eq!(
            fit(0, &[10; 30], 200),
            Fit::Keep {
                keep: 18,
                tokens: 180
            }
        );
        assert_eq!(
            fit(100, &[50, 150], 200),
            Fit::TooLong {
                needed: 250,
                budget: 200
            }
        );
        assert_eq!(
            fit(100, &[], 200),
            Fit::Keep {
                keep: 0,
                tokens: 100
            }
        );
    }
}

/// How a turn's prompt is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompting {
    /// Troupe's prompt engine (`assemble`): summary, memories, facts, a budgeted window.
    Troupe,
    /// The paper's baseline, for evaluation only (`naive`); it keeps no facts either.
    Naive,
}

/// The prompt record kept with a reply (JSON): what the inspector shows, plus what wrote the
/// reply and the messages exactly as the engine got them, for ratings and training data.
pub(super) fn kept_record(
    mut record: PromptRecord,
    messages: &[ChatMessage],
    model: &str,
    prompting: Prompting,
    sampling: &Sampling,
) -> String {
    record.model = model.to_string();
    record.prompting = match prompting {
        Prompting::Troupe => "troupe",
        Prompting::Naive => "naive",
    }
    .into();
    record.sampling = Some(Sampling {
        stop: vec![],
        ..sampling.clone()
    });
    record.messages = messages.to_vec();
    serde_json::to_string(&record).expect("a record serialises")
}
