//! The outside benchmarks, read from the user's data folder (`--data`; Troupe ships none of
//! their files): RoleBench's role-specific test (`rolebench/*.jsonl`: role, question, reference
//! answers) and InCharacter's BFI interview (`incharacter/BFI.json`, `characters.json`,
//! `characters_labels.json`). Their characters are not Troupe's built-ins, so each becomes a
//! scratch Character that is only its name, as the benchmarks prompt them; the replies go
//! through the same conversation code. Every file is bounded in size and parsed without
//! panics: a bad file is an error naming it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _};
use serde::Deserialize;

use crate::characters::{Character, Scenario};
use crate::conversation::{Cancel, ReplyStats};
use crate::engine::Engine;

use super::metrics::{first_score, rouge_l};
use super::probe::Bench;
use super::{Better, Options, Scores, Setup, Suite};

/// The largest benchmark file read (the RoleBench test is 1.4 MB).
const MAX_FILE: u64 = 32 * 1024 * 1024;

fn read(path: &Path) -> anyhow::Result<String> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read it", path.display()))?
        .len();
    if size > MAX_FILE {
        bail!(
            "{}: {size} bytes, more than a benchmark file may be",
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("{}: cannot read it", path.display()))
}

/// A benchmark character as a scratch Character: its name and nothing else.
fn named(name: &str) -> Character {
    let id: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut c: Character = serde_json::from_value(serde_json::json!({
        "id": format!("bench-{}", id.trim_matches('-')),
        "name": name,
        "category": "fictional",
    }))
    .expect("a name is a Character");
    c.profile.attributes.identity = format!("{name}, as the stories tell it");
    c
}

#[derive(Deserialize)]
struct RoleItem {
    role: String,
    question: String,
    generated: Vec<String>,
}

/// ROUGE-L of replies against RoleBench's references: the roles with the most questions,
/// `opts.questions` questions each (the first in the file), asked in an interview Session.
pub(crate) async fn rolebench(
    engine: &dyn Engine,
    setup: &Setup,
    opts: &Options,
    dir: &Path,
    cancel: &Cancel,
    scores: &mut Scores,
    speed: &mut Vec<ReplyStats>,
) -> anyhow::Result<()> {
    let folder = dir.join("rolebench");
    let file = std::fs::read_dir(&folder)
        .with_context(|| format!("{}: no RoleBench folder", folder.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .min()
        .with_context(|| format!("{}: no .jsonl file", folder.display()))?;
    let mut by_role: BTreeMap<String, Vec<RoleItem>> = BTreeMap::new();
    for (i, line) in read(&file)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RoleItem>(line) {
            Ok(item) if !item.generated.is_empty() => {
                by_role.entry(item.role.clone()).or_default().push(item)
            }
            Ok(_) => {}
            Err(e) => scores.problem(
                format!("{} line {}", file.display(), i + 1),
                format!("not a RoleBench item: {e}"),
            ),
        }
    }
    let mut roles: Vec<(String, Vec<RoleItem>)> = by_role.into_iter().collect();
    roles.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    for (role, items) in roles.into_iter().take(opts.roles) {
        let character = named(&role);
        let mut bench = Bench::new(engine, &character, setup, opts, cancel)?;
        let session = bench.session(Scenario::Interview)?;
        for item in items.iter().take(opts.questions) {
            let reply = bench.ask(session, &item.question).await;
            match reply {
                Ok(r) => {
                    let best = item
                        .generated
                        .iter()
                        .map(|g| rouge_l(&r.text, g))
                        .fold(0.0, f64::max);
                    scores.add(Suite::Rolebench, "rouge_l", best, Better::Higher, "F1");
                }
                Err(e) if cancel.is_cancelled() => return Err(e),
                Err(e) => scores.problem(format!("rolebench: {role}"), format!("{e:#}")),
            }
        }
        speed.append(&mut bench.speed);
    }
    Ok(())
}

/// A reply without a number, read as agreement (4), disagreement (2) or neither (3) from how it
/// opens: a small model answers "Yes, I…" far more often than "4".
fn agreement(reply: &str) -> u32 {
    let words = super::metrics::words(reply);
    let opening: Vec<&str> = words.iter().take(6).map(String::as_str).collect();
    let yes = [
        "yes",
        "definitely",
        "absolutely",
        "certainly",
        "indeed",
        "course",
        "always",
    ];
    let no = [
        "no", "not", "never", "don't", "rarely", "hardly", "nope", "i'm not",
    ];
    let first_yes = opening.iter().position(|w| yes.contains(w));
    let first_no = opening.iter().position(|w| no.contains(w));
    match (first_yes, first_no) {
        (Some(y), Some(n)) if y < n => 4,
        (Some(_), None) => 4,
        (_, Some(_)) => 2,
        (None, None) => 3,
    }
}

#[derive(Deserialize)]
struct Bfi {
    reverse: Vec<u32>,
    questions: BTreeMap<String, BfiQuestion>,
}

#[derive(Deserialize)]
struct BfiQuestion {
    rewritten_en: String,
    dimension: String,
}

#[derive(Deserialize)]
struct InCharacter {
    alias: Vec<String>,
}

#[derive(Deserialize)]
struct Labels {
    annotation: BTreeMap<String, BTreeMap<String, BTreeMap<String, Label>>>,
}

#[derive(Deserialize)]
struct Label {
    #[serde(rename = "type")]
    kind: String,
}

/// The answer asked for after each BFI item (InCharacter's choice instruction, in the
/// Character's own voice).
const SCALE: &str = "Answer with a number from 1 (strongly disagree) to 5 (strongly agree) \
                     first, then say why in one sentence.";

/// An InCharacter-style interview: each English character with labels answers the 44 BFI
/// items; its five dimension scores (reverse-keyed items flipped, averaged) are compared with
/// the fixture's high/low labels (those marked X, neither, are left out).
pub(crate) async fn bfi(
    engine: &dyn Engine,
    setup: &Setup,
    opts: &Options,
    dir: &Path,
    cancel: &Cancel,
    scores: &mut Scores,
    speed: &mut Vec<ReplyStats>,
) -> anyhow::Result<()> {
    let folder = dir.join("incharacter");
    let parse = |name: &str| -> anyhow::Result<String> { read(&folder.join(name)) };
    let bfi: Bfi = serde_json::from_str(&parse("BFI.json")?).with_context(|| {
        format!(
            "{}: not InCharacter's BFI file",
            folder.join("BFI.json").display()
        )
    })?;
    let characters: BTreeMap<String, InCharacter> =
        serde_json::from_str(&parse("characters.json")?).with_context(|| {
            format!(
                "{}: not InCharacter's characters",
                folder.join("characters.json").display()
            )
        })?;
    let labels: Labels =
        serde_json::from_str(&parse("characters_labels.json")?).with_context(|| {
            format!(
                "{}: not InCharacter's labels",
                folder.join("characters_labels.json").display()
            )
        })?;
    let mut items: Vec<(u32, &BfiQuestion)> = bfi
        .questions
        .iter()
        .filter_map(|(k, q)| Some((k.parse().ok()?, q)))
        .collect();
    items.sort_by_key(|(k, _)| *k);
    let chosen: Vec<(&String, &InCharacter)> = characters
        .iter()
        .filter(|(k, c)| k.ends_with("-en") && !c.alias.is_empty())
        .filter(|(k, _)| {
            labels
                .annotation
                .get(*k)
                .is_some_and(|l| l.contains_key("BFI"))
        })
        .take(opts.bfi_characters)
        .collect();
    for (key, who) in chosen {
        let name = who.alias.iter().max_by_key(|a| a.len()).expect("not empty");
        let mut bench = Bench::new(engine, &named(name), setup, opts, cancel)?;
        let session = bench.session(Scenario::Interview)?;
        let mut by_dimension: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (number, q) in &items {
            let reply = bench
                .ask(session, &format!("{} {SCALE}", q.rewritten_en))
                .await;
            let text = match reply {
                Ok(r) => r.text,
                Err(e) if cancel.is_cancelled() => return Err(e),
                Err(e) => {
                    scores.problem(format!("bfi: {name}, item {number}"), format!("{e:#}"));
                    continue;
                }
            };
            let answer = first_score(&text, 1, 5);
            scores.flag(Suite::Bfi, "answered_with_a_number", answer.is_some());
            scores.note(
                format!("bfi: {name}"),
                format!(
                    "item {number} \u{201c}{}\u{201d}: {}",
                    q.rewritten_en,
                    super::memory::excerpt(&text)
                ),
            );
            let mut x = f64::from(answer.unwrap_or_else(|| agreement(&text)));
            if bfi.reverse.contains(number) {
                x = 6.0 - x;
            }
            by_dimension.entry(q.dimension.clone()).or_default().push(x);
        }
        speed.append(&mut bench.speed);
        let expected = &labels.annotation[key.as_str()]["BFI"];
        let mut line = Vec::new();
        for (dimension, xs) in &by_dimension {
            let score = super::metrics::mean(xs);
            line.push(format!("{dimension} {score:.2}"));
            let Some(label) = expected.get(dimension) else {
                continue;
            };
            let predicted = if score > 3.0 {
                "H"
            } else if score < 3.0 {
                "L"
            } else {
                "?"
            };
            if label.kind == "H" || label.kind == "L" {
                scores.flag(Suite::Bfi, "accuracy", predicted == label.kind);
            }
        }
        scores.note(format!("bfi: {name}"), line.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn answers_without_a_number_are_read_by_their_opening() {
        assert_eq!(super::agreement("Yes, I love a crowd."), 4);
        assert_eq!(super::agreement("No, not really, I keep to myself."), 2);
        assert_eq!(super::agreement("Well... it depends on the day."), 3);
    }
}
