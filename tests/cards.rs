//! Character cards as users trade them: our own cards in every format and quirk the reader
//! handles (`tests/fixtures/cards/`, written by `tests/fixtures/make_cards.py`) and, where it
//! is present (CI), every real third-party card in `../shared/fixtures/cards/` import
//! with the right fields, exports to PNG, JSON and CHARX, and re-imports identically; other apps'
//! extensions survive; a corpus of broken cards gets clear errors that name the file, and leaves
//! the library (database rows and avatar files) exactly as it was. Through the library API and
//! through the real `troupe import` / `troupe export` commands.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use troupe::app::{CardFormat, Imported, Troupe};
use troupe::characters::Character;
use troupe::settings::Paths;

/// Our own cards: always there, in the repository.
fn own() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cards")
}

/// The third-party corpus (kept outside the repository for its licences): beside the
/// repository in CI, maybe not in a clone. Says so plainly when it is missing.
fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/cards");
    if dir.is_dir() {
        return Some(dir);
    }
    eprintln!(
        "NOTE: {} is not there: the third-party card corpus did not run (our own cards did)",
        dir.display()
    );
    None
}

fn import(t: &Troupe, file: &Path) -> Character {
    match t.import_card(file, None) {
        Ok(Imported::Character(c)) => *c,
        other => panic!("{}: {other:?}", file.display()),
    }
}

/// A Character without what differs between two imports of the same card (id, avatar file).
fn comparable(c: &Character) -> Character {
    Character {
        id: String::new(),
        avatar: None,
        ..c.clone()
    }
}

struct Expected {
    file: &'static str,
    name: &'static str,
    description_starts: &'static str,
    first_mes_starts: &'static str,
    alternate_greetings: usize,
    lore_entries: usize,
    /// SillyTavern's `talkativeness` extension is in the card (V1 cards have no extensions).
    talkativeness: bool,
}

const OWN: &[Expected] = &[
    Expected {
        file: "odile-v2.png",
        name: "Odile Marchetti",
        description_starts: "Odile Marchetti keeps the night ferry",
        first_mes_starts: "*Odile loops the rope twice around the",
        alternate_greetings: 1,
        lore_entries: 3,
        talkativeness: true,
    },
    Expected {
        file: "odile-v2-and-v3.png",
        name: "Odile Marchetti",
        description_starts: "Odile Marchetti keeps the night ferry",
        first_mes_starts: "*Odile loops the rope twice around the",
        alternate_greetings: 1,
        lore_entries: 3,
        talkativeness: true,
    },
    Expected {
        file: "wren-v3-ztxt.png",
        name: "Wren Halloway",
        description_starts: "Wren Halloway repairs clocks",
        first_mes_starts: "*Forty clocks tick at once.*",
        alternate_greetings: 0,
        lore_entries: 0,
        talkativeness: true,
    },
    Expected {
        file: "wren-v3.json",
        name: "Wren Halloway",
        description_starts: "Wren Halloway repairs clocks",
        first_mes_starts: "*Forty clocks tick at once.*",
        alternate_greetings: 0,
        lore_entries: 0,
        talkativeness: true,
    },
    Expected {
        file: "wren-v2.json",
        name: "Wren Halloway",
        description_starts: "Wren Halloway repairs clocks",
        first_mes_starts: "*Forty clocks tick at once.*",
        alternate_greetings: 0,
        lore_entries: 0,
        talkativeness: true,
    },
    Expected {
        file: "wren.charx",
        name: "Wren Halloway",
        description_starts: "Wren Halloway repairs clocks",
        first_mes_starts: "*Forty clocks tick at once.*",
        alternate_greetings: 0,
        lore_entries: 0,
        talkativeness: true,
    },
    Expected {
        file: "tobias-v1.json",
        name: "Tobias Quill",
        description_starts: "Tobias Quill sells second-hand maps",
        first_mes_starts: "Mind the stack by the door",
        alternate_greetings: 0,
        lore_entries: 0,
        talkativeness: false,
    },
    Expected {
        file: "tobias-quirky.json",
        name: "Tobias Quill",
        description_starts: "Tobias Quill sells second-hand maps",
        first_mes_starts: "Mind the stack by the door",
        alternate_greetings: 1,
        lore_entries: 0,
        talkativeness: true,
    },
];

const SHARED: &[Expected] = &[
    Expected {
        file: "seraphina-v2-lorebook.png",
        name: "Seraphina",
        description_starts: "[Seraphina's Personality=",
        first_mes_starts: "*You wake with a start, recalling the ev",
        alternate_greetings: 0,
        lore_entries: 4,
        talkativeness: true,
    },
    Expected {
        file: "seraphina-v2-and-v3.png",
        name: "Seraphina",
        description_starts: "[Seraphina's Personality=",
        first_mes_starts: "*You wake with a start, recalling the ev",
        alternate_greetings: 0,
        lore_entries: 4,
        talkativeness: true,
    },
    Expected {
        file: "capogpt-v2.png",
        name: "CapoGPT",
        description_starts: "<CHR>CapoGPT is an AI",
        first_mes_starts: "Alright boss, what are we working on tod",
        alternate_greetings: 0,
        lore_entries: 0,
        talkativeness: true,
    },
    Expected {
        file: "sakana-v2-lorebook-14.png",
        name: "Sakana",
        description_starts: "{{user}}: Brief introduction?",
        first_mes_starts: "*Your assistant {{char}} walks on over t",
        alternate_greetings: 0,
        lore_entries: 14,
        talkativeness: true,
    },
];

#[test]
fn every_fixture_card_imports_with_its_fields_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let t = Troupe::open(Paths::at(dir.path())).unwrap();
    let mut cards: Vec<(PathBuf, &Expected)> =
        OWN.iter().map(|e| (own().join(e.file), e)).collect();
    if let Some(shared) = shared() {
        cards.extend(SHARED.iter().map(|e| (shared.join(e.file), e)));
    }
    for (file, e) in cards {
        let c = import(&t, &file);
        assert_eq!(c.name, e.name, "{}", e.file);
        assert!(
            c.description.starts_with(e.description_starts) && c.description.len() > 100,
            "{}: {:?}",
            e.file,
            &c.description[..60.min(c.description.len())]
        );
        assert!(
            c.greetings.chit_chat.starts_with(e.first_mes_starts),
            "{}: {:?}",
            e.file,
            c.greetings.chit_chat
        );
        assert_eq!(c.alternate_greetings.len(), e.alternate_greetings);
        let entries = c.lorebook.as_ref().map_or(0, |b| b.entries.len());
        assert_eq!(entries, e.lore_entries, "{}", e.file);
        // Other apps' extensions are kept.
        assert_eq!(
            c.card.extensions.contains_key("talkativeness"),
            e.talkativeness,
            "{}",
            e.file
        );
        // Stored, with a 512 px avatar and its thumbnail when the file carries a picture.
        let stored = t.store.get_character(&c.id).unwrap();
        assert_eq!(stored, c);
        let has_picture = !e.file.ends_with(".json");
        assert_eq!(c.avatar.is_some(), has_picture, "{}", e.file);
        if let Some(picture) = &c.avatar {
            let avatar = dir.path().join("avatars").join(picture);
            let img = image::open(&avatar).unwrap();
            assert_eq!((img.width(), img.height()), (512, 512));
            assert!(avatar
                .with_file_name(format!("{}.thumb.png", c.id))
                .exists());
        }

        // Export in every format and import again: the same Character, extensions included.
        for format in [CardFormat::Png, CardFormat::Json, CardFormat::Charx] {
            let bytes = t.export_card(&c.id, format).unwrap();
            let file = dir
                .path()
                .join(format!("out-{}.{}", c.id, format.extension()));
            std::fs::write(&file, &bytes).unwrap();
            let again = import(&t, &file);
            assert_eq!(
                comparable(&again),
                comparable(&c),
                "{} via {format:?}",
                e.file
            );
            assert_eq!(again.card.extensions, c.card.extensions);
        }
    }
    // A lorebook's details: secondary keys, selective and constant entries.
    let mut books = vec![own().join("odile-v2.png")];
    books.extend(shared().map(|d| d.join("sakana-v2-lorebook-14.png")));
    for file in books {
        let book = import(&t, &file).lorebook.unwrap();
        assert!(book
            .entries
            .iter()
            .all(|e| !e.keys.is_empty() || e.constant));
        assert!(book.entries.iter().all(|e| !e.content.is_empty()));
    }
    let odile = import(&t, &own().join("odile-v2.png")).lorebook.unwrap();
    assert!(odile.entries.iter().any(|e| e.constant));
    assert!(odile
        .entries
        .iter()
        .any(|e| e.selective && e.secondary_keys == ["flood", "1987"]));
}

#[test]
fn exported_png_carries_both_v2_and_v3_and_other_apps_read_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let t = Troupe::open(Paths::at(dir.path())).unwrap();
    // A built-in: Troupe's own profile must travel inside extensions.troupe.
    let png = t.export_card("ada-lovelace", CardFormat::Png).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(&png));
    let mut reader = decoder.read_info().unwrap();
    // The card chunks come after the image data, where SillyTavern puts them: read to the end.
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut pixels).unwrap();
    reader.finish().unwrap();
    let texts: Vec<(String, String)> = reader
        .info()
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    let get = |k: &str| -> serde_json::Value {
        let (_, v) = texts.iter().find(|(key, _)| key == k).expect(k);
        let json = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
        serde_json::from_slice(&json).unwrap()
    };
    let v2 = get("chara");
    let v3 = get("ccv3");
    assert_eq!(v2["spec"], "chara_card_v2");
    assert_eq!(v3["spec"], "chara_card_v3");
    assert_eq!(v2["data"]["name"], "Ada Lovelace");
    assert_eq!(v2["name"], "Ada Lovelace", "V1 fields at the top level too");
    assert!(v2["data"]["description"]
        .as_str()
        .unwrap()
        .contains("Lovelace"));
    assert!(!v2["data"]["first_mes"].as_str().unwrap().is_empty());
    assert_eq!(v3["data"]["extensions"]["troupe"]["category"], "celebrity");
    // The interview and companionship greetings reach other apps as alternate greetings.
    assert_eq!(
        v2["data"]["alternate_greetings"].as_array().unwrap().len(),
        2
    );
    // Imported back, it is the same Character: profile, category, a greeting per Scenario.
    let file = dir.path().join("ada.png");
    std::fs::write(&file, &png).unwrap();
    let again = import(&t, &file);
    let original = t.store.get_character("ada-lovelace").unwrap();
    assert_eq!(again.profile, original.profile);
    assert_eq!(again.greetings, original.greetings);
    assert_eq!(again.category, original.category);
    assert_eq!(again.id, "ada-lovelace-2");
    assert_eq!(
        again.description, "",
        "the profile is not duplicated as a description"
    );
    assert!(again.alternate_greetings.is_empty());
}

#[test]
fn world_info_imports_into_a_characters_lorebook() {
    world_info_imports(&own().join("vell-worldinfo.json"), "vell");
    if let Some(shared) = shared() {
        world_info_imports(
            &shared.join("eldoria-sillytavern-worldinfo.json"),
            "eldoria",
        );
    }
}

/// `file`, a World Info of four entries one of which mentions `word`, is refused as a card and
/// imports into a Character's lorebook.
fn world_info_imports(file: &Path, word: &str) {
    let dir = tempfile::tempdir().unwrap();
    let t = Troupe::open(Paths::at(dir.path())).unwrap();
    let file = file.to_path_buf();
    let err = t.import_card(&file, None).unwrap_err();
    assert!(err.to_string().contains("lorebook (4 entries)"), "{err}");
    match t.import_card(&file, Some("sherlock-holmes")).unwrap() {
        Imported::Lorebook { character, entries } => {
            assert_eq!((character.as_str(), entries), ("sherlock-holmes", 4))
        }
        other => panic!("{other:?}"),
    }
    let c = t.store.get_character("sherlock-holmes").unwrap();
    let book = c.lorebook.unwrap();
    assert_eq!(book.entries.len(), 4);
    assert!(book.entries.iter().all(|e| !e.keys.is_empty()));
    assert!(book
        .entries
        .iter()
        .any(|e| e.content.to_lowercase().contains(word)));
}

/// Library state: every row's JSON and every avatar file's bytes.
fn snapshot(t: &Troupe, dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = t
        .store
        .list_characters()
        .unwrap()
        .iter()
        .map(|s| serde_json::to_string(&t.store.get_character(&s.id).unwrap()).unwrap())
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(dir.join("avatars"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            format!(
                "{}:{}",
                e.file_name().to_string_lossy(),
                std::fs::metadata(e.path()).unwrap().len()
            )
        })
        .collect();
    files.sort();
    out.extend(files);
    out
}

#[test]
fn broken_cards_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = Troupe::open(Paths::at(dir.path())).unwrap();
    let before = snapshot(&t, dir.path());
    // A good card whose last chunk before IEND is its `chara`: the third-party one when it is
    // there, else ours.
    let (good_file, good_line) = match shared() {
        Some(d) => (d.join("capogpt-v2.png"), "capogpt\tfictional\tCapoGPT"),
        None => (
            own().join("odile-v2.png"),
            "odile-marchetti\tfictional\tOdile Marchetti",
        ),
    };
    let good = std::fs::read(&good_file).unwrap();
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();

    let chunk = |kind: &[u8; 4], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let mut h = crc32fast::Hasher::new();
        h.update(kind);
        h.update(data);
        c.extend_from_slice(&h.finalize().to_be_bytes());
        c
    };
    let png_with = |text: &[u8]| {
        // A real 1 × 1 PNG with a `chara` chunk holding `text`.
        let mut p = Vec::new();
        image::DynamicImage::new_rgb8(1, 1)
            .write_to(&mut std::io::Cursor::new(&mut p), image::ImageFormat::Png)
            .unwrap();
        let iend = p.len() - 12;
        let mut data = b"chara\0".to_vec();
        data.extend_from_slice(text);
        let mut out = p[..iend].to_vec();
        out.extend(chunk(b"tEXt", &data));
        out.extend_from_slice(&p[iend..]);
        out
    };
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut bad_crc = good.clone();
    let last_crc = good.len() - 1 - 12; // the byte before IEND: the last chunk's CRC
    bad_crc[last_crc] ^= 0xff;
    let mut huge = png_with(b64(r#"{"name":"Huge","first_mes":"hi"}"#).as_bytes());
    huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32fast::hash(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.to_be_bytes());
    let big_field = format!(
        r#"{{"spec":"chara_card_v2","data":{{"name":"Big","description":"{}"}}}}"#,
        "x".repeat(50 << 20)
    );

    let corpus: Vec<(&str, Vec<u8>, &str)> =
        vec![
        ("truncated.png", good[..good.len() / 2].to_vec(), "truncated"),
        ("bad-crc.png", bad_crc, "checksum"),
        ("garbage-base64.png", png_with(b"!!!not base64!!!"), "base64"),
        (
            "not-json.png",
            png_with(b64("{this is not json").as_bytes()),
            "not valid JSON",
        ),
        (
            "wrong-types.json",
            br#"{"spec":"chara_card_v2","data":{"name":"W","first_mes":["a"],"description":{}}}"#
                .to_vec(),
            "should be text",
        ),
        ("big-field.json", big_field.into_bytes(), "limit"),
        ("latin1.json", b"{\"name\":\"Caf\xe9\"}".to_vec(), "UTF-8"),
        ("huge-header.png", huge, "pixels"),
        ("no-card.png", {
            let mut p = Vec::new();
            image::DynamicImage::new_rgb8(2, 2)
                .write_to(&mut std::io::Cursor::new(&mut p), image::ImageFormat::Png)
                .unwrap();
            p
        }, "no character card"),
        ("empty.json", Vec::new(), "not a character card"),
        ("zip-no-card.charx", {
            let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            z.start_file("readme.txt", zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut z, b"hi").unwrap();
            z.finish().unwrap().into_inner()
        }, "card.json"),
    ];
    for (name, bytes, says) in &corpus {
        let file = bad.join(name);
        std::fs::write(&file, bytes).unwrap();
        let err = t.import_card(&file, None).expect_err(name).to_string();
        assert!(
            err.contains(name),
            "{name}: the error names the file: {err}"
        );
        assert!(err.contains(says), "{name}: {err}");
        assert!(err.len() < 400, "{name}: a clear, short message: {err}");
    }
    assert_eq!(snapshot(&t, dir.path()), before, "the library changed");

    // The CLI: one line per file, good files imported, bad ones named, exit status 1.
    let out = Command::new(common::troupe_bin())
        .arg("import")
        .arg(&good_file)
        .arg(bad.join("bad-crc.png"))
        .env("TROUPE_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stdout.contains(good_line), "{stdout}");
    assert!(
        stderr.contains("bad-crc.png: the PNG is damaged"),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 2 files not imported"), "{stderr}");
}

#[test]
fn cli_exports_every_format_and_imports_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(common::troupe_bin())
            .args(args)
            .env("TROUPE_DATA_DIR", dir.path())
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for format in ["png", "json", "charx"] {
        let path = run(&["export", "sherlock-holmes", "--format", format]);
        assert_eq!(path.trim(), format!("sherlock-holmes.{format}"));
        let line = run(&["import", path.trim()]);
        assert!(line.starts_with("sherlock-holmes-"), "{line}");
        assert!(line.contains("\tfictional\tSherlock Holmes"), "{line}");
    }
}

/// A real 1 × 1 PNG with `chunks` (type, data) inserted before IEND.
fn png_with_chunks(chunks: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut p = Vec::new();
    image::DynamicImage::new_rgb8(1, 1)
        .write_to(&mut std::io::Cursor::new(&mut p), image::ImageFormat::Png)
        .unwrap();
    let iend = p.len() - 12;
    let mut out = p[..iend].to_vec();
    for (kind, data) in chunks {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(*kind);
        out.extend_from_slice(data);
        let mut h = crc32fast::Hasher::new();
        h.update(*kind);
        h.update(data);
        out.extend_from_slice(&h.finalize().to_be_bytes());
    }
    out.extend_from_slice(&p[iend..]);
    out
}

/// Runs `troupe import FILE` and returns (stdout, stderr, success, peak resident memory in MB),
/// the peak read from the child's own high-water mark until it exits.
fn import_measured(data: &Path, file: &Path) -> (String, String, bool, f64) {
    use std::io::Read;
    let mut child = Command::new(common::troupe_bin())
        .arg("import")
        .arg(file)
        .env("TROUPE_DATA_DIR", data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0f64;
    let status = loop {
        if let Some(hwm) = std::fs::read_to_string(&status_path).ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        }) {
            peak_kb = peak_kb.max(hwm);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (out, err, status.success(), peak_kb / 1024.0)
}

#[test]
fn a_png_of_compressed_text_chunks_cannot_exhaust_memory() {
    // 150 zTXt chunks that each inflate to 32 MB (4.8 GB in all, 5 MB on disk) around a real
    // card: the reader decompresses only the card's own chunk. Then the same chunks all named
    // `chara`: one allowance for all of them, and a clear error.
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![b'A'; 32 << 20]).unwrap();
    let bomb = z.finish().unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let card = [
        b"chara\0".to_vec(),
        b64(r#"{"name":"Bomb","first_mes":"hi","description":"d"}"#).into_bytes(),
    ]
    .concat();
    let filler = |keyword: &[u8]| {
        let mut d = keyword.to_vec();
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(&bomb);
        (b"zTXt", d)
    };
    let mut many_comments = vec![(b"tEXt", card)];
    many_comments.extend((0..150).map(|_| filler(b"Comment")));
    let many_cards: Vec<_> = (0..150).map(|_| filler(b"chara")).collect();

    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        dir.path().join("comments.png"),
        dir.path().join("cards.png"),
    );
    std::fs::write(&a, png_with_chunks(&many_comments)).unwrap();
    std::fs::write(&b, png_with_chunks(&many_cards)).unwrap();
    let data = dir.path().join("data");

    let (out, err, ok, peak) = import_measured(&data, &a);
    eprintln!("150 compressed comments around a card: peak {peak:.0} MB");
    assert!(ok, "{err}");
    assert!(out.contains("\tBomb"), "{out}");
    assert!(peak < 100.0, "importing took {peak:.0} MB");

    let (_, err, ok, peak) = import_measured(&data, &b);
    eprintln!("150 compressed card chunks: peak {peak:.0} MB");
    assert!(!ok);
    assert!(
        err.contains("cards.png") && err.contains("inflates past 32 MB"),
        "{err}"
    );
    assert!(peak < 100.0, "refusing took {peak:.0} MB");
}

#[test]
fn imported_cards_are_held_to_the_editors_limits() {
    use troupe::characters::{MAX_NAME, MAX_TAGS, MAX_TEXT};
    let dir = tempfile::tempdir().unwrap();
    let t = Troupe::open(Paths::at(dir.path())).unwrap();
    let card = |data: serde_json::Value| {
        serde_json::json!({"spec": "chara_card_v2", "spec_version": "2.0", "data": data})
            .to_string()
            .into_bytes()
    };
    // What can be fitted without changing the character is: a long name, tags with commas and
    // too many of them, an example without a reply. The editor can then save it as it is.
    let mut tags: Vec<String> = (0..40).map(|i| format!("tag{i}")).collect();
    tags.insert(0, "bread, cakes".into());
    let long = card(serde_json::json!({
        "name": "N".repeat(200), "description": "A baker.", "tags": tags,
        "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hello.\n<START>\n{{user}}: And?\n{{char}}:",
    }));
    let Imported::Character(c) = t.import_card_bytes("long.json", &long, None).unwrap() else {
        panic!("a card")
    };
    let c = t.store.get_character(&c.id).unwrap();
    assert!(c.problems().is_empty(), "{:?}", c.problems());
    assert_eq!(c.name.chars().count(), MAX_NAME);
    assert_eq!(c.tags.len(), MAX_TAGS);
    assert_eq!(&c.tags[..2], ["bread", "cakes"]);
    assert_eq!(c.example_dialogue.len(), 1);
    // What cannot be fitted without cutting the character's text is refused, naming the file
    // and the field, and nothing is added.
    let before = t.characters().unwrap().len();
    let huge = card(serde_json::json!({"name": "Huge", "description": "x".repeat(MAX_TEXT + 1)}));
    let e = t
        .import_card_bytes("huge.json", &huge, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("huge.json") && e.contains("description"), "{e}");
    assert_eq!(t.characters().unwrap().len(), before);
}
