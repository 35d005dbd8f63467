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
mod scenario;

pub use scenario::Scenario;

use serde::{Deserialize, Serialize};

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
    /// The profile retold: a summary, a paraphrase, a self-introduction (the paper's data
    /// augmentation), written by the model and edited by the user.
    pub forms: ProfileForms,
    /// Which form the prompt uses.
    pub uses: ProfileForm,
}

/// The ways the profile can reach the prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileForm {
    /// The structured fields rendered to prose (`Profile::to_prose`).
    #[default]
    Prose,
    /// A short summary in the third person.
    Summary,
    /// The whole profile retold in other words.
    Paraphrase,
    /// The character introducing itself, in its own voice.
    SelfIntro,
}

impl ProfileForm {
    pub const ALL: [ProfileForm; 4] = [
        ProfileForm::Prose,
        ProfileForm::Summary,
        ProfileForm::Paraphrase,
        ProfileForm::SelfIntro,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileForm::Prose => "prose",
            ProfileForm::Summary => "summary",
            ProfileForm::Paraphrase => "paraphrase",
            ProfileForm::SelfIntro => "self_intro",
        }
    }

    pub fn parse(s: &str) -> Option<ProfileForm> {
        ProfileForm::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// The model-written forms of a profile; empty until written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileForms {
    pub summary: String,
    pub paraphrase: String,
    pub self_intro: String,
}

impl ProfileForms {
    pub fn get(&self, form: ProfileForm) -> Option<&str> {
        match form {
            ProfileForm::Prose => None,
            ProfileForm::Summary => Some(&self.summary),
            ProfileForm::Paraphrase => Some(&self.paraphrase),
            ProfileForm::SelfIntro => Some(&self.self_intro),
        }
    }

    pub fn set(&mut self, form: ProfileForm, text: String) {
        match form {
            ProfileForm::Prose => {}
            ProfileForm::Summary => self.summary = text,
            ProfileForm::Paraphrase => self.paraphrase = text,
            ProfileForm::SelfIntro => self.self_intro = text,
        }
    }
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

impl Profile {
    /// Whether no structured field is filled in (the forms do not count: they retell fields).
    pub fn is_blank(&self) -> bool {
        self.attributes == Attributes::default() && self.behaviours == Behaviours::default()
    }

    /// The text the prompt uses for the profile: the chosen form when it has been written,
    /// else the prose.
    pub fn text(&self, name: &str) -> String {
        match self.forms.get(self.uses).map(str::trim) {
            Some(t) if !t.is_empty() => t.to_string(),
            _ => self.to_prose(name),
        }
    }
}

/// Longest name, tagline, tag and any other text field a Character may have (in characters).
pub const MAX_NAME: usize = 80;
pub const MAX_TAGLINE: usize = 160;
pub const MAX_TAG: usize = 32;
pub const MAX_TAGS: usize = 24;
pub const MAX_TEXT: usize = 20_000;

/// Something wrong with a Character the user is editing: which field, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field's path as the editor names it: `name`, `attributes.identity`, `tags`,
    /// `example_dialogue.2.character`…
    pub field: String,
    pub message: String,
}

impl Character {
    /// A new, empty Character (daily life until the user picks), not yet stored.
    pub fn blank() -> Character {
        Character {
            id: String::new(),
            name: String::new(),
            category: Category::DailyLife,
            tagline: String::new(),
            profile: Profile::default(),
            greetings: Greetings::default(),
            example_dialogue: vec![],
            tags: vec![],
            avatar: None,
            description: String::new(),
            personality: String::new(),
            setting: String::new(),
            system_prompt: String::new(),
            post_history_instructions: String::new(),
            creator_notes: String::new(),
            alternate_greetings: vec![],
            lorebook: None,
            card: Default::default(),
        }
    }

    /// What must be fixed before this Character can be saved; empty when it can.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut problem = |field: &str, message: String| {
            out.push(Problem {
                field: field.to_string(),
                message,
            })
        };
        let chars = |s: &str| s.chars().count();
        if self.name.trim().is_empty() {
            problem("name", "Give the character a name.".into());
        } else if chars(&self.name) > MAX_NAME {
            problem(
                "name",
                format!(
                    "The name is {} characters; keep it to {MAX_NAME}.",
                    chars(&self.name)
                ),
            );
        }
        if chars(&self.tagline) > MAX_TAGLINE {
            problem(
                "tagline",
                format!(
                    "The tagline is {} characters; the gallery shows one line, keep it to {MAX_TAGLINE}.",
                    chars(&self.tagline)
                ),
            );
        }
        if self.tags.len() > MAX_TAGS {
            problem(
                "tags",
                format!("{} tags; keep it to {MAX_TAGS}.", self.tags.len()),
            );
        }
        for t in &self.tags {
            if t.trim().is_empty() || chars(t) > MAX_TAG || t.contains(',') {
                problem(
                    "tags",
                    format!("\"{t}\" is not a tag: one word or short phrase, up to {MAX_TAG} characters, no commas."),
                );
                break;
            }
        }
        let a = &self.profile.attributes;
        let b = &self.profile.behaviours;
        let f = &self.profile.forms;
        let g = &self.greetings;
        for (field, text) in [
            ("attributes.identity", &a.identity),
            ("attributes.interests", &a.interests),
            ("attributes.viewpoints", &a.viewpoints),
            ("attributes.experiences", &a.experiences),
            ("attributes.achievements", &a.achievements),
            ("attributes.relationships", &a.relationships),
            ("attributes.other", &a.other),
            ("behaviours.linguistic_style", &b.linguistic_style),
            ("behaviours.emotional_expression", &b.emotional_expression),
            ("behaviours.interaction_patterns", &b.interaction_patterns),
            ("forms.summary", &f.summary),
            ("forms.paraphrase", &f.paraphrase),
            ("forms.self_intro", &f.self_intro),
            ("greetings.chit_chat", &g.chit_chat),
            ("greetings.interview", &g.interview),
            ("greetings.companionship", &g.companionship),
            ("description", &self.description),
            ("personality", &self.personality),
            ("setting", &self.setting),
            ("system_prompt", &self.system_prompt),
            ("post_history_instructions", &self.post_history_instructions),
            ("creator_notes", &self.creator_notes),
        ] {
            if chars(text) > MAX_TEXT {
                problem(
                    field,
                    format!(
                        "This is {} characters; keep it to {MAX_TEXT} (the model reads about 4,000 tokens in all).",
                        chars(text)
                    ),
                );
            }
        }
        if self.profile.uses != ProfileForm::Prose
            && self
                .profile
                .forms
                .get(self.profile.uses)
                .is_some_and(|t| t.trim().is_empty())
        {
            problem(
                &format!("forms.{}", self.profile.uses.as_str()),
                "The prompt is set to use this form, but it is empty: write it, or choose another form.".into(),
            );
        }
        for (i, ex) in self.example_dialogue.iter().enumerate() {
            if ex.character.trim().is_empty() {
                problem(
                    &format!("example_dialogue.{i}.character"),
                    format!("Example {} has no reply from the character: write one or remove the example.", i + 1),
                );
            }
        }
        out
    }

    /// Brings a Character read from a card within the editor's limits where that loses no
    /// meaning: a name or tagline cut to length, tags cleaned (commas split into tags, empty
    /// ones dropped, at most `MAX_TAGS`), example exchanges without a reply dropped, an empty
    /// chosen form replaced by the prose. What remains of `problems()` (a text field over
    /// `MAX_TEXT`) is for the caller to refuse: cutting a description would change the character.
    pub fn fit_to_limits(&mut self) {
        let cut = |s: &mut String, max: usize| {
            if s.chars().count() > max {
                *s = s
                    .chars()
                    .take(max - 1)
                    .collect::<String>()
                    .trim_end()
                    .to_string()
                    + "…";
            }
        };
        cut(&mut self.name, MAX_NAME);
        cut(&mut self.tagline, MAX_TAGLINE);
        let mut tags: Vec<String> = Vec::new();
        for piece in self.tags.iter().flat_map(|t| t.split(',')) {
            let mut t = piece.trim().to_string();
            cut(&mut t, MAX_TAG);
            if !t.is_empty() && !tags.contains(&t) && tags.len() < MAX_TAGS {
                tags.push(t);
            }
        }
        self.tags = tags;
        self.example_dialogue
            .retain(|ex| !ex.character.trim().is_empty());
        if self
            .profile
            .forms
            .get(self.profile.uses)
            .is_some_and(|t| t.trim().is_empty())
        {
            self.profile.uses = ProfileForm::Prose;
        }
    }

    /// How readily the Character speaks unasked in a group, 0–1 (0.5 unless set). Kept where
    /// SillyTavern keeps it, a card's `extensions.talkativeness` (a number or a numeric
    /// string), so it travels with the card both ways.
    pub fn talkativeness(&self) -> f64 {
        let v = self.card.extensions.get("talkativeness");
        v.and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()))
            .filter(|t: &f64| t.is_finite())
            .map_or(0.5, |t| t.clamp(0.0, 1.0))
    }

    /// Sets `talkativeness` (clamped to 0–1).
    pub fn set_talkativeness(&mut self, t: f64) {
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.5
        };
        self.card
            .extensions
            .insert("talkativeness".into(), serde_json::json!(t));
    }

    /// The first message of a new Session in `scenario`, with the card macros filled in.
    pub fn greeting(&self, scenario: Scenario) -> Option<String> {
        self.greetings
            .for_scenario(scenario)
            .map(|g| self.fill_macros(g))
    }

    /// Card text with its macros filled: `{{char}}` (and `<BOT>`) is the Character's name,
    /// `{{user}}` (and `<USER>`) the person chatting ("User" until personas exist).
    pub fn fill_macros(&self, text: &str) -> String {
        self.fill_macros_as(text, "User")
    }

    /// `fill_macros` with the user's name (their persona's) for `{{user}}`.
    pub fn fill_macros_as(&self, text: &str, user: &str) -> String {
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
            ("{{user}}", user),
            ("{{User}}", user),
            ("<USER>", user),
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
            ..Default::default()
        };
        assert_eq!(
            p.to_prose("Marta"),
            "A baker in Lisbon. Interests: sourdough; fado. How they speak: Warm, short sentences."
        );
        assert_eq!(Profile::default().to_prose("X"), "X has no profile yet.");
    }

    #[test]
    fn problems_name_the_field_and_say_what_to_do() {
        let mut c = Character::blank();
        let fields = |c: &Character| {
            c.problems()
                .into_iter()
                .map(|p| p.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(&c), ["name"]);
        c.name = "Marta".into();
        assert!(c.problems().is_empty());
        c.name = "x".repeat(MAX_NAME + 1);
        c.tags = vec!["bread, cakes".into()];
        c.profile.attributes.identity = "y".repeat(MAX_TEXT + 1);
        c.profile.uses = ProfileForm::Summary;
        c.example_dialogue = vec![Exchange {
            user: "Hi".into(),
            character: " ".into(),
        }];
        assert_eq!(
            fields(&c),
            [
                "name",
                "tags",
                "attributes.identity",
                "forms.summary",
                "example_dialogue.0.character"
            ]
        );
        assert!(c.problems()[1].message.contains("no commas"));
        // Every built-in is valid.
        for b in builtin::all() {
            assert_eq!(b.problems(), vec![], "{}", b.id);
        }
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
