//! The model manager and sampling from the command line: `troupe models` (list with fit
//! hints, `add`, `use`, `download`, the `catalog` and `get` from it) and `troupe sampling`
//! (show or change the settings' default, a Character's or a Session's). Settings changes are
//! written to settings.json, which the window reads at its next start.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};

use super::ModelsAction;
use crate::app::vocabulary::{preset, DownloadError, Fit, Sampling, PRESETS};
use crate::app::{SamplingScope, Troupe};

/// `troupe models [add|use|download|catalog|get]`.
pub async fn models(
    troupe: &Troupe,
    model: Option<PathBuf>,
    action: Option<ModelsAction>,
) -> anyhow::Result<()> {
    let mut settings = troupe.settings();
    match action {
        None => list(troupe, &settings, model),
        Some(ModelsAction::Add { path }) => {
            let path = std::path::absolute(&path).unwrap_or(path);
            if troupe.add_model(&mut settings, &path)? {
                settings.save(&troupe.paths.settings())?;
            }
            let m = troupe.describe_model(&path);
            println!("added {} ({})", path.display(), m.fit_reason);
            Ok(())
        }
        Some(ModelsAction::Use { path }) => {
            let path = std::path::absolute(&path).unwrap_or(path);
            troupe.choose_model(&mut settings, &path)?;
            settings.save(&troupe.paths.settings())?;
            println!("using {}", path.display());
            Ok(())
        }
        Some(ModelsAction::Download { repo, file }) => download(troupe, &repo, &file).await,
        Some(ModelsAction::Catalog) => {
            catalog(troupe, &settings, model);
            Ok(())
        }
        Some(ModelsAction::Get { id }) => {
            let mut last = Instant::now();
            let path = troupe
                .install_from_catalog(&mut settings, &id, |p| show(&mut last, p), || false)
                .await
                .map_err(|e| match e {
                    DownloadError::NotInCatalog(_) => {
                        anyhow::anyhow!("{e}: `troupe models catalog` lists them")
                    }
                    e => e.into(),
                })?;
            eprintln!();
            settings.save(&troupe.paths.settings())?;
            println!("using {}", path.display());
            Ok(())
        }
    }
}

/// `troupe models catalog`: one block per entry.
fn catalog(troupe: &Troupe, settings: &crate::app::vocabulary::Settings, model: Option<PathBuf>) {
    let in_use = troupe.model_file(settings, model.as_deref());
    for m in troupe.catalog(&in_use) {
        let e = m.entry;
        let state = match (&m.installed, m.in_use) {
            (_, true) => "in use",
            (Some(_), false) => "downloaded",
            (None, false) => "",
        };
        println!(
            "{:<20} {} · {} · {:.1} GB · {}k context · {}  {state}",
            e.id,
            e.name,
            e.licence,
            e.size_bytes as f64 / 1e9,
            e.context_length / 1024,
            fit_word(m.fit),
        );
        println!("{:<20} {} ({})", "", e.good_at, m.fit_reason);
    }
}

fn fit_word(fit: Fit) -> &'static str {
    match fit {
        Fit::Fits => "fits",
        Fit::MaySlow => "may be slow",
        Fit::WontFit => "won't fit",
        Fit::Unusable => "unusable",
    }
}

/// Download progress on stderr, twice a second.
fn show(last: &mut Instant, p: crate::app::vocabulary::DownloadProgress) {
    if p.resumed_from > 0 && p.done == p.resumed_from {
        eprintln!("resuming after {:.1} MB", p.resumed_from as f64 / 1e6);
    }
    if last.elapsed().as_millis() >= 500 || p.total == Some(p.done) {
        *last = Instant::now();
        match p.total {
            Some(t) if t > 0 => eprint!(
                "\r{:.1} / {:.1} MB ({:.0}%)   ",
                p.done as f64 / 1e6,
                t as f64 / 1e6,
                p.done as f64 * 100.0 / t as f64
            ),
            _ => eprint!("\r{:.1} MB   ", p.done as f64 / 1e6),
        }
    }
}

/// The list: this machine's memory, then one line per model file, `*` on the one in use.
fn list(
    troupe: &Troupe,
    settings: &crate::app::vocabulary::Settings,
    model: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mem = troupe.machine_memory();
    let in_use = troupe.model_file(settings, model.as_deref());
    let gb = |b: u64| b as f64 / 1e9;
    println!(
        "this machine: {:.1} GB of memory, {:.1} GB free{}",
        gb(mem.total),
        gb(mem.available),
        mem.gpu
            .map(|g| format!(", GPU {:.1} GB", gb(g)))
            .unwrap_or_default()
    );
    for m in troupe.models(settings, model.as_deref(), &mem) {
        let mark = if m.path == in_use { "*" } else { " " };
        let fit = fit_word(m.fit);
        match &m.header {
            Ok(h) => println!(
                "{mark} {}\t{} · {:.0} M params · {} · {} ctx · {:.0} MB\t{fit}: {}",
                m.path.display(),
                h.architecture,
                h.n_params as f64 / 1e6,
                h.quantization,
                h.context_length.unwrap_or(0),
                m.size_bytes as f64 / 1e6,
                m.fit_reason
            ),
            Err(e) => println!("{mark} {}\t{fit}: {e}", m.path.display()),
        }
    }
    Ok(())
}

/// `troupe models download REPO FILE`, with progress on stderr.
async fn download(troupe: &Troupe, repo: &str, file: &str) -> anyhow::Result<()> {
    let mut last = Instant::now();
    let path = troupe
        .download_model(repo, file, |p| show(&mut last, p), || false)
        .await?;
    eprintln!();
    let m = troupe.describe_model(&path);
    println!("downloaded {} ({})", path.display(), m.fit_reason);
    Ok(())
}

/// What `troupe sampling` is asked to change.
pub struct SamplingChange {
    /// Start from this preset.
    pub preset: Option<String>,
    /// FIELD=VALUE pairs.
    pub set: Vec<String>,
    /// Remove the Character's or Session's own setting.
    pub clear: bool,
}

/// `troupe sampling [--character ID | --session ID] [--preset P] [--set F=V]… [--clear]`:
/// applies the change, then prints the Sampling that applies there, as JSON.
pub fn sampling(
    troupe: &Troupe,
    character: Option<String>,
    session: Option<i64>,
    change: SamplingChange,
) -> anyhow::Result<()> {
    let settings = troupe.settings();
    let scope = match (&character, session) {
        (Some(c), _) => Some(SamplingScope::Character(c)),
        (None, Some(s)) => Some(SamplingScope::Session(s)),
        (None, None) => None,
    };
    let current = match scope {
        Some(scope) => troupe.sampling_at(&settings, scope)?.effective,
        None => settings.sampling.clone(),
    };
    let changing = change.preset.is_some() || !change.set.is_empty();
    if change.clear {
        if changing {
            bail!("--clear cannot be combined with --preset or --set");
        }
        let Some(scope) = scope else {
            bail!("--clear needs --character or --session");
        };
        troupe.set_sampling_at(scope, None)?;
    } else if changing {
        let new = changed(current, &change)?;
        match scope {
            Some(scope) => troupe.set_sampling_at(scope, Some(&new))?,
            None => {
                if let Err((field, why)) = new.validate() {
                    bail!("{field}: {why}");
                }
                let mut s = settings.clone();
                s.sampling = new;
                s.save(&troupe.paths.settings())
                    .context("cannot save the settings")?;
            }
        }
    }
    let settings = troupe.settings();
    let shown = match scope {
        Some(scope) => troupe.sampling_at(&settings, scope)?.effective,
        None => settings.sampling,
    };
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

/// `current`, or the preset, with the FIELD=VALUE changes applied.
fn changed(current: Sampling, change: &SamplingChange) -> anyhow::Result<Sampling> {
    let value = serde_json::to_value(match &change.preset {
        Some(name) => preset(name).with_context(|| {
            let names: Vec<_> = PRESETS.iter().map(|(n, _)| *n).collect();
            format!("no preset '{name}': use {}", names.join(", "))
        })?,
        None => current,
    })?;
    let base: Sampling = serde_json::from_value(value)?;
    base.with_changes(&change.set)
        .map_err(|e| anyhow::anyhow!("--set {e}"))
}
