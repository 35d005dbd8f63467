//! Character cards in and out: a card file (PNG, JSON, CHARX) or a lorebook imported with
//! everything checked before anything is written, and a Character exported as a card.

use std::path::Path;

use super::{now_ms, Troupe};
use crate::characters::{avatar, card, Category, Character};

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
                // Held to the editor's limits, so what imports can be edited and saved again.
                c.fit_to_limits();
                if let Some(p) = c.problems().first() {
                    return Err(fail(format!("{}: {}", p.field, p.message)));
                }
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
