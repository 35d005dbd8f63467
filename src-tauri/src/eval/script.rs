//! A person's own probes (`troupe eval --script FILE`): a JSON file of turns to hold with each
//! Character, then checks — a question, the words a good reply has (any of them), the patterns
//! it must not have. Documented in docs/EVALUATION.md. A file that is not a valid script is an
//! error naming the file and the place; a check that cannot run is a problem naming the check,
//! and the other checks are still scored.

use std::path::Path;

use anyhow::{bail, Context as _};
use serde::Deserialize;

use crate::characters::{Character, Scenario};
use crate::conversation::Cancel;
use crate::engine::Engine;

use super::memory::excerpt;
use super::metrics::mentions;
use super::probe::Bench;
use super::{Options, Scores, Setup, Suite};

/// The largest script read.
const MAX_SCRIPT: u64 = 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Shown in the report (default: the file's name).
    #[serde(default)]
    pub name: String,
    /// chit_chat, interview or companionship (default chit_chat).
    #[serde(default, rename = "scenario")]
    scenario_name: Option<String>,
    #[serde(skip)]
    pub scenario: Option<Scenario>,
    /// Only these Characters (ids); default: every Character of the run.
    #[serde(default)]
    pub characters: Vec<String>,
    /// What the person says first, one message per turn; each is answered.
    #[serde(default)]
    pub turns: Vec<String>,
    /// Then push the conversation past the whole context with small talk, as the memory suite
    /// does.
    #[serde(default)]
    pub past_context: bool,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// The question; its exchange is removed after, so each check sees the same conversation.
    pub ask: String,
    /// A reply passes when it has any of these words or phrases (case-insensitive, whole
    /// words). Empty: nothing expected.
    #[serde(default)]
    pub expect: Vec<String>,
    /// A reply fails when it contains any of these (case-insensitive substrings).
    #[serde(default)]
    pub forbid: Vec<String>,
}

/// Reads and checks a script file.
pub fn load(path: &Path) -> anyhow::Result<Script> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read it", path.display()))?
        .len();
    if size > MAX_SCRIPT {
        bail!(
            "{}: {size} bytes; a script may be at most 1 MB",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read it (is it UTF-8 text?)", path.display()))?;
    let mut script: Script = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a probe script: {e}", path.display()))?;
    if let Some(name) = &script.scenario_name {
        script.scenario = Some(Scenario::parse(name).with_context(|| {
            format!(
                "{}: scenario \"{name}\" is not chit_chat, interview or companionship",
                path.display()
            )
        })?);
    }
    if script.checks.is_empty() {
        bail!("{}: the script has no checks", path.display());
    }
    for (i, c) in script.checks.iter().enumerate() {
        if c.ask.trim().is_empty() {
            bail!(
                "{}: check {} has no question (\"ask\")",
                path.display(),
                i + 1
            );
        }
        if c.expect.is_empty() && c.forbid.is_empty() {
            bail!(
                "{}: check {} (\u{201c}{}\u{201d}) expects nothing and forbids nothing",
                path.display(),
                i + 1,
                c.ask
            );
        }
    }
    if script.name.is_empty() {
        script.name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    Ok(script)
}

/// Runs `script` with each of `characters` it applies to: metric `pass` per check.
pub(crate) async fn run(
    engine: &dyn Engine,
    script: &Script,
    characters: &[Character],
    setup: &Setup,
    opts: &Options,
    cancel: &Cancel,
    scores: &mut Scores,
) {
    let scenario = script.scenario.unwrap_or(Scenario::ChitChat);
    for c in characters
        .iter()
        .filter(|c| script.characters.is_empty() || script.characters.contains(&c.id))
    {
        let item = format!("{}: script {}", c.id, script.name);
        if let Err(e) = run_one(engine, script, c, scenario, setup, opts, cancel, scores).await {
            scores.problem(item, format!("{e:#}"));
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_one(
    engine: &dyn Engine,
    script: &Script,
    c: &Character,
    scenario: Scenario,
    setup: &Setup,
    opts: &Options,
    cancel: &Cancel,
    scores: &mut Scores,
) -> anyhow::Result<()> {
    let mut bench = Bench::new(engine, c, setup, opts, cancel)?;
    let session = bench.session(scenario)?;
    for t in &script.turns {
        bench.say(session, t).await?;
    }
    if script.past_context {
        super::memory::push_past_context(&mut bench, session).await?;
    }
    for (i, check) in script.checks.iter().enumerate() {
        let reply = match bench.ask(session, &check.ask).await {
            Ok(r) => r,
            Err(e) => {
                scores.problem(
                    format!("{}: script {}, check {}", c.id, script.name, i + 1),
                    format!("{e:#}"),
                );
                continue;
            }
        };
        let expected = check.expect.is_empty() || mentions(&reply.text, &check.expect);
        let lower = reply.text.to_lowercase();
        let forbidden: Vec<&String> = check
            .forbid
            .iter()
            .filter(|f| lower.contains(&f.to_lowercase()))
            .collect();
        let pass = expected && forbidden.is_empty();
        scores.flag(Suite::Script, "pass", pass);
        if !pass {
            let why = if !expected {
                format!("expected one of {:?}", check.expect)
            } else {
                format!("has {forbidden:?}")
            };
            scores.note(
                format!("{}: script {}", c.id, script.name),
                format!(
                    "check {} \u{201c}{}\u{201d} failed: {why}; reply: {}",
                    i + 1,
                    check.ask,
                    excerpt(&reply.text)
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("troupe-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("s{}.json", text.len()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn bad_scripts_are_named_errors() {
        let e = load(&write("{\"checks\": [ {\"ask\": \"hi\", }]}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(".json: not a probe script") && e.contains("line 1"),
            "{e}"
        );
        let e = load(&write("{\"checks\": []}")).unwrap_err().to_string();
        assert!(e.contains("no checks"), "{e}");
        let e = load(&write("{\"checks\": [{\"ask\": \"Who are you?\"}]}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("check 1") && e.contains("expects nothing"),
            "{e}"
        );
        let e = load(&write(
            "{\"checks\": [{\"ask\": \"x\", \"expext\": [\"a\"]}]}",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `expext`"), "{e}");
        let ok = load(&write(
            "{\"scenario\": \"companionship\", \"turns\": [\"My dog is Rex.\"], \"checks\": [{\"ask\": \"My dog?\", \"expect\": [\"Rex\"]}]}",
        ))
        .unwrap();
        assert_eq!(ok.scenario, Some(Scenario::Companionship));
        assert!(ok.name.ends_with(".json"));
    }
}
