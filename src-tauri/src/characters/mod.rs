//! Characters: who the user talks to.
//!
//! A `Character` follows the CharacterGLM profile: **attributes** decide *what* it says
//! (identity, interests, viewpoints, experiences, achievements, social relationships, other) and
//! **behaviours** decide *how* (linguistic style, emotional expression, interaction patterns).
//! It also has a category (celebrity, daily-life, fictional), one greeting per Scenario, example
//! dialogue and an avatar file name.
//!
//! This module does no IO: `Profile::to_prose` renders the key-value profile to the paragraph
//! the prompt uses (the paper trains on prose, not key-value lists), and `builtin` holds the
//! characters shipped in `characters/`, compiled into the binary. Persisting them is `store`'s
//! job; writing avatar files is the caller's.

pub mod avatar;
pub mod builtin;
pub mod card;

use serde::{Deserialize, Serialize};

use crate::conversation::Scenario;

/// The paper's three kinds of social character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A real, well-known person (Troupe ships only public-domain historical figures).
    Celebrity,
    /// Someone you could meet on an ordinary day: a neighbour, a coach, a shopkeeper.
    DailyLife,
    /// A character from fiction.
    Fictional,
}

impl Category {
    pub const ALL: [Category; 3] = [
        Category::Celebrity,
        Category::DailyLife,
        Category::Fictional,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Celebrity => "celebrity",
            Category::DailyLife => "daily_life",
            Category::Fictional => "fictional",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The word a person reads.
    pub fn label(self) -> &'static str {
        match self {
            Category::Celebrity => "Celebrity",
            Category::DailyLife => "Daily life",
            Category::Fictional => "Fictional",
        }
    }
}

/// What the character is and has done: shapes *what* it says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Attributes {
    pub identity: String,
    pub interests: String,
    pub viewpoints: String,
    pub experiences: String,
    pub achievements: String,
    pub relationships: String,
    pub other: String,
}

/// How the character talks: shapes *how* it says things.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviours {
    pub linguistic_style: String,
    pub emotional_expression: String,
    pub interaction_patterns: String,
}

/// The structured CharacterGLM profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    pub attributes: Attributes,
    pub behaviours: Behaviours,
}

/// One greeting per Scenario: the first message of a new Session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Greetings {
    pub chit_chat: String,
    pub interview: String,
    pub companionship: String,
}

impl Greetings {
    /// The greeting for `scenario`, falling back to any greeting the character has.
    pub fn for_scenario(&self, scenario: Scenario) -> Option<&str> {
        let own = match scenario {
            Scenario::ChitChat => &self.chit_chat,
            Scenario::Interview => &self.interview,
            Scenario::Companionship => &self.companionship,
        };
        [own, &self.chit_chat, &self.interview, &self.companionship]
            .into_iter()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
    }
}

/// An example exchange that shows the character's voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub user: String,
    pub character: String,
}

/// A character the user can talk to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Character {
    /// Stable id: lowercase letters, digits and dashes.
    pub id: String,
    pub name: String,
    pub category: Category,
    /// One line for the gallery card.
    #[serde(default)]
    pub tagline: String,
    #[serde(default)]
    pub profile: Profile,
    #[serde(default)]
    pub greetings: Greetings,
    #[serde(default)]
    pub example_dialogue: Vec<Exchange>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// File name of the avatar in the data dir's `avatars/` folder; `None` draws initials.
    #[serde(default)]
    pub avatar: Option<String>,
    /// Free-text description (a card's `description`), for characters that came as cards;
    /// the prompt uses it beside the structured profile.
    #[serde(default)]
    pub description: String,
    /// A card's `personality` summary.
    #[serde(default)]
    pub personality: String,
    /// A card's `scenario`: the situation the chat starts in (not a Troupe Scenario).
    #[serde(default)]
    pub setting: String,
    /// Replaces Troupe's framing of the system prompt when set; `{{original}}` stands for it.
    #[serde(default)]
    pub system_prompt: String,
    /// Instructions placed after the chat history; `{{original}}` as above.
    #[serde(default)]
    pub post_history_instructions: String,
    /// Notes from the creator for the user; never sent to the model.
    #[serde(default)]
    pub creator_notes: String,
    /// More first messages the user can swipe between.
    #[serde(default)]
    pub alternate_greetings: Vec<String>,
    /// The character's lorebook (a card's `character_book`).
    #[serde(default)]
    pub lorebook: Option<card::Lorebook>,
    /// What a card carried that Troupe keeps only to write it back.
    #[serde(default)]
    pub card: card::CardMeta,
}

impl Profile {
    /// The profile as the paragraph the model reads. Empty fields are left out, so a sparse
    /// profile gives a short prompt rather than a list of blanks.
    pub fn to_prose(&self, name: &str) -> String {
        let a = &self.attributes;
        let b = &self.behaviours;
        let parts: [(&str, &str); 10] = [
            ("", &a.identity),
            ("Interests: ", &a.interests),
            ("Views: ", &a.viewpoints),
            ("Experiences: ", &a.experiences),
            ("Achievements: ", &a.achievements),
            ("People in their life: ", &a.relationships),
            ("", &a.other),
            ("How they speak: ", &b.linguistic_style),
            ("How they show feelings: ", &b.emotional_expression),
            ("How they engage with others: ", &b.interaction_patterns),
        ];
        let mut out = String::new();
        for (label, text) in parts {
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(label);
            out.push_str(text);
            if !text.ends_with(['.', '!', '?']) {
                out.push('.');
            }
        }
        if out.is_empty() {
            format!("{name} has no profile yet.")
        } else {
            out
        }
    }
}

impl Character {
    /// The first message of a new Session in `scenario`, with the card macros filled in.
    pub fn greeting(&self, scenario: Scenario) -> Option<String> {
        self.greetings
            .for_scenario(scenario)
            .map(|g| self.fill_macros(g))
    }

    /// Card text with its macros filled: `{{char}}` (and `<BOT>`) is the Character's name,
    /// `{{user}}` (and `<USER>`) the person chatting ("User" until personas exist).
    pub fn fill_macros(&self, text: &str) -> String {
        let name = if self.card.nickname.trim().is_empty() {
            self.name.as_str()
        } else {
            self.card.nickname.trim()
        };
        let mut out = text.to_string();
        for (pattern, value) in [
            ("{{char}}", name),
            ("{{Char}}", name),
            ("<BOT>", name),
            ("{{user}}", "User"),
            ("{{User}}", "User"),
            ("<USER>", "User"),
        ] {
            if out.contains(pattern) {
                out = out.replace(pattern, value);
            }
        }
        out
    }
}

/// Two-letter initials for the generated avatar.
pub fn initials(name: &str) -> String {
    let mut words = name
        .split_whitespace()
        .filter(|w| w.chars().next().is_some_and(char::is_alphanumeric));
    let first = words.next().and_then(|w| w.chars().next());
    let last = words.last().and_then(|w| w.chars().next());
    match (first, last) {
        (Some(f), Some(l)) => format!("{}{}", f.to_uppercase(), l.to_uppercase()),
        (Some(f), None) => f.to_uppercase().collect(),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_skips_empty_fields_and_ends_sentences() {
        let p = Profile {
            attributes: Attributes {
                identity: "A baker in Lisbon".into(),
                interests: "sourdough; fado".into(),
                ..Default::default()
            },
            behaviours: Behaviours {
                linguistic_style: "Warm, short sentences.".into(),
                ..Default::default()
            },
        };
        assert_eq!(
            p.to_prose("Marta"),
            "A baker in Lisbon. Interests: sourdough; fado. How they speak: Warm, short sentences."
        );
        assert_eq!(Profile::default().to_prose("X"), "X has no profile yet.");
    }

    #[test]
    fn greeting_falls_back_to_any_scenario() {
        let g = Greetings {
            interview: "Ask away.".into(),
            ..Default::default()
        };
        assert_eq!(g.for_scenario(Scenario::Interview), Some("Ask away."));
        assert_eq!(g.for_scenario(Scenario::Companionship), Some("Ask away."));
        assert_eq!(Greetings::default().for_scenario(Scenario::ChitChat), None);
    }

    #[test]
    fn initials_of_names() {
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("Sherlock"), "S");
        assert_eq!(initials("  "), "?");
        assert_eq!(initials("Countess Ada King Lovelace"), "CL");
    }
}
