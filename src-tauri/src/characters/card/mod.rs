//! Character cards: the files SillyTavern, RisuAI, Chub and Backyard users trade.
//!
//! Contract:
//! - `read` takes a file's bytes and returns what it holds: a card (V1, V2 or V3, from a PNG's
//!   `ccv3` / `chara` text chunk, `ccv3` preferred, in tEXt, zTXt or iTXt anywhere in the file;
//!   from JSON; or from a CHARX zip's `card.json`, with its main icon) or a SillyTavern World Info
//!   file as a `Lorebook`. Bad input gives a `CardError` that names the problem, never a panic,
//!   and nothing is read past the limits below (file, text field, decompressed chunk).
//! - `to_character` / `from_character` map a card to a `Character` and back. Troupe's own fields
//!   (category, structured profile, a greeting per Scenario) travel in `extensions.troupe`;
//!   every other extension and every data field we do not know is kept and written back
//!   unchanged, so other apps' data survives a trip through Troupe.
//! - `write_png` (both `chara` as V2 and `ccv3` as V3), `write_json` (V3) and `write_charx` make
//!   the files; reading what they write gives the same `Character` back.
//!
//! No file IO here: the caller reads and writes files and adds the file name to errors.

mod charx;
mod parse;
mod png;
#[cfg(test)]
mod tests;
mod write;

pub use charx::write_charx;
pub use write::{write_json, write_png};

use charx::*;
use parse::*;
use png::*;
#[allow(unused_imports)]
use write::*;

use std::io::{Cursor, Read, Write};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{Category, Character, Exchange, Greetings, Profile};

/// Largest card file read (a CHARX may carry images).
pub const MAX_FILE_BYTES: usize = 64 << 20;
/// Largest single text field: no real card comes near it; a bigger one is an attack or damage.
pub const MAX_FIELD_BYTES: usize = 1 << 20;
/// How deep a card's JSON may nest. serde_json refuses to read past 128 levels, and a stored
/// Character wraps a card's extensions a few levels deeper: a card nested near that limit
/// imported but could never be opened again.
pub const MAX_DEPTH: usize = 64;
/// Largest decompressed zTXt/iTXt chunk or CHARX entry.
const MAX_INFLATED_BYTES: u64 = 32 << 20;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CardError {
    #[error("the file is {size} bytes, over the {limit}-byte limit for a card")]
    TooLarge { size: usize, limit: usize },
    #[error("the PNG is damaged: {0}")]
    BadPng(String),
    #[error("the PNG holds no character card (no `chara` or `ccv3` text chunk)")]
    NoCardInPng,
    #[error("the card's `{0}` chunk is not valid base64")]
    Base64(String),
    #[error("the card is not valid JSON: {0}")]
    Json(String),
    #[error("the card's text is not UTF-8")]
    NotUtf8,
    #[error("the card's `{field}` is {size} bytes, over the {limit}-byte limit")]
    FieldTooLarge {
        field: String,
        size: usize,
        limit: usize,
    },
    #[error("the card's `{field}` should be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("the CHARX archive is damaged: {0}")]
    BadCharx(String),
    #[error("the CHARX archive has no card.json")]
    NoCardJson,
    #[error("not a character card: a PNG, JSON or CHARX file was expected")]
    UnknownFormat,
    #[error("the card's JSON nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("not a character card: the JSON has none of a card's fields (name, description, first_mes…)")]
    NoCardFields,
}

/// One lorebook entry (the V2/V3 `character_book` entry).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoreEntry {
    pub keys: Vec<String>,
    pub content: String,
    pub enabled: bool,
    pub insertion_order: i64,
    pub case_sensitive: Option<bool>,
    pub name: String,
    pub comment: String,
    pub priority: Option<i64>,
    pub id: Option<Value>,
    pub selective: bool,
    pub secondary_keys: Vec<String>,
    pub constant: bool,
    /// "before_char" or "after_char" (or empty).
    pub position: String,
    pub use_regex: bool,
    pub extensions: Map<String, Value>,
}

/// A lorebook: a card's `character_book`, or a World Info file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Lorebook {
    pub name: String,
    pub description: String,
    pub scan_depth: Option<i64>,
    pub token_budget: Option<i64>,
    pub recursive_scanning: Option<bool>,
    pub extensions: Map<String, Value>,
    pub entries: Vec<LoreEntry>,
}

/// What a card file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Imported {
    /// A character and, when the file carries one, its picture (PNG, JPEG, WebP or GIF bytes).
    Card {
        character: Box<Character>,
        avatar: Option<Vec<u8>>,
    },
    /// A standalone lorebook (SillyTavern World Info).
    Lorebook(Lorebook),
}

/// Reads a card file's bytes.
pub fn read(bytes: &[u8]) -> Result<Imported, CardError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(CardError::TooLarge {
            size: bytes.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    if bytes.starts_with(PNG_SIGNATURE) {
        let json = png_card_json(bytes)?;
        let character = parse_card(&json)?;
        return Ok(Imported::Card {
            character: Box::new(character),
            avatar: Some(bytes.to_vec()),
        });
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return read_charx(bytes);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| CardError::NotUtf8)?;
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if !text.starts_with('{') {
        return Err(CardError::UnknownFormat);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| CardError::Json(e.to_string()))?;
    if is_world_info(&value) {
        return Ok(Imported::Lorebook(world_info(&value)?));
    }
    Ok(Imported::Card {
        character: Box::new(parse_value(value)?),
        avatar: None,
    })
}

/// Card data Troupe keeps only to write it back: what other apps use and Troupe does not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CardMeta {
    /// The card's example dialogue as written (`example_dialogue` is its parsed form).
    pub mes_example: String,
    pub creator: String,
    pub character_version: String,
    pub nickname: String,
    pub group_only_greetings: Vec<String>,
    pub source: Vec<String>,
    pub creation_date: Option<i64>,
    pub modification_date: Option<i64>,
    pub assets: Vec<Value>,
    /// Every extension but ours (`troupe`), unchanged.
    pub extensions: Map<String, Value>,
    /// Data fields this version of the spec (or Troupe) does not know, unchanged.
    pub extra: Map<String, Value>,
}

/// What Troupe adds to a card under `extensions.troupe`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TroupeExtension {
    pub(super) category: Category,
    #[serde(default)]
    pub(super) tagline: String,
    #[serde(default)]
    pub(super) profile: Profile,
    #[serde(default)]
    pub(super) greetings: Greetings,
    #[serde(default)]
    pub(super) example_dialogue: Vec<Exchange>,
}
