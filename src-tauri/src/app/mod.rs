//! The core's one door. Every front end (the window, the CLI, and the local API to come) builds
//! one `Troupe` and calls its operations: a front end translates its input, calls one operation
//! and renders the result; the rules (validation, one reply per Session, what runs in the
//! background, where a Sampling comes from) live here or below, never in a front end.
//!
//! `Troupe` is also the composition root: it opens the store under `Paths`, installs the
//! built-in Characters and their avatars on first run, and holds the engine `Slot`. Its
//! operations are grouped by concept: `library` (reading and keeping Characters, Sessions,
//! Messages, Memories, Personas), `editing` (the editor's save, duplicates, the trash), `cards`
//! (import and export), `sessions` (starting one), `eval` (measuring Characters), `chat` (replies
//! and the work around them), `groups` (several Characters in one Session), `api` (the local
//! API: Characters as models, its queue),
//! `sampling`, and below (`start_engine`, `models`) the engine.
//!
//! The vocabulary the front ends speak, the core's own types, is re-exported here, so a front
//! end names no other module of the crate (tests/architecture.rs checks it).

mod api;
mod arena;
mod backups;
mod cards;
mod chat;
mod editing;
mod eval;
mod groups;
mod library;
mod models;
mod ratings;
mod sampling;
mod sessions;
mod training_data;

pub use crate::conversation::Cancel;
pub use api::{
    ApiChat, ApiError, ApiModel, ApiReply, ApiSampling, API_QUEUE, CHARACTER_PREFIX, RETRY_AFTER_S,
};
pub use arena::{wilson, ArenaError, Compared, Contender, PairResult, Tally};
pub use backups::{BackupError, Restored, Upkeep};
pub use cards::{CardError, CardFormat, Imported};
pub use chat::Rewrite;
pub use editing::{AvatarChange, EditError};
pub use eval::{differences, Difference, EvalError, EvalRequest, Evaluation, KeptRun};
pub use groups::{CastMember, GroupError};
pub use library::{Error, Preview};
pub use models::CatalogModel;
pub use ratings::{scores, RateError, METRICS};
pub use sampling::{
    sampling, sampling_at, sampling_for_session, set_sampling_at, SamplingLevel, SamplingScope,
    SamplingSource, SetSamplingError,
};
pub use training_data::{parse_day, DataError, DataFilter, DataReport};

/// The vocabulary of the front ends: the core's types they take and give.
pub mod vocabulary {
    pub use crate::backup::{Manifest, Reason as SnapshotReason, Snapshot};
    pub use crate::characters::avatar::{thumb_name, Crop};
    pub use crate::characters::{
        initials, Attributes, Behaviours, Category, Character, Exchange, Greetings, ProfileForm,
        ProfileForms, Scenario,
    };
    pub use crate::conversation::assemble::CONTEXT_CAP;
    pub use crate::conversation::forms::FormError;
    pub use crate::conversation::group::Spoken;
    pub use crate::conversation::prompt::PromptRecord;
    pub use crate::conversation::{ReplyStats, TurnError, TurnEvent};
    pub use crate::engine::download::{Error as DownloadError, Progress as DownloadProgress};
    pub use crate::engine::models::{Fit, Memory as MachineMemory, ModelFile};
    pub use crate::engine::sampling::{preset, PRESETS};
    pub use crate::engine::{ChatMessage, ChatRole, EngineStatus, Error as EngineError, Sampling};
    pub use crate::eval::{
        judge::RUBRICS, Better, Metric, Note, Options as EvalOptions, Problem,
        Progress as EvalProgress, Report, Setup, Suite,
    };
    pub use crate::settings::{
        ApiSettings, BackupSettings, EngineChoice, InvalidSetting, Paths, PromptCacheMb,
        RemoteSettings, Settings, Theme, OLD_KEYS as OLD_SETTING_KEYS,
    };
    pub use crate::store::{
        Averages as RatingAverages, CharacterSummary, Counts, Error as StoreError, Group,
        Member as GroupMember, Memory, MemoryKind, MergeReport, Message, MessageStatus, Persona,
        Rating, Role, Scores, SearchHit, Session, Strategy, Undone,
    };
}

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::characters::{avatar, builtin, Character};
use crate::engine::{EngineStatus, Slot};
use crate::settings::{EngineChoice, Paths, Settings};
use crate::store::{self, Store};

/// Cheap to clone: the store, the engine slot and what runs are shared.
#[derive(Clone)]
pub struct Troupe {
    pub paths: Paths,
    /// The core's own parts, for the core and its tests; front ends call `Troupe`'s operations.
    pub store: Arc<Store>,
    pub engine: Slot,
    /// The arena's second engine (another model, or the server), kept loaded between turns.
    contender_slot: Slot,
    activity: Arc<chat::Activity>,
    /// The local API's turns at the engine.
    api_queue: Arc<api::ApiQueue>,
}

impl Troupe {
    /// Opens the data directory: creates it, migrates the database (after a snapshot of it as
    /// it was) and installs built-ins. Opening changes nothing else: the trash's purge is the
    /// window's `upkeep`, so a read-only CLI command never runs it.
    pub fn open(paths: Paths) -> Result<Troupe, store::Error> {
        // The library is private to its user: the folder 0700, the database files 0600.
        if let Err(e) = crate::settings::private_dir(&paths.data) {
            tracing::warn!("cannot make {} private: {e}", paths.data.display());
        }
        if let Some(found) = store::pending_migrations(&paths.database())? {
            let snapshot =
                crate::backup::take(&paths, crate::backup::Reason::Migration, None, Vec::new())
                    .map_err(|e| store::Error::NoSnapshot(e.to_string()))?;
            tracing::info!("schema {found} kept in {} before migrating", snapshot.id);
        }
        let store = Store::open(&paths.database())?;
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", paths.database().display()));
            if file.exists() {
                if let Err(e) = crate::settings::private_file(&file) {
                    tracing::warn!("cannot make {} private: {e}", file.display());
                }
            }
        }
        install_builtins(&store, &paths.avatars())?;
        Ok(Troupe {
            paths,
            store: Arc::new(store),
            engine: Slot::new().with_cache_dir(Paths::model_cache()),
            contender_slot: Slot::new().with_cache_dir(Paths::model_cache()),
            activity: Default::default(),
            api_queue: Default::default(),
        })
    }

    /// What the engine is doing: loading, ready (with the model and device) or failed.
    pub fn engine_status(&self) -> EngineStatus {
        self.engine.status()
    }

    /// The Stop button of a model that is loading: the previous model, if any, serves again.
    /// False when nothing was loading.
    pub fn stop_loading(&self) -> bool {
        self.engine.stop_loading()
    }

    /// Every change of `engine_status`, for a front end that shows it live.
    pub fn watch_engine(&self) -> tokio::sync::watch::Receiver<EngineStatus> {
        self.engine.subscribe()
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
        self.use_memory_settings(settings);
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

    /// Applies the settings' memory bounds to the engine at once, loaded or not, without a
    /// reload: the prompt cache's budget.
    pub fn use_memory_settings(&self, settings: &Settings) {
        crate::engine::prompt_cache::set_budget(settings.prompt_cache_mb.bytes());
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

/// Unix ms as "2026-12-03 14:05 UTC", for lists a person reads.
pub fn utc_time(ms: i64) -> String {
    let (y, mo, d, h, mi, _) = crate::backup::civil(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
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
        let thumb = avatars.join(avatar::thumb_name(name));
        if !thumb.exists() {
            if let Ok(a) = avatar::prepare(bytes, None) {
                let _ = std::fs::write(&thumb, a.thumb);
            }
        }
    }
    let now = now_ms();
    for c in builtin::all() {
        store.insert_character_if_absent(&c, true, now)?;
    }
    Ok(())
}

/// Days a deleted Character waits in the trash before it is removed for good.
pub const TRASH_DAYS: i64 = 30;

/// Removes the avatar files (and thumbnails) of Characters deleted for good.
pub(crate) fn remove_avatar_files(dir: &Path, gone: &[Character]) {
    let builtin_files: Vec<&str> = builtin::avatars().map(|(n, _)| n).collect();
    for name in gone.iter().filter_map(|c| c.avatar.as_deref()) {
        // A built-in's picture is reinstalled from the binary anyway; harmless to keep.
        if builtin_files.contains(&name) {
            continue;
        }
        let _ = std::fs::remove_file(dir.join(name));
        let _ = std::fs::remove_file(dir.join(avatar::thumb_name(name)));
    }
}
