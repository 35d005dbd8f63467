//! The profile retold by the model: a summary, a paraphrase and a self-introduction, as the
//! CharacterGLM paper augments its training profiles. The user asks for one in the editor,
//! reads it, edits it, and may choose it as the form the prompt uses (`Profile::uses`).
//!
//! Nothing here stores anything: the editor shows the text and the user saves it. Small models
//! echo their instructions or run on; the text is trimmed to whole sentences and refused when
//! it comes back empty.

use crate::characters::{Character, ProfileForm};
use crate::engine::{ChatMessage, ChatRole, Engine, EngineEvent, Sampling};

use super::prompt;
use super::Cancel;

/// Longest form, in tokens, the model may write.
pub const MAX_TOKENS: usize = 200;

/// How many draws `write` makes before it gives up on a form.
pub const ATTEMPTS: usize = 3;

/// Why a form could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    #[error("the prose form is the profile itself; the model writes the other forms")]
    NotWritten,
    #[error("the model wrote nothing usable; try again, or write it yourself")]
    Empty,
    #[error("the model failed: {0}")]
    Failed(String),
    /// The person pressed Stop; nothing was written.
    #[error("stopped")]
    Stopped,
}

/// The request for `form`: the character as the prompt knows it, then the instruction.
pub fn request(character: &Character, form: ProfileForm) -> Option<Vec<ChatMessage>> {
    let name = &character.name;
    let source = character.profile.to_prose(name);
    let mut about = format!("Profile of {name}: {source}");
    for text in [&character.description, &character.personality] {
        if !text.trim().is_empty() {
            about.push_str(&format!("\n{}", character.fill_macros(text.trim())));
        }
    }
    let instruction = match form {
        ProfileForm::Prose => return None,
        ProfileForm::Summary => format!(
            "Summarise who {name} is in two or three sentences, in the third person. Keep the \
             most important facts and how {name} talks."
        ),
        ProfileForm::Paraphrase => format!(
            "Rewrite this profile of {name} in your own words, as one paragraph in the third \
             person. Keep every fact; change the wording."
        ),
        ProfileForm::SelfIntro => {
            // Asked as the character itself (its own system prompt), a small model answers in
            // the first person; asked to write about it, it writes a biography.
            return Some(vec![
                ChatMessage::new(
                    ChatRole::System,
                    format!(
                        "{}\n\nSpeak as {name}, in the first person, in {name}'s own voice.",
                        prompt::character_prefix(character)
                    ),
                ),
                ChatMessage::new(
                    ChatRole::User,
                    "Please introduce yourself in three to five sentences: who you are, what \
                     you care about and what you have done.",
                ),
            ]);
        }
    };
    Some(vec![
        ChatMessage::new(
            ChatRole::System,
            "You write short, faithful texts about characters.",
        ),
        ChatMessage::new(ChatRole::User, format!("{about}\n\n{instruction}")),
    ])
}

/// Asks the engine for `form` of `character`'s profile and returns the text, trimmed to whole
/// sentences. Uses moderate sampling (a retelling, not a creative reply). `cancel` stops it at
/// once: the generation is dropped, which ends it in the engine.
pub async fn write(
    engine: &dyn Engine,
    character: &Character,
    form: ProfileForm,
    cancel: &Cancel,
) -> Result<String, FormError> {
    let messages = request(character, form).ok_or(FormError::NotWritten)?;
    let sampling = Sampling {
        temperature: 0.4,
        min_p: 0.05,
        repetition_penalty: 1.1,
        max_tokens: MAX_TOKENS,
        stop: prompt::stop_strings(),
        ..Sampling::greedy(MAX_TOKENS)
    };
    // A small model sometimes runs off into fragments ("187aschetier_curié…") and never ends
    // a sentence; such a draw is thrown away and the form asked for again.
    for _ in 0..ATTEMPTS {
        let mut generation = engine.generate(messages.clone(), sampling.clone());
        let mut text = String::new();
        loop {
            let event = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(FormError::Stopped),
                event = generation.recv() => event,
            };
            let Some(event) = event else { break };
            match event {
                EngineEvent::Text(piece) => text.push_str(&piece),
                EngineEvent::Finished { .. } => break,
                EngineEvent::Failed(reason) => return Err(FormError::Failed(reason)),
            }
        }
        let mut text = clean(&text);
        if form == ProfileForm::Summary {
            // Asked for three sentences, small models write eight.
            text = first_sentences(&text, 3);
        }
        if usable(&text) {
            return Ok(text);
        }
    }
    Err(FormError::Empty)
}

/// Whether cleaned text is worth showing: at least one whole sentence (`clean` has already cut
/// it at the last sentence end, so any sentence end means it ends on one).
fn usable(text: &str) -> bool {
    text.len() > 1 && text.contains(['.', '!', '?', '\u{2026}'])
}

/// The model's text without template tokens, a leading label ("Summary:") or a cut-off last
/// sentence.
fn clean(text: &str) -> String {
    let mut t = text;
    for stop in prompt::stop_strings() {
        if let Some(at) = t.find(stop.trim_start_matches('\n')) {
            t = &t[..at];
        }
    }
    let t = t.trim();
    let t = match t.split_once(':') {
        Some((label, rest))
            if label.split_whitespace().count() <= 2 && !label.contains(['.', ',', '\n']) =>
        {
            rest.trim()
        }
        _ => t,
    };
    super::tidy::trim_incomplete_sentence(t).trim().to_string()
}

/// The first `n` sentences of `text`.
fn first_sentences(text: &str, n: usize) -> String {
    let mut count = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?') {
            let next = text[i + 1..].chars().next();
            if next.is_none_or(char::is_whitespace) {
                count += 1;
                if count == n {
                    return text[..=i].to_string();
                }
            }
        }
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_drops_labels_template_tokens_and_half_sentences() {
        assert_eq!(
            clean("Summary: Ada writes programs. She loves num"),
            "Ada writes programs."
        );
        assert_eq!(clean("I am Ada.<|im_end|>junk"), "I am Ada.");
        assert_eq!(clean("  \n "), "");
        assert_eq!(
            clean("Note, however: this stays. Yes."),
            "Note, however: this stays. Yes."
        );
    }

    #[test]
    fn text_without_a_whole_sentence_is_not_usable() {
        assert!(usable("Ada writes programs."));
        assert!(usable("I am Ada!\u{201d}"));
        assert!(!usable(
            "Marie Curie was born on March 25, 187aschetier 1903 1904"
        ));
        assert!(!usable(""));
    }

    #[tokio::test]
    async fn a_model_that_never_ends_a_sentence_gets_a_clear_error() {
        let engine = crate::engine::scripted::ScriptedEngine::new(
            &["Marie ", "Curie ", "1903 ", "1904"],
            std::time::Duration::ZERO,
        );
        let c = crate::characters::builtin::all().remove(0);
        let err = write(&engine, &c, ProfileForm::Paraphrase, &Cancel::new())
            .await
            .unwrap_err();
        assert!(matches!(err, FormError::Empty), "{err}");
    }

    #[tokio::test]
    async fn stop_ends_the_writing() {
        let engine = crate::engine::scripted::ScriptedEngine::new(
            &["Marie ", "Curie ", "was ", "a ", "physicist."],
            std::time::Duration::from_secs(5),
        );
        let c = crate::characters::builtin::all().remove(0);
        let cancel = Cancel::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            stop.cancel();
        });
        let err = write(&engine, &c, ProfileForm::Paraphrase, &cancel)
            .await
            .unwrap_err();
        assert!(matches!(err, FormError::Stopped), "{err}");
    }

    #[test]
    fn summaries_keep_three_sentences() {
        assert_eq!(
            first_sentences("A. B is 3.5 m! C? D.", 3),
            "A. B is 3.5 m! C?"
        );
        assert_eq!(first_sentences("Only one", 3), "Only one");
    }

    #[test]
    fn every_written_form_has_a_request_that_names_the_character() {
        let c = crate::characters::builtin::all().remove(0);
        assert!(request(&c, ProfileForm::Prose).is_none());
        for form in [
            ProfileForm::Summary,
            ProfileForm::Paraphrase,
            ProfileForm::SelfIntro,
        ] {
            let m = request(&c, form).unwrap();
            let all = format!("{}{}", m[0].content, m[1].content);
            assert!(all.contains(&c.name));
            assert!(all.contains(&c.profile.attributes.identity));
        }
    }
}
