//! The composition root shared by the window and the CLI: opens the store under `Paths`,
//! installs the built-in Characters and their avatars on first run, and holds the engine
//! `Slot`. Both front ends build one `Troupe` and call into the core through it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::characters::{self, avatar, builtin, card, Category, Character};
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
        // The trash keeps a deleted Character for `TRASH_DAYS`; older ones go for good.
        let cutoff = now_ms() - TRASH_DAYS * 24 * 3600 * 1000;
        match store.purge_trash(cutoff, now_ms()) {
            Ok(gone) => remove_avatar_files(&paths.avatars(), &gone),
            Err(e) => tracing::warn!("cannot empty old trash: {e}"),
        }
        if let Err(e) = store.purge_sessions(cutoff) {
            tracing::warn!("cannot remove old deleted conversations: {e}");
        }
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

impl Troupe {
    /// Starts a Session: its greeting is the Scenario's; in companionship, when the user has
    /// talked with this Character before, it picks up from the last conversation.
    pub fn start_session(
        &self,
        character_id: &str,
        scenario: crate::conversation::Scenario,
        persona_id: Option<i64>,
    ) -> Result<store::Session, store::Error> {
        use crate::conversation::Scenario;
        let c = self.store.get_character(character_id)?;
        let mut greeting = c.greeting(scenario).unwrap_or_default();
        if scenario == Scenario::Companionship {
            let last = self
                .store
                .list_sessions(character_id)?
                .into_iter()
                .find(|s| s.scenario == Scenario::Companionship);
            if let Some(last) = last {
                let facts: Vec<String> = self
                    .store
                    .memories_for_session(last.id)?
                    .into_iter()
                    .filter(|m| m.kind == store::MemoryKind::Fact && m.session_id == Some(last.id))
                    .map(|m| m.content)
                    .collect();
                let said = self
                    .store
                    .list_messages(last.id)?
                    .into_iter()
                    .rev()
                    .find(|m| m.role == store::Role::User)
                    .map(|m| m.content);
                if let Some(recall) = crate::conversation::memory::pick_up(&facts, said.as_deref())
                {
                    greeting = if greeting.trim().is_empty() {
                        format!("Welcome back! {recall}")
                    } else {
                        format!("{}\n\n{recall}", greeting.trim())
                    };
                }
            }
        }
        let s = self.store.create_session(
            character_id,
            scenario,
            scenario.label(),
            Some(greeting.as_str()),
            now_ms(),
        )?;
        if let Some(p) = persona_id {
            self.store.set_session_persona(s.id, p)?;
        }
        self.store.get_session(s.id)
    }
}

/// Days a deleted Character waits in the trash before it is removed for good.
pub const TRASH_DAYS: i64 = 30;

/// Removes the avatar files (and thumbnails) of Characters deleted for good.
fn remove_avatar_files(dir: &Path, gone: &[Character]) {
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

/// What a save does to a Character's picture.
pub enum AvatarChange {
    Keep,
    Remove,
    /// A new picture (any format `avatar` reads), and where to crop it.
    Set {
        bytes: Vec<u8>,
        crop: Option<avatar::Crop>,
    },
}

/// Why an edited Character was not saved. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// Fields to fix, each with its message.
    #[error("{}", .0.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join(" "))]
    Invalid(Vec<characters::Problem>),
    #[error("the picture: {0}")]
    Avatar(#[from] avatar::AvatarError),
    #[error("cannot write the picture: {0}")]
    Io(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Troupe {
    /// Saves a Character from the editor: a new one when `is_new` (its id is made from its
    /// name), else the stored one with this id. Validates first; writes the new picture
    /// before the row and removes the old picture after it, so the row never points at a
    /// missing file and a failed save leaves no stray files.
    pub fn save_character(
        &self,
        mut c: Character,
        change: AvatarChange,
        is_new: bool,
    ) -> Result<Character, EditError> {
        c.name = c.name.trim().to_string();
        c.tags = c
            .tags
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        c.tags.dedup();
        let problems = c.problems();
        if !problems.is_empty() {
            return Err(EditError::Invalid(problems));
        }
        let old_avatar = if is_new {
            c.id = self.unique_id(&c.name)?;
            None
        } else {
            self.store.get_character(&c.id)?.avatar
        };
        let dir = self.paths.avatars();
        let mut written = Vec::new();
        match change {
            AvatarChange::Keep => c.avatar = old_avatar.clone(),
            AvatarChange::Remove => c.avatar = None,
            AvatarChange::Set { bytes, crop } => {
                let pictures = avatar::prepare(&bytes, crop)?;
                // A new name each time: the window caches pictures by URL.
                let name = format!("{}-{:x}.png", c.id, now_ms());
                std::fs::create_dir_all(&dir).map_err(|e| EditError::Io(e.to_string()))?;
                for (file, data) in [
                    (name.clone(), &pictures.full),
                    (avatar::thumb_name(&name), &pictures.thumb),
                ] {
                    let path = dir.join(file);
                    if let Err(e) = std::fs::write(&path, data) {
                        let _ = std::fs::remove_file(&path);
                        remove_paths(&written);
                        return Err(EditError::Io(e.to_string()));
                    }
                    written.push(path);
                }
                c.avatar = Some(name);
            }
        }
        let saved = if is_new {
            self.store.insert_character(&c, now_ms())
        } else {
            self.store.update_character(&c, now_ms())
        };
        if let Err(e) = saved {
            remove_paths(&written);
            return Err(e.into());
        }
        if old_avatar.is_some() && old_avatar != c.avatar {
            let old = Character {
                avatar: old_avatar,
                ..c.clone()
            };
            remove_avatar_files(&dir, std::slice::from_ref(&old));
        }
        Ok(c)
    }

    /// A copy of a Character, named "… (copy)", with its own copy of the picture and no
    /// Sessions.
    pub fn duplicate_character(&self, id: &str) -> Result<Character, EditError> {
        let mut c = self.store.get_character(id)?;
        c.name = format!("{} (copy)", c.name);
        if c.name.chars().count() > characters::MAX_NAME {
            c.name = c.name.chars().take(characters::MAX_NAME).collect();
        }
        let change = match c.avatar.take() {
            Some(name) => match std::fs::read(self.paths.avatars().join(&name)) {
                Ok(bytes) => AvatarChange::Set { bytes, crop: None },
                Err(_) => AvatarChange::Remove,
            },
            None => AvatarChange::Remove,
        };
        self.save_character(c, change, true)
    }

    /// Moves a Character to the trash (restorable for `TRASH_DAYS` days).
    pub fn trash_character(&self, id: &str) -> Result<(), store::Error> {
        self.store.trash_character(id, now_ms())
    }

    /// Deletes every Character in the trash for good, with its Sessions and picture.
    pub fn empty_trash(&self) -> Result<usize, store::Error> {
        let gone = self.store.purge_trash(i64::MAX, now_ms())?;
        remove_avatar_files(&self.paths.avatars(), &gone);
        Ok(gone.len())
    }
}

fn remove_paths(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// A card file that could not be imported, or a Character that could not be exported: which
/// file or Character, and what is wrong. Nothing in the library changed.
#[derive(Debug, thiserror::Error)]
#[error("{subject}: {problem}")]
pub struct CardError {
    pub subject: String,
    pub problem: String,
}

/// What importing a file did.
#[derive(Debug)]
pub enum Imported {
    /// A new Character, with its id.
    Character(Box<Character>),
    /// A lorebook's entries added to a Character's lorebook.
    Lorebook { character: String, entries: usize },
}

/// The file formats a Character exports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardFormat {
    Png,
    Json,
    Charx,
}

impl CardFormat {
    pub fn extension(self) -> &'static str {
        match self {
            CardFormat::Png => "png",
            CardFormat::Json => "json",
            CardFormat::Charx => "charx",
        }
    }
}

impl Troupe {
    /// Imports a card file (PNG, JSON, CHARX) as a new Character, or a lorebook file (World
    /// Info) into `lorebook_for`'s lorebook. Everything is read and checked before anything is
    /// written, so a bad file changes nothing.
    pub fn import_card(
        &self,
        path: &Path,
        lorebook_for: Option<&str>,
    ) -> Result<Imported, CardError> {
        let subject = path.display().to_string();
        let fail = |problem: String| CardError {
            subject: subject.clone(),
            problem,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| fail(e.to_string()))?
            .len();
        if size > card::MAX_FILE_BYTES as u64 {
            return Err(fail(format!(
                "the file is {size} bytes, over the {}-byte limit for a card",
                card::MAX_FILE_BYTES
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        self.import_card_bytes(&subject, &bytes, lorebook_for)
    }

    /// `import_card` for bytes already in memory (a file dropped on the window); `subject`
    /// names them in errors.
    pub fn import_card_bytes(
        &self,
        subject: &str,
        bytes: &[u8],
        lorebook_for: Option<&str>,
    ) -> Result<Imported, CardError> {
        let fail = |problem: String| CardError {
            subject: subject.to_string(),
            problem,
        };
        match card::read(bytes).map_err(|e| fail(e.to_string()))? {
            card::Imported::Lorebook(book) => {
                let Some(id) = lorebook_for else {
                    return Err(fail(format!(
                        "this is a lorebook ({} entries), not a character: import it into a \
                         character's lorebook",
                        book.entries.len()
                    )));
                };
                let mut c = self
                    .store
                    .get_character(id)
                    .map_err(|e| fail(e.to_string()))?;
                let entries = book.entries.len();
                match &mut c.lorebook {
                    Some(own) => own.entries.extend(book.entries),
                    None => c.lorebook = Some(book),
                }
                self.store
                    .update_character(&c, now_ms())
                    .map_err(|e| fail(e.to_string()))?;
                Ok(Imported::Lorebook {
                    character: c.id,
                    entries,
                })
            }
            card::Imported::Card { character, avatar } => {
                let mut c = *character;
                let pictures = match &avatar {
                    Some(bytes) => Some(
                        avatar::prepare(bytes, None)
                            .map_err(|e| fail(format!("its picture: {e}")))?,
                    ),
                    None => None,
                };
                c.id = self.unique_id(&c.name).map_err(|e| fail(e.to_string()))?;
                let dir = self.paths.avatars();
                let mut written = Vec::new();
                let result = (|| -> Result<(), String> {
                    if let Some(p) = &pictures {
                        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                        let name = format!("{}.png", c.id);
                        for (file, data) in [
                            (name.clone(), &p.full),
                            (avatar::thumb_name(&name), &p.thumb),
                        ] {
                            let path = dir.join(&file);
                            std::fs::write(&path, data).map_err(|e| e.to_string())?;
                            written.push(path);
                        }
                        c.avatar = Some(name);
                    }
                    self.store
                        .insert_character_if_absent(&c, false, now_ms())
                        .map_err(|e| e.to_string())?;
                    Ok(())
                })();
                if let Err(problem) = result {
                    for path in written {
                        let _ = std::fs::remove_file(path);
                    }
                    return Err(fail(problem));
                }
                Ok(Imported::Character(Box::new(c)))
            }
        }
    }

    /// A Character as a card file's bytes.
    pub fn export_card(&self, id: &str, format: CardFormat) -> Result<Vec<u8>, CardError> {
        let fail = |problem: String| CardError {
            subject: id.to_string(),
            problem,
        };
        let c = self
            .store
            .get_character(id)
            .map_err(|e| fail(e.to_string()))?;
        // The stored avatar is already a square PNG: embedded as it is. Anything else (a file
        // the user swapped in by hand) goes through `avatar::prepare` first.
        let picture = || -> Vec<u8> {
            c.avatar
                .as_ref()
                .and_then(|name| std::fs::read(self.paths.avatars().join(name)).ok())
                .and_then(|bytes| {
                    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
                        Some(bytes)
                    } else {
                        avatar::prepare(&bytes, None).ok().map(|a| a.full)
                    }
                })
                .unwrap_or_else(|| plain_avatar(c.category))
        };
        Ok(match format {
            CardFormat::Json => card::write_json(&c),
            CardFormat::Png => card::write_png(&c, &picture()).map_err(|e| fail(e.to_string()))?,
            CardFormat::Charx => card::write_charx(&c, Some(&picture())),
        })
    }

    /// An id for a new Character named `name`: its name in lowercase words joined by dashes,
    /// numbered when taken.
    pub fn unique_id(&self, name: &str) -> Result<String, store::Error> {
        let mut base: String = name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        base = base
            .split('-')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        base.truncate(40);
        let base = base.trim_end_matches('-').to_string();
        let base = if base.is_empty() {
            "character".to_string()
        } else {
            base
        };
        let mut id = base.clone();
        let mut n = 1;
        while self.store.has_character(&id)? {
            n += 1;
            id = format!("{base}-{n}");
        }
        Ok(id)
    }
}

/// A 512 px square in the Category's colour, for exporting a Character that has no picture
/// (the window draws initials over the same colour).
fn plain_avatar(category: Category) -> Vec<u8> {
    let rgb = match category {
        // ui/src/app.css: --celebrity, --daily_life, --fictional.
        Category::Celebrity => [0x6d, 0x4a, 0xff],
        Category::DailyLife => [0xe8, 0x77, 0x2e],
        Category::Fictional => [0x2a, 0x9d, 0x8f],
    };
    let img = image::RgbImage::from_pixel(avatar::FULL, avatar::FULL, image::Rgb(rgb));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encoding into memory");
    out
}
