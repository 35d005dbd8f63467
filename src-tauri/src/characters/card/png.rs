//! PNG cards: the `ccv3` / `chara` text chunks (tEXt, zTXt, iTXt) read within the limits, and
//! a PNG written with new text chunks.

use super::*;

pub(super) const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A PNG's chunks as (type, data), CRCs checked, up to IEND.
pub(super) fn png_chunks(bytes: &[u8]) -> Result<Vec<([u8; 4], &[u8])>, CardError> {
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
pub(super) fn chunk_name(kind: &[u8; 4]) -> String {
    if kind.iter().all(u8::is_ascii_alphabetic) {
        String::from_utf8_lossy(kind).into_owned()
    } else {
        format!("{kind:02x?}")
    }
}

/// Inflates a compressed text chunk, refusing (before allocating more) once `budget`, what is
/// left of the whole file's allowance, would be passed.
pub(super) fn inflate(data: &[u8], budget: &mut u64) -> Result<Vec<u8>, CardError> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .take(*budget + 1)
        .read_to_end(&mut out)
        .map_err(|e| CardError::BadPng(format!("a compressed text chunk is damaged: {e}")))?;
    if out.len() as u64 > *budget {
        return Err(CardError::BadPng(
            "its compressed card text inflates past 32 MB".into(),
        ));
    }
    *budget -= out.len() as u64;
    Ok(out)
}

/// The keywords of the text chunks that hold a card.
const CARD_KEYWORDS: [&[u8]; 2] = [b"chara", b"ccv3"];

/// The PNG's card text chunks (`chara`, `ccv3`) as (keyword, value bytes). Other text chunks
/// are not decompressed at all, and the card chunks share one allowance of
/// `MAX_INFLATED_BYTES`: a file of many small compressed chunks that each inflate to the limit
/// (a few megabytes on disk, gigabytes inflated) costs no memory.
pub(super) fn png_texts(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, CardError> {
    let mut out = Vec::new();
    let mut budget = MAX_INFLATED_BYTES;
    for (kind, data) in png_chunks(bytes)? {
        let Some(nul) = data.iter().position(|&b| b == 0) else {
            continue;
        };
        if !CARD_KEYWORDS.contains(&&data[..nul]) {
            continue;
        }
        let keyword = String::from_utf8_lossy(&data[..nul]).into_owned();
        let rest = &data[nul + 1..];
        let value = match &kind {
            b"tEXt" => rest.to_vec(),
            b"zTXt" => inflate(rest.get(1..).unwrap_or_default(), &mut budget)?,
            b"iTXt" => {
                // compression flag, method, language\0, translated keyword\0, text
                let (&flag, rest) = rest.split_first().unwrap_or((&0, &[]));
                let rest = rest.get(1..).unwrap_or_default();
                let mut parts = rest.splitn(3, |&b| b == 0);
                let (_, _, text) = (parts.next(), parts.next(), parts.next().unwrap_or_default());
                if flag == 1 {
                    inflate(text, &mut budget)?
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
pub(super) fn png_card_json(bytes: &[u8]) -> Result<String, CardError> {
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
pub(super) fn png_with_texts(png: &[u8], texts: &[(&str, String)]) -> Result<Vec<u8>, CardError> {
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
