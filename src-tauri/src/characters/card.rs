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

use std::io::{Cursor, Read, Write};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{Category, Character, Exchange, Greetings, Profile};

/// Largest card file read (a CHARX may carry images).
pub const MAX_FILE_BYTES: usize = 64 << 20;
/// Largest single text field: no real card comes near it; a bigger one is an attack or damage.
pub const MAX_FIELD_BYTES: usize = 1 << 20;
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

// ---------------------------------------------------------------------------------------------
// PNG

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A PNG's chunks as (type, data), CRCs checked, up to IEND.
fn png_chunks(bytes: &[u8]) -> Result<Vec<([u8; 4], &[u8])>, CardError> {
    let mut chunks = Vec::new();
    let mut at = PNG_SIGNATURE.len();
    loop {
        if at + 8 > bytes.len() {
            return Err(CardError::BadPng(
                "it ends before its last chunk (truncated)".into(),
            ));
        }
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let kind: [u8; 4] = bytes[at + 4..at + 8].try_into().expect("4 bytes");
        let end = at
            .checked_add(12)
            .and_then(|x| x.checked_add(len))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                CardError::BadPng(format!(
                    "chunk {} runs past the end of the file (truncated)",
                    chunk_name(&kind)
                ))
            })?;
        let data = &bytes[at + 8..at + 8 + len];
        let crc = u32::from_be_bytes(bytes[end - 4..end].try_into().expect("4 bytes"));
        let mut h = crc32fast::Hasher::new();
        h.update(&kind);
        h.update(data);
        if h.finalize() != crc {
            return Err(CardError::BadPng(format!(
                "chunk {} fails its checksum (CRC)",
                chunk_name(&kind)
            )));
        }
        chunks.push((kind, data));
        at = end;
        if &kind == b"IEND" {
            return Ok(chunks);
        }
    }
}

/// A chunk type as a reader can see it: its four letters, or its bytes when they are not letters.
fn chunk_name(kind: &[u8; 4]) -> String {
    if kind.iter().all(u8::is_ascii_alphabetic) {
        String::from_utf8_lossy(kind).into_owned()
    } else {
        format!("{kind:02x?}")
    }
}

fn inflate(data: &[u8]) -> Result<Vec<u8>, CardError> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| CardError::BadPng(format!("a compressed text chunk is damaged: {e}")))?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err(CardError::BadPng(
            "a compressed text chunk inflates past 32 MB".into(),
        ));
    }
    Ok(out)
}

/// The PNG's text chunks as (keyword, value bytes).
fn png_texts(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, CardError> {
    let mut out = Vec::new();
    for (kind, data) in png_chunks(bytes)? {
        let Some(nul) = data.iter().position(|&b| b == 0) else {
            continue;
        };
        let keyword = String::from_utf8_lossy(&data[..nul]).into_owned();
        let rest = &data[nul + 1..];
        let value = match &kind {
            b"tEXt" => rest.to_vec(),
            b"zTXt" => inflate(rest.get(1..).unwrap_or_default())?,
            b"iTXt" => {
                // compression flag, method, language\0, translated keyword\0, text
                let (&flag, rest) = rest.split_first().unwrap_or((&0, &[]));
                let rest = rest.get(1..).unwrap_or_default();
                let mut parts = rest.splitn(3, |&b| b == 0);
                let (_, _, text) = (parts.next(), parts.next(), parts.next().unwrap_or_default());
                if flag == 1 {
                    inflate(text)?
                } else {
                    text.to_vec()
                }
            }
            _ => continue,
        };
        out.push((keyword, value));
    }
    Ok(out)
}

/// The card JSON inside a PNG: `ccv3` when present, else `chara`.
fn png_card_json(bytes: &[u8]) -> Result<String, CardError> {
    let texts = png_texts(bytes)?;
    let pick = |key: &str| texts.iter().find(|(k, _)| k == key);
    let (key, value) = pick("ccv3")
        .or_else(|| pick("chara"))
        .ok_or(CardError::NoCardInPng)?;
    let cleaned: Vec<u8> = value
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&cleaned)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&cleaned))
        .map_err(|_| CardError::Base64(key.clone()))?;
    String::from_utf8(decoded).map_err(|_| CardError::NotUtf8)
}

/// `png` with every `chara`/`ccv3` text chunk removed and `texts` added before IEND.
fn png_with_texts(png: &[u8], texts: &[(&str, String)]) -> Result<Vec<u8>, CardError> {
    let mut out = PNG_SIGNATURE.to_vec();
    let write_chunk = |out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut h = crc32fast::Hasher::new();
        h.update(kind);
        h.update(data);
        out.extend_from_slice(&h.finalize().to_be_bytes());
    };
    for (kind, data) in png_chunks(png)? {
        if matches!(&kind, b"tEXt" | b"zTXt" | b"iTXt") {
            let keyword = data.split(|&b| b == 0).next().unwrap_or_default();
            if keyword == b"chara" || keyword == b"ccv3" {
                continue;
            }
        }
        if &kind == b"IEND" {
            for (key, text) in texts {
                let mut data = key.as_bytes().to_vec();
                data.push(0);
                data.extend_from_slice(text.as_bytes());
                write_chunk(&mut out, b"tEXt", &data);
            }
        }
        write_chunk(&mut out, &kind, data);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// CHARX

fn read_charx(bytes: &[u8]) -> Result<Imported, CardError> {
    let bad = |e: zip::result::ZipError| CardError::BadCharx(e.to_string());
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(bad)?;
    let read_entry = |zip: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str| {
        let entry = zip.by_name(name).map_err(bad)?;
        let mut out = Vec::new();
        entry
            .take(MAX_INFLATED_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| CardError::BadCharx(e.to_string()))?;
        if out.len() as u64 > MAX_INFLATED_BYTES {
            return Err(CardError::BadCharx(format!("{name} inflates past 32 MB")));
        }
        Ok(out)
    };
    let json = match read_entry(&mut zip, "card.json") {
        Ok(j) => j,
        Err(CardError::BadCharx(_)) if zip.index_for_name("card.json").is_none() => {
            return Err(CardError::NoCardJson)
        }
        Err(e) => return Err(e),
    };
    let json = String::from_utf8(json).map_err(|_| CardError::NotUtf8)?;
    let value: Value = serde_json::from_str(&json).map_err(|e| CardError::Json(e.to_string()))?;
    // The main icon: the asset of type icon named main (or the first icon), when embedded.
    let assets = value
        .pointer("/data/assets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let icon = assets
        .iter()
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("icon"))
        .max_by_key(|a| a.get("name").and_then(Value::as_str) == Some("main"))
        .and_then(|a| a.get("uri").and_then(Value::as_str))
        .and_then(|uri| uri.strip_prefix("embeded://"))
        .map(str::to_string);
    let avatar = match icon {
        Some(path) => read_entry(&mut zip, &path).ok(),
        None => None,
    };
    let mut character = parse_value(value)?;
    // Embedded assets live in the archive, which is not kept: the icon becomes the avatar (and
    // is written back as the icon on export); the others are dropped rather than left pointing
    // at files that no longer exist.
    character.card.assets.retain(|a| {
        !a.get("uri")
            .and_then(Value::as_str)
            .is_some_and(|u| u.starts_with("embeded://"))
    });
    Ok(Imported::Card {
        character: Box::new(character),
        avatar,
    })
}

// ---------------------------------------------------------------------------------------------
// JSON: lenient reading

fn parse_card(json: &str) -> Result<Character, CardError> {
    let value: Value = serde_json::from_str(json).map_err(|e| CardError::Json(e.to_string()))?;
    parse_value(value)
}

/// A text field: a string, or null/absent (empty); numbers and booleans are taken as text, as
/// real cards sometimes carry them. Anything else is an error naming the field.
fn text(obj: &Map<String, Value>, field: &str) -> Result<String, CardError> {
    let s = match obj.get(field) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(_) => {
            return Err(CardError::WrongType {
                field: field.into(),
                expected: "text",
            })
        }
    };
    if s.len() > MAX_FIELD_BYTES {
        return Err(CardError::FieldTooLarge {
            field: field.into(),
            size: s.len(),
            limit: MAX_FIELD_BYTES,
        });
    }
    Ok(s)
}

/// A list of strings: an array (non-strings skipped), or one string (a quirk of some exporters:
/// `alternate_greetings: "Hi"`), or null/absent.
fn texts(obj: &Map<String, Value>, field: &str) -> Result<Vec<String>, CardError> {
    let list = match obj.get(field) {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) if s.trim().is_empty() => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(_) => {
            return Err(CardError::WrongType {
                field: field.into(),
                expected: "a list of text",
            })
        }
    };
    let size: usize = list.iter().map(String::len).sum();
    if size > MAX_FIELD_BYTES {
        return Err(CardError::FieldTooLarge {
            field: field.into(),
            size,
            limit: MAX_FIELD_BYTES,
        });
    }
    Ok(list)
}

fn object(obj: &Map<String, Value>, field: &str) -> Result<Map<String, Value>, CardError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(CardError::WrongType {
            field: field.into(),
            expected: "an object",
        }),
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => Some(n.as_f64() != Some(0.0)),
        Value::String(s) => match s.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The V1 fields: V1 cards have only these, at the top level, where `v2` also writes them.
const V1_FIELDS: [&str; 6] = [
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
];

/// With `V1_FIELDS`, the data fields this module reads into named `Character` fields; any other
/// is kept as is.
const KNOWN: &[&str] = &[
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "alternate_greetings",
    "tags",
    "creator",
    "character_version",
    "extensions",
    "character_book",
    "nickname",
    "group_only_greetings",
    "assets",
    "source",
    "creation_date",
    "modification_date",
];

/// A card's JSON (V1, V2 or V3, a V3 object in a `chara` chunk included) as a Character.
fn parse_value(value: Value) -> Result<Character, CardError> {
    let Value::Object(top) = value else {
        return Err(CardError::WrongType {
            field: "card".into(),
            expected: "a JSON object",
        });
    };
    let spec = top.get("spec").and_then(Value::as_str).unwrap_or("");
    let data = match (spec, top.get("data")) {
        ("chara_card_v2" | "chara_card_v3", Some(Value::Object(d))) => d.clone(),
        ("chara_card_v2" | "chara_card_v3", _) => {
            return Err(CardError::WrongType {
                field: "data".into(),
                expected: "an object",
            })
        }
        // V1: the fields sit at the top level.
        _ => top.clone(),
    };
    let book = match data.get("character_book") {
        None | Some(Value::Null) => None,
        Some(Value::Object(b)) => Some(lorebook(b)?),
        Some(_) => {
            return Err(CardError::WrongType {
                field: "character_book".into(),
                expected: "an object",
            })
        }
    };
    let mut extensions = object(&data, "extensions")?;
    let troupe = extensions.remove("troupe");
    let extra: Map<String, Value> = data
        .iter()
        .filter(|(k, _)| !V1_FIELDS.contains(&k.as_str()) && !KNOWN.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let name = text(&data, "name")?;
    let first_mes = text(&data, "first_mes")?;
    let mes_example = text(&data, "mes_example")?;
    let mut c = Character {
        id: String::new(),
        name: if name.trim().is_empty() {
            "Unnamed".into()
        } else {
            name.trim().to_string()
        },
        category: Category::Fictional,
        tagline: String::new(),
        profile: Profile::default(),
        greetings: Greetings {
            chit_chat: first_mes,
            ..Default::default()
        },
        example_dialogue: parse_examples(&mes_example),
        tags: texts(&data, "tags")?,
        avatar: None,
        description: text(&data, "description")?,
        personality: text(&data, "personality")?,
        setting: text(&data, "scenario")?,
        system_prompt: text(&data, "system_prompt")?,
        post_history_instructions: text(&data, "post_history_instructions")?,
        creator_notes: text(&data, "creator_notes")?,
        alternate_greetings: texts(&data, "alternate_greetings")?,
        lorebook: book,
        card: CardMeta {
            mes_example,
            creator: text(&data, "creator")?,
            character_version: text(&data, "character_version")?,
            nickname: text(&data, "nickname")?,
            group_only_greetings: texts(&data, "group_only_greetings")?,
            source: texts(&data, "source")?,
            creation_date: int(data.get("creation_date")),
            modification_date: int(data.get("modification_date")),
            // The default icon entry says "the card's own picture", which is what no entry
            // means too; dropping it keeps a CHARX export from naming two main icons.
            assets: match data.get("assets") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter(|x| x.get("uri").and_then(Value::as_str) != Some("ccdefault:"))
                    .cloned()
                    .collect(),
                _ => vec![],
            },
            extensions,
            extra,
        },
    };
    if let Some(t) = troupe.and_then(|t| serde_json::from_value::<TroupeExtension>(t).ok()) {
        c.category = t.category;
        c.tagline = t.tagline;
        c.profile = t.profile;
        c.greetings = t.greetings;
        c.example_dialogue = t.example_dialogue;
        // Undo what `data_object` added for other apps: the profile as the description, and
        // the other Scenarios' greetings as alternate greetings.
        if c.description == c.profile.text(&c.name) {
            c.description.clear();
        }
        let g = &c.greetings;
        let scenario_greetings = [&g.chit_chat, &g.interview, &g.companionship];
        c.alternate_greetings
            .retain(|a| !scenario_greetings.contains(&a));
    }
    c.tagline = if c.tagline.is_empty() {
        tagline_from(&c)
    } else {
        c.tagline
    };
    Ok(c)
}

/// A one-line summary for the gallery when a card has none: its description's first sentence.
fn tagline_from(c: &Character) -> String {
    let source = if c.creator_notes.trim().is_empty() || c.creator_notes.len() > 400 {
        &c.description
    } else {
        &c.creator_notes
    };
    let s = source
        .replace("{{char}}", &c.name)
        .replace("{{user}}", "you");
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let end = line
        .char_indices()
        .find(|&(i, ch)| matches!(ch, '.' | '!' | '?') && i > 20)
        .map(|(i, _)| i + 1)
        .unwrap_or(line.len());
    let mut t: String = line[..end].chars().take(140).collect();
    if t.len() < line[..end].len() {
        t.push('…');
    }
    t
}

/// `mes_example` text (`<START>` blocks of `{{user}}:` / `{{char}}:` lines) as exchanges, when it
/// has that shape; the text itself is kept in `CardMeta::mes_example` either way.
fn parse_examples(text: &str) -> Vec<Exchange> {
    let mut out = Vec::new();
    let mut user: Option<String> = None;
    let mut current: Option<(bool, String)> = None; // (is_char, text)
    let flush = |current: &mut Option<(bool, String)>,
                 user: &mut Option<String>,
                 out: &mut Vec<Exchange>| {
        match current.take() {
            Some((false, t)) => *user = Some(t.trim().to_string()),
            Some((true, t)) => out.push(Exchange {
                user: user.take().unwrap_or_default(),
                character: t.trim().to_string(),
            }),
            None => {}
        }
    };
    for line in text.lines() {
        let l = line.trim_start();
        if l.eq_ignore_ascii_case("<start>") {
            flush(&mut current, &mut user, &mut out);
            user = None;
        } else if let Some(rest) = l.strip_prefix("{{user}}:") {
            flush(&mut current, &mut user, &mut out);
            current = Some((false, rest.to_string()));
        } else if let Some(rest) = l.strip_prefix("{{char}}:") {
            flush(&mut current, &mut user, &mut out);
            current = Some((true, rest.to_string()));
        } else if let Some((_, t)) = current.as_mut() {
            t.push('\n');
            t.push_str(line);
        }
    }
    flush(&mut current, &mut user, &mut out);
    out
}

fn lorebook(b: &Map<String, Value>) -> Result<Lorebook, CardError> {
    let entries = match b.get("entries") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_object).collect(),
        // World Info files key their entries by uid.
        Some(Value::Object(m)) => m.values().filter_map(Value::as_object).collect(),
        Some(_) => {
            return Err(CardError::WrongType {
                field: "character_book.entries".into(),
                expected: "a list",
            })
        }
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        out.push(LoreEntry {
            keys: texts(e, "keys")?,
            content: text(e, "content")?,
            enabled: boolean(e.get("enabled")).unwrap_or(true),
            insertion_order: int(e.get("insertion_order")).unwrap_or(100),
            case_sensitive: boolean(e.get("case_sensitive")),
            name: text(e, "name")?,
            comment: text(e, "comment")?,
            priority: int(e.get("priority")),
            id: e.get("id").cloned(),
            selective: boolean(e.get("selective")).unwrap_or(false),
            secondary_keys: texts(e, "secondary_keys")?,
            constant: boolean(e.get("constant")).unwrap_or(false),
            position: text(e, "position")?,
            use_regex: boolean(e.get("use_regex")).unwrap_or(false),
            extensions: object(e, "extensions")?,
        });
    }
    Ok(Lorebook {
        name: text(b, "name")?,
        description: text(b, "description")?,
        scan_depth: int(b.get("scan_depth")),
        token_budget: int(b.get("token_budget")),
        recursive_scanning: boolean(b.get("recursive_scanning")),
        extensions: object(b, "extensions")?,
        entries: out,
    })
}

/// A SillyTavern World Info file: `entries` keyed by uid, with `key`/`keysecondary`, and no
/// card fields.
fn is_world_info(v: &Value) -> bool {
    v.get("entries").is_some_and(Value::is_object)
        && v.get("spec").is_none()
        && v.get("name")
            .is_none_or(|n| v.get("first_mes").is_none() && n.is_string())
        && v.get("data").is_none()
}

fn world_info(v: &Value) -> Result<Lorebook, CardError> {
    let m = v.as_object().expect("checked by is_world_info");
    let entries = m
        .get("entries")
        .and_then(Value::as_object)
        .expect("checked");
    let mut out = Vec::with_capacity(entries.len());
    for e in entries.values().filter_map(Value::as_object) {
        // ST's numeric positions: 0 before the character, 1 after; others (author's note,
        // depth) have no V2 equivalent and keep their number in extensions.
        let position = match int(e.get("position")) {
            Some(0) => "before_char",
            _ => "after_char",
        };
        let mut ext = Map::new();
        for k in [
            "position",
            "depth",
            "probability",
            "useProbability",
            "group",
            "scanDepth",
            "matchWholeWords",
            "role",
            "sticky",
            "cooldown",
            "delay",
        ] {
            if let Some(x) = e.get(k) {
                ext.insert(k.to_string(), x.clone());
            }
        }
        out.push(LoreEntry {
            keys: texts(e, "key")?,
            content: text(e, "content")?,
            enabled: !boolean(e.get("disable")).unwrap_or(false),
            insertion_order: int(e.get("order")).unwrap_or(100),
            case_sensitive: boolean(e.get("caseSensitive")),
            name: text(e, "comment")?,
            comment: text(e, "comment")?,
            priority: None,
            id: e.get("uid").cloned(),
            selective: boolean(e.get("selective")).unwrap_or(false),
            secondary_keys: texts(e, "keysecondary")?,
            constant: boolean(e.get("constant")).unwrap_or(false),
            position: position.into(),
            use_regex: false,
            extensions: ext,
        });
    }
    out.sort_by_key(|e| e.insertion_order);
    Ok(Lorebook {
        name: text(m, "name")?,
        description: text(m, "description")?,
        entries: out,
        ..Default::default()
    })
}

// ---------------------------------------------------------------------------------------------
// Writing

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
struct TroupeExtension {
    category: Category,
    #[serde(default)]
    tagline: String,
    #[serde(default)]
    profile: Profile,
    #[serde(default)]
    greetings: Greetings,
    #[serde(default)]
    example_dialogue: Vec<Exchange>,
}

/// The card's `data` object (V3 fields; `v2` leaves out the V3-only ones).
fn data_object(c: &Character, v2: bool) -> Map<String, Value> {
    let mut extensions = c.card.extensions.clone();
    extensions.insert(
        "troupe".into(),
        serde_json::to_value(TroupeExtension {
            category: c.category,
            tagline: c.tagline.clone(),
            profile: c.profile.clone(),
            greetings: c.greetings.clone(),
            example_dialogue: c.example_dialogue.clone(),
        })
        .expect("serialises"),
    );
    let description = if c.description.trim().is_empty() {
        c.profile.text(&c.name)
    } else {
        c.description.clone()
    };
    let mes_example = if c.card.mes_example.trim().is_empty() {
        c.example_dialogue
            .iter()
            .map(|e| {
                format!(
                    "<START>\n{{{{user}}}}: {}\n{{{{char}}}}: {}",
                    e.user, e.character
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        c.card.mes_example.clone()
    };
    let first_mes = [
        &c.greetings.chit_chat,
        &c.greetings.interview,
        &c.greetings.companionship,
    ]
    .into_iter()
    .find(|g| !g.trim().is_empty())
    .cloned()
    .unwrap_or_default();
    let mut d = c.card.extra.clone();
    let mut put = |k: &str, v: Value| {
        d.insert(k.to_string(), v);
    };
    put("name", json!(c.name));
    put("description", json!(description));
    put("personality", json!(c.personality));
    put("scenario", json!(c.setting));
    put("first_mes", json!(first_mes));
    put("mes_example", json!(mes_example));
    put("creator_notes", json!(c.creator_notes));
    put("system_prompt", json!(c.system_prompt));
    put(
        "post_history_instructions",
        json!(c.post_history_instructions),
    );
    // Other apps have no Scenarios: the other Scenarios' greetings become alternates to swipe.
    let mut alternates: Vec<&String> = [
        &c.greetings.chit_chat,
        &c.greetings.interview,
        &c.greetings.companionship,
    ]
    .into_iter()
    .filter(|g| !g.trim().is_empty() && **g != first_mes)
    .collect();
    alternates.dedup();
    alternates.extend(c.alternate_greetings.iter());
    put("alternate_greetings", json!(alternates));
    put("tags", json!(c.tags));
    put("creator", json!(c.card.creator));
    put("character_version", json!(c.card.character_version));
    put("extensions", Value::Object(extensions));
    if let Some(book) = &c.lorebook {
        put(
            "character_book",
            serde_json::to_value(book).expect("serialises"),
        );
    }
    if !v2 {
        put("group_only_greetings", json!(c.card.group_only_greetings));
        if !c.card.nickname.is_empty() {
            put("nickname", json!(c.card.nickname));
        }
        if !c.card.source.is_empty() {
            put("source", json!(c.card.source));
        }
        if let Some(t) = c.card.creation_date {
            put("creation_date", json!(t));
        }
        if let Some(t) = c.card.modification_date {
            put("modification_date", json!(t));
        }
    }
    d
}

/// The character as a V3 card object (`assets` as given).
fn v3(c: &Character, assets: Option<Vec<Value>>) -> Value {
    let mut data = data_object(c, false);
    let assets = assets.unwrap_or_else(|| c.card.assets.clone());
    if !assets.is_empty() {
        data.insert("assets".into(), Value::Array(assets));
    }
    json!({"spec": "chara_card_v3", "spec_version": "3.0", "data": data})
}

/// The character as a V2 card object, with the V1 fields also at the top level (SillyTavern
/// writes them so, and V1-only readers find them there).
fn v2(c: &Character) -> Value {
    let data = data_object(c, true);
    let mut top = Map::new();
    for k in V1_FIELDS {
        top.insert(k.into(), data.get(k).cloned().unwrap_or(json!("")));
    }
    top.insert("spec".into(), json!("chara_card_v2"));
    top.insert("spec_version".into(), json!("2.0"));
    top.insert("data".into(), Value::Object(data));
    Value::Object(top)
}

/// A V3 card as JSON.
pub fn write_json(c: &Character) -> Vec<u8> {
    serde_json::to_vec_pretty(&v3(c, None)).expect("serialises")
}

/// `avatar_png` (a PNG) carrying the card twice: `chara` (V2) and `ccv3` (V3), base64 as the
/// specs say.
pub fn write_png(c: &Character, avatar_png: &[u8]) -> Result<Vec<u8>, CardError> {
    if !avatar_png.starts_with(PNG_SIGNATURE) {
        return Err(CardError::BadPng("the avatar to embed is not a PNG".into()));
    }
    let b64 = |v: &Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
    // No `assets` means the PNG itself is the icon (V3: "ccdefault:"), so none are added.
    png_with_texts(
        avatar_png,
        &[("chara", b64(&v2(c))), ("ccv3", b64(&v3(c, None)))],
    )
}

/// A CHARX zip: `card.json` (V3) and the avatar as the main icon.
pub fn write_charx(c: &Character, avatar_png: Option<&[u8]>) -> Vec<u8> {
    let path = "assets/icon/images/main.png";
    let mut assets: Vec<Value> = avatar_png
        .map(|_| json!({"type": "icon", "uri": format!("embeded://{path}"), "name": "main", "ext": "png"}))
        .into_iter()
        .collect();
    assets.extend(c.card.assets.iter().cloned());
    let assets = Some(assets);
    let card = serde_json::to_vec_pretty(&v3(c, assets)).expect("serialises");
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    // Writing into memory cannot fail.
    zip.start_file("card.json", opts).expect("in memory");
    zip.write_all(&card).expect("in memory");
    if let Some(png) = avatar_png {
        zip.start_file(path, stored).expect("in memory");
        zip.write_all(png).expect("in memory");
    }
    zip.finish().expect("in memory").into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quirks_are_tolerated() {
        // alternate_greetings as a string, character_book null, empty name, V1 at top level.
        let c = parse_card(
            r#"{"name":"","description":"d","first_mes":"hi","alternate_greetings":"hello",
                "character_book":null,"tags":"one"}"#,
        )
        .unwrap();
        assert_eq!(c.name, "Unnamed");
        assert_eq!(c.alternate_greetings, vec!["hello"]);
        assert_eq!(c.tags, vec!["one"]);
        assert!(c.lorebook.is_none());
        // A V3 object where a V2 was expected (inside `chara`) reads as V3.
        let c =
            parse_card(r#"{"spec":"chara_card_v3","data":{"name":"V","first_mes":"x"}}"#).unwrap();
        assert_eq!(c.name, "V");
    }

    #[test]
    fn wrong_types_name_the_field() {
        assert_eq!(
            parse_card(r#"{"spec":"chara_card_v2","data":{"name":"A","description":{"x":1}}}"#),
            Err(CardError::WrongType {
                field: "description".into(),
                expected: "text"
            })
        );
    }

    /// A quick, always-on cousin of the `cargo fuzz` target: real cards (a built-in exported
    /// as PNG, JSON and CHARX) with bytes flipped, spans zeroed, lengths rewritten and tails cut,
    /// 30,000 times from a fixed seed. Every one must come back as a card or an error.
    #[test]
    fn mutated_cards_never_panic() {
        let c = crate::characters::builtin::all().remove(0);
        let mut png = Vec::new();
        image::DynamicImage::new_rgb8(8, 8)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let seeds = [
            write_png(&c, &png).unwrap(),
            write_json(&c),
            write_charx(&c, Some(&png)),
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut cards, mut errors) = (0, 0);
        for i in 0..30_000 {
            let mut b = seeds[i % seeds.len()].clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % b.len();
                match next() % 4 {
                    0 => b[at] ^= 1 << (next() % 8),
                    1 => {
                        let end = (at + 16).min(b.len());
                        b[at..end].fill(0)
                    }
                    2 => {
                        let v = (next() as u32).to_be_bytes();
                        let end = (at + 4).min(b.len());
                        b[at..end].copy_from_slice(&v[..end - at]);
                    }
                    _ => b.truncate(at.max(1)),
                }
            }
            match read(&b) {
                Ok(_) => cards += 1,
                Err(_) => errors += 1,
            }
        }
        eprintln!("mutated cards: {cards} read, {errors} refused");
        // Both outcomes happen: the mutations reach past the first check.
        assert!(
            cards > 100 && errors > 100,
            "{cards} read, {errors} refused"
        );
    }

    #[test]
    fn examples_parse_into_exchanges() {
        let ex = parse_examples(
            "<START>\n{{user}}: Hi there\n{{char}}: *waves* Hello!\nHow are you?\n<START>\n{{char}}: Alone.",
        );
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].user, "Hi there");
        assert_eq!(ex[0].character, "*waves* Hello!\nHow are you?");
        assert_eq!(ex[1].user, "");
    }
}
