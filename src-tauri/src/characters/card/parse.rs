//! Lenient reading: whatever a card's JSON holds (V1 at the top level, V2, V3, and the quirks
//! other apps write) mapped to a `Character`, and SillyTavern World Info to a `Lorebook`.

use super::*;

pub(super) fn parse_card(json: &str) -> Result<Character, CardError> {
    let value: Value = serde_json::from_str(json).map_err(|e| CardError::Json(e.to_string()))?;
    parse_value(value)
}

/// A text field: a string, or null/absent (empty); numbers and booleans are taken as text, as
/// real cards sometimes carry them. Anything else is an error naming the field.
pub(super) fn text(obj: &Map<String, Value>, field: &str) -> Result<String, CardError> {
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
pub(super) fn texts(obj: &Map<String, Value>, field: &str) -> Result<Vec<String>, CardError> {
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

pub(super) fn object(
    obj: &Map<String, Value>,
    field: &str,
) -> Result<Map<String, Value>, CardError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(CardError::WrongType {
            field: field.into(),
            expected: "an object",
        }),
    }
}

pub(super) fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn boolean(v: Option<&Value>) -> Option<bool> {
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
pub(super) const V1_FIELDS: [&str; 6] = [
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
];

/// With `V1_FIELDS`, the data fields this module reads into named `Character` fields; any other
/// is kept as is.
pub(super) const KNOWN: &[&str] = &[
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
pub(super) fn parse_value(value: Value) -> Result<Character, CardError> {
    if depth(&value) > MAX_DEPTH {
        return Err(CardError::TooDeep);
    }
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
    // Any JSON object would otherwise become a Character called "Unnamed" (a settings file, a
    // chat log, a card of a spec we do not know with its fields elsewhere).
    if !V1_FIELDS.iter().any(|f| data.contains_key(*f)) {
        return Err(CardError::NoCardFields);
    }
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
pub(super) fn tagline_from(c: &Character) -> String {
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
pub(super) fn parse_examples(text: &str) -> Vec<Exchange> {
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

pub(super) fn lorebook(b: &Map<String, Value>) -> Result<Lorebook, CardError> {
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
pub(super) fn is_world_info(v: &Value) -> bool {
    v.get("entries").is_some_and(Value::is_object)
        && v.get("spec").is_none()
        && v.get("name")
            .is_none_or(|n| v.get("first_mes").is_none() && n.is_string())
        && v.get("data").is_none()
}

pub(super) fn world_info(v: &Value) -> Result<Lorebook, CardError> {
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

/// How many levels of arrays and objects `v` nests (a string or number is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}
