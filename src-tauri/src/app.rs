//! The composition root shared by the window and the CLI: opens the store under `Paths`,
//! installs the built-in Characters and their avatars on first run, and holds the engine
//! `Slot`. Both front ends build one `Troupe` and call into the core through it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::characters::builtin;
use crate::engine::{Sampling, Slot};
use crate::settings::{EngineChoice, Paths, Settings};
use crate::store::{self, Store};

/// Cheap to clone: the store and the engine slot are shared.
#[derive(Clone)]
pub struct Troupe {
    pub paths: Paths,
    pub store: Arc<Store>,
    pub engine: Slot,
}

impl Troupe {
    /// Opens the data directory: creates it, migrates the database and installs built-ins.
    pub fn open(paths: Paths) -> Result<Troupe, store::Error> {
        let _ = std::fs::create_dir_all(&paths.data);
        let store = Store::open(&paths.database())?;
        install_builtins(&store, &paths.avatars())?;
        Ok(Troupe {
            paths,
            store: Arc::new(store),
            engine: Slot::new().with_cache_dir(Paths::model_cache()),
        })
    }

    /// Current settings from settings.json (the desktop app passes its store's view instead).
    pub fn settings(&self) -> Settings {
        Settings::load(&self.paths.settings())
    }

    /// Starts the engine the settings choose: connects to the remote server, or loads the
    /// model file (`override_path` first, see `model_file`). Returns once it is ready or failed;
    /// the slot's status says which.
    pub async fn start_engine(
        &self,
        settings: &Settings,
        override_path: Option<&Path>,
    ) -> Result<(), crate::engine::Error> {
        match settings.engine {
            EngineChoice::Remote if override_path.is_none() => {
                self.engine.connect(settings.remote.config()).await
            }
            _ => {
                self.engine
                    .load(self.model_file(settings, override_path))
                    .await
            }
        }
    }

    /// The model manager's list: the models folder, the files the user added, and the model in
    /// use even when it lives elsewhere (`--model`, `TROUPE_MODEL`).
    pub fn models(
        &self,
        settings: &Settings,
        override_path: Option<&Path>,
        mem: &crate::engine::models::Memory,
    ) -> Vec<crate::engine::models::ModelFile> {
        let mut extra = settings.models.clone();
        extra.push(self.model_file(settings, override_path));
        crate::engine::models::list(&self.paths.models(), &extra, mem)
    }

    /// The model file that would be loaded now.
    pub fn model_file(&self, settings: &Settings, override_path: Option<&Path>) -> PathBuf {
        settings.model_file(&self.paths, override_path)
    }
}

/// Sampling for a reply, from the settings, with the chat's stop strings.
pub fn sampling(settings: &Settings) -> Sampling {
    Sampling {
        stop: crate::conversation::prompt::stop_strings(),
        ..settings.sampling.clone()
    }
}

/// Where a Sampling setting lives: a Character's default or a Session's override.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplingScope<'a> {
    Character(&'a str),
    Session(i64),
}

/// Which level a Session's or Character's effective Sampling comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplingSource {
    Session,
    Character,
    Settings,
}

/// The Sampling set at a scope (if any) and what applies there.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingLevel {
    pub own: Option<Sampling>,
    pub effective: Sampling,
    pub source: SamplingSource,
}

/// Session override → Character default → settings. A stored value that no longer parses is
/// skipped, not fatal.
pub fn sampling_at(
    store: &Store,
    settings: &Settings,
    scope: SamplingScope,
) -> Result<SamplingLevel, store::Error> {
    let parse = |j: Option<String>| j.and_then(|j| serde_json::from_str::<Sampling>(&j).ok());
    let (session, character) = match scope {
        SamplingScope::Character(id) => (None, parse(store.character_sampling(id)?)),
        SamplingScope::Session(id) => {
            let (s, c) = store.sampling_for_session(id)?;
            (parse(s), parse(c))
        }
    };
    let own = match scope {
        SamplingScope::Character(_) => character.clone(),
        SamplingScope::Session(_) => session.clone(),
    };
    let (effective, source) = match (session, character) {
        (Some(s), _) => (s, SamplingSource::Session),
        (None, Some(c)) => (c, SamplingSource::Character),
        (None, None) => (settings.sampling.clone(), SamplingSource::Settings),
    };
    Ok(SamplingLevel {
        own,
        effective,
        source,
    })
}

/// Why a Sampling could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SetSamplingError {
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Sets (or, with `None`, clears) the Sampling at `scope`, after validating it.
pub fn set_sampling_at(
    store: &Store,
    scope: SamplingScope,
    sampling: Option<&Sampling>,
) -> Result<(), SetSamplingError> {
    if let Some(s) = sampling {
        s.validate()
            .map_err(|(field, why)| SetSamplingError::Invalid(field, why))?;
    }
    let json = sampling.map(|s| serde_json::to_string(s).expect("Sampling serialises"));
    match scope {
        SamplingScope::Character(id) => store.set_character_sampling(id, json.as_deref())?,
        SamplingScope::Session(id) => store.set_session_sampling(id, json.as_deref())?,
    }
    Ok(())
}

/// Sampling for the next reply in a Session, with the chat's stop strings.
pub fn sampling_for_session(
    store: &Store,
    settings: &Settings,
    session_id: i64,
) -> Result<Sampling, store::Error> {
    let level = sampling_at(store, settings, SamplingScope::Session(session_id))?;
    Ok(Sampling {
        stop: crate::conversation::prompt::stop_strings(),
        ..level.effective
    })
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn install_builtins(store: &Store, avatars: &Path) -> Result<(), store::Error> {
    // Avatars first: a character row never points at a file that is not there. A file the user
    // replaced is left alone, like the row.
    let _ = std::fs::create_dir_all(avatars);
    for (name, bytes) in builtin::avatars() {
        let path = avatars.join(name);
        if !path.exists() {
            if let Err(e) = std::fs::write(&path, bytes) {
                tracing::warn!("cannot write avatar {}: {e}", path.display());
            }
        }
    }
    let now = now_ms();
    for c in builtin::all() {
        store.insert_character_if_absent(&c, true, now)?;
    }
    Ok(())
}
