//! The characters Troupe ships, from the repository's `characters/` folder, compiled in so an
//! installed binary needs no data files. The desktop app and the CLI install them on first run
//! with `Store::insert_character_if_absent`, so an update never overwrites a user's edits.

use super::Character;

/// `characters/<id>.json` and `characters/<id>.png`, for each id.
macro_rules! builtins {
    ($($id:literal),* $(,)?) => {
        &[$((
            include_str!(concat!("../../../characters/", $id, ".json")),
            concat!($id, ".png"),
            include_bytes!(concat!("../../../characters/", $id, ".png")),
        )),*]
    };
}

/// (character JSON, avatar file name, avatar PNG bytes)
const FILES: &[(&str, &str, &[u8])] = builtins![
    "ada-lovelace",
    "marie-curie",
    "leonardo-da-vinci",
    "marisol-vega",
    "walt-okafor",
    "priya-raman",
    "sherlock-holmes",
    "elizabeth-bennet",
    "captain-isolde-marrow",
];

/// Every built-in Character.
pub fn all() -> Vec<Character> {
    FILES
        .iter()
        .map(|(json, _, _)| {
            serde_json::from_str(json).expect("built-in characters are valid (tested)")
        })
        .collect()
}

/// The built-in avatar images: (file name, PNG bytes).
pub fn avatars() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    FILES.iter().map(|(_, name, bytes)| (*name, *bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::characters::Category;
    use crate::characters::Scenario;

    #[test]
    fn builtins_are_complete() {
        let all = all();
        for category in Category::ALL {
            assert!(
                all.iter().any(|c| c.category == category),
                "no built-in {category:?}"
            );
        }
        for c in &all {
            let a = &c.profile.attributes;
            let b = &c.profile.behaviours;
            for (field, text) in [
                ("identity", &a.identity),
                ("interests", &a.interests),
                ("viewpoints", &a.viewpoints),
                ("experiences", &a.experiences),
                ("achievements", &a.achievements),
                ("relationships", &a.relationships),
                ("linguistic_style", &b.linguistic_style),
                ("emotional_expression", &b.emotional_expression),
                ("interaction_patterns", &b.interaction_patterns),
            ] {
                assert!(!text.trim().is_empty(), "{}: empty {field}", c.id);
            }
            for s in Scenario::ALL {
                let own = match s {
                    Scenario::ChitChat => &c.greetings.chit_chat,
                    Scenario::Interview => &c.greetings.interview,
                    Scenario::Companionship => &c.greetings.companionship,
                };
                assert!(!own.trim().is_empty(), "{}: no {s:?} greeting", c.id);
            }
            let avatar = c.avatar.as_deref().expect("built-ins have avatars");
            let (_, bytes) = avatars()
                .find(|(n, _)| *n == avatar)
                .expect("avatar file is embedded");
            let img = image::load_from_memory(bytes).expect("avatar decodes");
            assert_eq!((img.width(), img.height()), (512, 512), "{}", c.id);
        }
    }
}
