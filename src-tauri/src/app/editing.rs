//! Making and keeping Characters: the editor's save (validated, the picture written before the
//! row and the old one removed after it), duplicates, ids, the trash.

use std::path::PathBuf;

use super::{now_ms, remove_avatar_files, Troupe};
use crate::characters::{self, avatar, Character};
use crate::store;

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

    /// Deletes every Character in the trash for good, with its Sessions and picture, after a
    /// snapshot of the library as it was (Settings → Backups can bring them back).
    pub fn empty_trash(&self) -> Result<usize, super::BackupError> {
        crate::backup::take(&self.paths, crate::backup::Reason::Purge, None, Vec::new())?;
        let gone = self.store.purge_trash(i64::MAX, now_ms())?;
        remove_avatar_files(&self.paths.avatars(), &gone);
        Ok(gone.len())
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

fn remove_paths(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}
