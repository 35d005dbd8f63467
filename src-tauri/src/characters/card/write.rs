//! Writing cards: a `Character` as the V2 and V3 `data` objects, as JSON and as PNG.

use super::*;

/// The card's `data` object (V3 fields; `v2` leaves out the V3-only ones).
pub(super) fn data_object(c: &Character, v2: bool) -> Map<String, Value> {
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
pub(super) fn v3(c: &Character, assets: Option<Vec<Value>>) -> Value {
    let mut data = data_object(c, false);
    let assets = assets.unwrap_or_else(|| c.card.assets.clone());
    if !assets.is_empty() {
        data.insert("assets".into(), Value::Array(assets));
    }
    json!({"spec": "chara_card_v3", "spec_version": "3.0", "data": data})
}

/// The character as a V2 card object, with the V1 fields also at the top level (SillyTavern
/// writes them so, and V1-only readers find them there).
pub(super) fn v2(c: &Character) -> Value {
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
