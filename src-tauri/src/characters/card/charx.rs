//! CHARX cards: a zip with `card.json` and its assets; the main icon is the picture.

use super::*;

pub(super) fn read_charx(bytes: &[u8]) -> Result<Imported, CardError> {
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
