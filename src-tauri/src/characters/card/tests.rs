//! The card reader's and writer's unit tests.

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
    let c = parse_card(r#"{"spec":"chara_card_v3","data":{"name":"V","first_mes":"x"}}"#).unwrap();
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

#[test]
fn json_without_any_card_field_is_refused() {
    // An object of an unknown spec, a settings file, an empty object: none is a card.
    for json in [
        r#"{"spec":"some_other_format","payload":{"name":"X"}}"#,
        r#"{"theme":"dark","volume":3}"#,
        "{}",
    ] {
        assert_eq!(
            read(json.as_bytes()).unwrap_err(),
            CardError::NoCardFields,
            "{json}"
        );
    }
    // One card field is enough (a V1 card that has only a name).
    assert!(read(br#"{"name":"Just a name"}"#).is_ok());
}

#[test]
fn json_nested_too_deep_is_refused_and_what_imports_opens_again() {
    let nested = |levels: usize| {
        format!(
            r#"{{"spec":"chara_card_v2","data":{{"name":"Deep","first_mes":"hi","extensions":{{"x":{}1{}}}}}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    // 120 levels: serde_json reads it, but the stored Character would be past its limit.
    assert_eq!(
        read(nested(120).as_bytes()).unwrap_err(),
        CardError::TooDeep
    );
    // Within the limit: imported, and the stored form reads back.
    let Imported::Card { character, .. } = read(nested(50).as_bytes()).unwrap() else {
        panic!("a card");
    };
    let stored = serde_json::to_string(&*character).unwrap();
    let again: Character = serde_json::from_str(&stored).unwrap();
    assert_eq!(again, *character);
}
