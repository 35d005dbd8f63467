//! Making and keeping Characters, as the editor and the gallery do it, on a real data directory
//! (SQLite file and avatar files): save a new Character with a cropped picture, edit it,
//! duplicate it, trash and restore it, empty the trash; a refused save changes nothing; a
//! built-in the user removed stays removed after a restart. With the real default model: the
//! editor's preview renders the opening prompt through the model's own chat template, and the
//! model writes a summary, a paraphrase and a self-introduction from a profile.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use troupe::app::{AvatarChange, EditError, Troupe};
use troupe::characters::Scenario;
use troupe::characters::{avatar, Character, ProfileForm};
use troupe::conversation::{forms, prompt};
use troupe::engine::{mistral::MistralEngine, Engine};
use troupe::settings::Paths;

/// Every file in the avatars folder with its bytes.
fn avatar_files(t: &Troupe) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(t.paths.avatars())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn photo(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    out
}

fn marta() -> Character {
    let mut c = Character::blank();
    c.name = "  Marta Sousa ".into();
    c.tagline = "Bakes at dawn in Alfama".into();
    c.tags = vec![" baker".into(), "Lisbon".into(), "".into()];
    c.profile.attributes.identity = "A baker in Lisbon, 58".into();
    c.profile.behaviours.linguistic_style = "Warm, short sentences".into();
    c.greetings.chit_chat = "Bom dia! The first loaves are out.".into();
    c
}

fn png_side(bytes: &[u8]) -> u32 {
    image::load_from_memory(bytes).unwrap().width()
}

#[test]
fn create_edit_duplicate_trash_restore_and_empty() {
    let dir = tempfile::tempdir().unwrap();
    let t = Troupe::open(Paths::at(dir.path())).unwrap();
    let before = avatar_files(&t);

    // New, with a picture cropped to its top-left quarter.
    let c = t
        .save_character(
            marta(),
            AvatarChange::Set {
                bytes: photo(800, 600),
                crop: Some(avatar::Crop {
                    x: 0.0,
                    y: 0.0,
                    scale: 0.5,
                }),
            },
            true,
        )
        .unwrap();
    assert_eq!(c.id, "marta-sousa");
    assert_eq!(c.name, "Marta Sousa", "the name is trimmed");
    assert_eq!(
        c.tags,
        ["baker", "Lisbon"],
        "tags are trimmed, empty ones dropped"
    );
    let name = c.avatar.clone().unwrap();
    let files = avatar_files(&t);
    assert_eq!(png_side(&files[&name]), avatar::FULL);
    assert_eq!(png_side(&files[&avatar::thumb_name(&name)]), avatar::THUMB);
    // Top-left of the photo is dark red-ish: x and y small.
    let full = image::load_from_memory(&files[&name]).unwrap().to_rgb8();
    let px = full.get_pixel(2, 2).0;
    assert!(px[0] < 16 && px[1] < 16, "{px:?}");
    let stored = t.store.get_character(&c.id).unwrap();
    assert_eq!(stored, c);

    // Edit: a new picture replaces the old files; the row and the files agree.
    let mut edited = stored.clone();
    edited.profile.attributes.interests = "fado; sourdough".into();
    let edited = t
        .save_character(
            edited,
            AvatarChange::Set {
                bytes: photo(300, 300),
                crop: None,
            },
            false,
        )
        .unwrap();
    let new_name = edited.avatar.clone().unwrap();
    assert_ne!(
        new_name, name,
        "a new file name, so the window does not show a cached picture"
    );
    let files = avatar_files(&t);
    assert!(!files.contains_key(&name) && !files.contains_key(&avatar::thumb_name(&name)));
    assert!(files.contains_key(&new_name));
    assert_eq!(
        t.store
            .get_character(&c.id)
            .unwrap()
            .profile
            .attributes
            .interests,
        "fado; sourdough"
    );

    // A refused save changes nothing: not the row, not the files.
    let mut bad = edited.clone();
    bad.name = " ".into();
    bad.profile.attributes.identity = "changed".into();
    match t.save_character(bad, AvatarChange::Remove, false) {
        Err(EditError::Invalid(p)) => assert_eq!(p[0].field, "name"),
        other => panic!("{other:?}"),
    }
    let mut huge = edited.clone();
    huge.tagline = "changed".into();
    let bomb = {
        let mut p = photo(8, 8);
        // Not a JPEG any more: unreadable.
        p.truncate(40);
        p
    };
    assert!(matches!(
        t.save_character(
            huge,
            AvatarChange::Set {
                bytes: bomb,
                crop: None
            },
            false
        ),
        Err(EditError::Avatar(_))
    ));
    assert_eq!(t.store.get_character(&c.id).unwrap(), edited);
    assert_eq!(avatar_files(&t), files);

    // Duplicate: its own id, name and picture file; no sessions.
    let copy = t.duplicate_character(&c.id).unwrap();
    assert_eq!(
        (copy.id.as_str(), copy.name.as_str()),
        ("marta-sousa-copy", "Marta Sousa (copy)")
    );
    assert_ne!(copy.avatar, edited.avatar);
    assert!(t.store.list_sessions(&copy.id).unwrap().is_empty());
    assert_eq!(copy.profile, edited.profile);

    // Trash and restore keep the Sessions; emptying the trash removes rows, Sessions and files.
    let s = t
        .store
        .create_session(&c.id, Scenario::ChitChat, "t", Some("hi"), 1)
        .unwrap();
    t.trash_character(&c.id).unwrap();
    assert!(t
        .store
        .list_characters()
        .unwrap()
        .iter()
        .all(|x| x.id != c.id));
    t.store.restore_character(&c.id).unwrap();
    assert_eq!(t.store.list_messages(s.id).unwrap().len(), 1);
    t.trash_character(&c.id).unwrap();
    t.trash_character(&copy.id).unwrap();
    assert_eq!(t.empty_trash().unwrap(), 2);
    assert!(t.store.get_session(s.id).is_err());
    assert_eq!(
        avatar_files(&t),
        before,
        "only the built-ins' pictures are left"
    );
}

#[test]
fn a_removed_builtin_stays_removed_and_an_edited_one_stays_edited() {
    let dir = tempfile::tempdir().unwrap();
    {
        let t = Troupe::open(Paths::at(dir.path())).unwrap();
        t.trash_character("sherlock-holmes").unwrap();
        t.empty_trash().unwrap();
        let mut ada = t.store.get_character("ada-lovelace").unwrap();
        ada.tagline = "My own Ada".into();
        t.save_character(ada, AvatarChange::Keep, false).unwrap();
    }
    // The next start (an app update installs built-ins the same way) respects both.
    let t = Troupe::open(Paths::at(dir.path())).unwrap();
    assert!(!t.store.has_character("sherlock-holmes").unwrap());
    assert_eq!(
        t.store.get_character("ada-lovelace").unwrap().tagline,
        "My own Ada"
    );
    assert!(Path::new(&t.paths.avatars())
        .join(avatar::thumb_name("ada-lovelace.png"))
        .is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_renders_the_opening_and_writes_profile_forms() {
    let engine = MistralEngine::load(&common::small_model(), Some(&Paths::model_cache()))
        .await
        .expect("the default model loads");
    let mut c = troupe::characters::builtin::all()
        .into_iter()
        .find(|c| c.id == "marie-curie")
        .unwrap();

    // The preview's prompt: the model's ChatML, with the system prompt and the greeting, and
    // the same count the turn uses.
    let opening = prompt::opening(&c, Scenario::Interview);
    let r = engine.render_prompt(&opening).await.unwrap();
    assert!(r.exact);
    assert!(
        r.text
            .starts_with("<|im_start|>system\nYou are Marie Curie."),
        "{}",
        &r.text[..80]
    );
    assert!(r.text.contains(&format!(
        "<|im_start|>assistant\n{}<|im_end|>",
        c.greeting(Scenario::Interview).unwrap()
    )));
    assert!(r.text.ends_with("<|im_start|>assistant\n"));
    assert_eq!(
        r.tokens,
        engine.count_prompt_tokens(&opening).await.unwrap()
    );

    for form in [
        ProfileForm::Summary,
        ProfileForm::Paraphrase,
        ProfileForm::SelfIntro,
    ] {
        let text = forms::write(&engine, &c, form, &Default::default())
            .await
            .unwrap();
        println!("{form:?}: {text}");
        assert!(text.len() > 20, "{form:?}: {text:?}");
        assert!(!text.contains("<|im_"), "{text:?}");
        assert!(
            text.ends_with(['.', '!', '?', '"', '*', ')']),
            "{form:?} ends mid-sentence: {text:?}"
        );
        c.profile.forms.set(form, text);
    }
    // Stop: nothing is written and the engine is free for the next request.
    let stop = troupe::app::Cancel::new();
    stop.cancel();
    assert!(matches!(
        forms::write(&engine, &c, ProfileForm::Summary, &stop).await,
        Err(forms::FormError::Stopped)
    ));
    // Chosen, the self-introduction stands for the profile in the prompt.
    c.profile.uses = ProfileForm::SelfIntro;
    let system = prompt::system_prompt(&c, Scenario::ChitChat);
    assert!(system.contains(&c.profile.forms.self_intro));
    assert!(!system.contains(&c.profile.to_prose(&c.name)));
}
