//! Wire types of the Characters area (`ui/src/api/characters.ts`): the gallery's cards, a
//! Character's page, the editor's form and preview, card import results.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::app::vocabulary::{self as domain, Category};

/// What importing one dropped or picked file did.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    /// The file's name.
    pub file: String,
    /// The new Character's id, when the file was a card.
    pub character_id: Option<String>,
    /// Lorebook entries added, when the file was a lorebook.
    pub lore_entries: Option<usize>,
    /// Why the file was not imported (the library is unchanged), else null.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(rename = "Category")]
pub enum CategoryJson {
    Celebrity,
    DailyLife,
    Fictional,
}

impl From<Category> for CategoryJson {
    fn from(c: Category) -> Self {
        match c {
            Category::Celebrity => CategoryJson::Celebrity,
            Category::DailyLife => CategoryJson::DailyLife,
            Category::Fictional => CategoryJson::Fictional,
        }
    }
}

/// A gallery card.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CharacterSummary {
    pub id: String,
    pub name: String,
    pub category: CategoryJson,
    pub tagline: String,
    /// URL of the avatar's 128 px thumbnail, or null to draw initials.
    pub avatar_url: Option<String>,
    pub initials: String,
    /// Unix ms of the last chat, if any.
    pub last_chat_at: Option<i64>,
    pub tags: Vec<String>,
    pub favourite: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Unix ms it went to the trash; null in the gallery.
    pub deleted_at: Option<i64>,
}

/// URL the window loads an avatar file from (served by the `avatar` protocol in `desktop`).
pub fn avatar_url(file: &str) -> String {
    format!("avatar://localhost/{file}")
}

impl From<domain::CharacterSummary> for CharacterSummary {
    fn from(c: domain::CharacterSummary) -> Self {
        CharacterSummary {
            initials: domain::initials(&c.name),
            id: c.id,
            name: c.name,
            category: c.category.into(),
            tagline: c.tagline,
            avatar_url: c
                .avatar
                .as_deref()
                .map(|a| avatar_url(&domain::thumb_name(a))),
            last_chat_at: c.last_chat_at,
            tags: c.tags,
            favourite: c.favourite,
            created_at: c.created_at,
            updated_at: c.updated_at,
            deleted_at: c.deleted_at,
        }
    }
}

/// What the chat view shows of a Character.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CharacterDetail {
    pub id: String,
    pub name: String,
    pub category: CategoryJson,
    pub tagline: String,
    pub avatar_url: Option<String>,
    pub initials: String,
    pub tags: Vec<String>,
    /// The profile as the prose the model reads.
    pub profile_prose: String,
}

impl From<domain::Character> for CharacterDetail {
    fn from(c: domain::Character) -> Self {
        CharacterDetail {
            // A Character from a card usually has its description and no structured profile.
            profile_prose: if c.profile.is_blank()
                && c.profile.uses == domain::ProfileForm::Prose
                && !c.description.trim().is_empty()
            {
                c.fill_macros(c.description.trim())
            } else {
                c.profile.text(&c.name)
            },
            initials: domain::initials(&c.name),
            avatar_url: c.avatar.as_deref().map(avatar_url),
            id: c.id,
            name: c.name,
            category: c.category.into(),
            tagline: c.tagline,
            tags: c.tags,
        }
    }
}

/// The CharacterGLM attributes: what the Character says.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Attributes")]
pub struct AttributesJson {
    pub identity: String,
    pub interests: String,
    pub viewpoints: String,
    pub experiences: String,
    pub achievements: String,
    pub relationships: String,
    pub other: String,
}

/// The CharacterGLM behaviours: how the Character says it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Behaviours")]
pub struct BehavioursJson {
    pub linguistic_style: String,
    pub emotional_expression: String,
    pub interaction_patterns: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(rename = "ProfileForm")]
pub enum ProfileFormJson {
    #[default]
    Prose,
    Summary,
    Paraphrase,
    SelfIntro,
}

impl From<ProfileFormJson> for domain::ProfileForm {
    fn from(f: ProfileFormJson) -> Self {
        use crate::app::vocabulary::ProfileForm as F;
        match f {
            ProfileFormJson::Prose => F::Prose,
            ProfileFormJson::Summary => F::Summary,
            ProfileFormJson::Paraphrase => F::Paraphrase,
            ProfileFormJson::SelfIntro => F::SelfIntro,
        }
    }
}

impl From<domain::ProfileForm> for ProfileFormJson {
    fn from(f: domain::ProfileForm) -> Self {
        use crate::app::vocabulary::ProfileForm as F;
        match f {
            F::Prose => ProfileFormJson::Prose,
            F::Summary => ProfileFormJson::Summary,
            F::Paraphrase => ProfileFormJson::Paraphrase,
            F::SelfIntro => ProfileFormJson::SelfIntro,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "ProfileForms")]
pub struct ProfileFormsJson {
    pub summary: String,
    pub paraphrase: String,
    pub self_intro: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Greetings")]
pub struct GreetingsJson {
    pub chit_chat: String,
    pub interview: String,
    pub companionship: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(rename = "Exchange")]
pub struct ExchangeJson {
    pub user: String,
    pub character: String,
}

/// Everything the editor edits of a Character. What it does not show (a card's lorebook,
/// extensions, sampling) is kept as stored when it saves.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CharacterEdit {
    /// Null for a Character not saved yet.
    pub id: Option<String>,
    pub name: String,
    pub category: CategoryJson,
    pub tagline: String,
    pub tags: Vec<String>,
    pub attributes: AttributesJson,
    pub behaviours: BehavioursJson,
    pub forms: ProfileFormsJson,
    /// Which form of the profile the prompt uses.
    pub uses: ProfileFormJson,
    pub greetings: GreetingsJson,
    pub alternate_greetings: Vec<String>,
    pub example_dialogue: Vec<ExchangeJson>,
    pub description: String,
    pub personality: String,
    pub setting: String,
    pub system_prompt: String,
    pub post_history_instructions: String,
    pub creator_notes: String,
    /// How readily the Character speaks up in a group, 0–1 (a card's
    /// `extensions.talkativeness`, as SillyTavern keeps it).
    #[serde(default = "half")]
    pub talkativeness: f64,
    /// The stored picture (read only: a new one comes with `save_character`).
    pub avatar_url: Option<String>,
}

impl From<domain::Character> for CharacterEdit {
    fn from(c: domain::Character) -> Self {
        let talkativeness = c.talkativeness();
        let a = c.profile.attributes;
        let b = c.profile.behaviours;
        let f = c.profile.forms;
        CharacterEdit {
            id: Some(c.id),
            name: c.name,
            category: c.category.into(),
            tagline: c.tagline,
            tags: c.tags,
            attributes: AttributesJson {
                identity: a.identity,
                interests: a.interests,
                viewpoints: a.viewpoints,
                experiences: a.experiences,
                achievements: a.achievements,
                relationships: a.relationships,
                other: a.other,
            },
            behaviours: BehavioursJson {
                linguistic_style: b.linguistic_style,
                emotional_expression: b.emotional_expression,
                interaction_patterns: b.interaction_patterns,
            },
            forms: ProfileFormsJson {
                summary: f.summary,
                paraphrase: f.paraphrase,
                self_intro: f.self_intro,
            },
            uses: c.profile.uses.into(),
            greetings: GreetingsJson {
                chit_chat: c.greetings.chit_chat,
                interview: c.greetings.interview,
                companionship: c.greetings.companionship,
            },
            alternate_greetings: c.alternate_greetings,
            example_dialogue: c
                .example_dialogue
                .into_iter()
                .map(|e| ExchangeJson {
                    user: e.user,
                    character: e.character,
                })
                .collect(),
            description: c.description,
            personality: c.personality,
            setting: c.setting,
            system_prompt: c.system_prompt,
            post_history_instructions: c.post_history_instructions,
            talkativeness,
            creator_notes: c.creator_notes,
            avatar_url: c.avatar.as_deref().map(avatar_url),
        }
    }
}

fn half() -> f64 {
    0.5
}

impl CharacterEdit {
    /// The edit applied over `base` (the stored Character, or a blank one for a new Character):
    /// the fields the editor shows are replaced, the rest kept.
    pub fn apply(self, mut base: domain::Character) -> domain::Character {
        use crate::app::vocabulary::{Attributes, Behaviours, Exchange, Greetings, ProfileForms};
        let a = self.attributes;
        let b = self.behaviours;
        let f = self.forms;
        base.name = self.name;
        base.category = match self.category {
            CategoryJson::Celebrity => Category::Celebrity,
            CategoryJson::DailyLife => Category::DailyLife,
            CategoryJson::Fictional => Category::Fictional,
        };
        base.tagline = self.tagline;
        base.tags = self.tags;
        base.profile.attributes = Attributes {
            identity: a.identity,
            interests: a.interests,
            viewpoints: a.viewpoints,
            experiences: a.experiences,
            achievements: a.achievements,
            relationships: a.relationships,
            other: a.other,
        };
        base.profile.behaviours = Behaviours {
            linguistic_style: b.linguistic_style,
            emotional_expression: b.emotional_expression,
            interaction_patterns: b.interaction_patterns,
        };
        base.profile.forms = ProfileForms {
            summary: f.summary,
            paraphrase: f.paraphrase,
            self_intro: f.self_intro,
        };
        base.profile.uses = self.uses.into();
        base.greetings = Greetings {
            chit_chat: self.greetings.chit_chat,
            interview: self.greetings.interview,
            companionship: self.greetings.companionship,
        };
        base.alternate_greetings = self.alternate_greetings;
        base.example_dialogue = self
            .example_dialogue
            .into_iter()
            .map(|e| Exchange {
                user: e.user,
                character: e.character,
            })
            .collect();
        base.description = self.description;
        base.personality = self.personality;
        base.setting = self.setting;
        base.system_prompt = self.system_prompt;
        base.post_history_instructions = self.post_history_instructions;
        base.creator_notes = self.creator_notes;
        if (base.talkativeness() - self.talkativeness).abs() > 1e-9 {
            // Only a change is written, so a card without the field keeps not having it.
            base.set_talkativeness(self.talkativeness);
        }
        base
    }
}

/// A field the editor must show as wrong, and why.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Problem {
    /// The field's path, e.g. `name`, `attributes.identity`, `example_dialogue.2.character`.
    pub field: String,
    pub message: String,
}

/// What the editor's preview shows while the user types.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CharacterPreview {
    /// The profile as the prompt gives it (the chosen form, or the prose).
    pub profile_text: String,
    /// The structured fields as prose, whichever form the prompt uses.
    pub prose: String,
    /// The opening prompt exactly as the model reads it, when a model is loaded; else the
    /// messages it is made of.
    pub prompt: String,
    /// Its length in the model's tokens, when a model is loaded.
    pub tokens: Option<usize>,
    /// Whether `prompt` is the model's own template rendering.
    pub exact: bool,
    /// Tokens the model reads in all (the context), for the "N of M" figure.
    pub context_tokens: usize,
    /// Why the token count is missing, when it is.
    pub note: Option<String>,
    pub problems: Vec<Problem>,
}

/// A picture chosen in the editor, with the square the user framed (see `avatar::Crop`).
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AvatarUpload {
    /// The file's bytes, base64.
    pub data: String,
    pub x: f32,
    pub y: f32,
    pub scale: f32,
}
