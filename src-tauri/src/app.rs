//! The composition root shared by the window and the CLI: opens the store under `Paths`,
//! installs the built-in Characters and their avatars on first run, and holds the engine
//! `Slot`. Both front ends build one `Troupe` and call into the core through it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::characters::builtin;
use crate::engine::{Sampling, Slot};
use crate::settings::{Paths, Settings};
use crate::store::{self, Store};

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
            engine: Slot::new(),
        })
    }

    /// Current settings from settings.json (the desktop app passes its store's view instead).
    pub fn settings(&self) -> Settings {
        Settings::load(&self.paths.settings())
    }

    /// The model file that would be loaded now.
    pub fn model_file(&self, settings: &Settings, override_path: Option<&Path>) -> PathBuf {
        settings.model_file(&self.paths, override_path)
    }
}

/// Sampling for a reply, from the settings.
pub fn sampling(settings: &Settings) -> Sampling {
    Sampling {
        temperature: settings.temperature,
        top_p: settings.top_p,
        max_tokens: settings.max_reply_tokens,
        stop: crate::conversation::prompt::stop_strings(),
    }
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
