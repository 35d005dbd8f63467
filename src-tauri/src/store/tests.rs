//! The store's unit tests, on an in-memory database.

use super::*;
use crate::characters::builtin;
use crate::characters::Scenario;

fn store_with_builtins() -> Store {
    let store = Store::open_in_memory().unwrap();
    for c in builtin::all() {
        store.insert_character_if_absent(&c, true, 1).unwrap();
    }
    store
}

#[test]
fn session_starts_with_the_greeting() {
    let store = store_with_builtins();
    let c = builtin::all().remove(0);
    let s = store
        .create_session(&c.id, Scenario::Interview, "t", Some("Hello there"), 10)
        .unwrap();
    let msgs = store.list_messages(s.id).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].role, Role::Character);
    assert_eq!(msgs[0].content, "Hello there");
    assert_eq!(s.scenario, Scenario::Interview);
    assert_eq!(s.n_messages, 1);
}

#[test]
fn streaming_message_grows_and_finishes() {
    let store = store_with_builtins();
    let c = builtin::all().remove(0);
    let s = store
        .create_session(&c.id, Scenario::ChitChat, "t", None, 10)
        .unwrap();
    let m = store
        .insert_message(s.id, Role::Character, "", MessageStatus::Streaming, 11)
        .unwrap();
    store.append_to_message(m.id, "Hel").unwrap();
    store.append_to_message(m.id, "lo").unwrap();
    assert_eq!(store.get_message(m.id).unwrap().unwrap().content, "Hello");
    store
        .finish_message(m.id, "Hello!", MessageStatus::Complete)
        .unwrap();
    let got = store.get_message(m.id).unwrap().unwrap();
    assert_eq!(
        (got.content.as_str(), got.status),
        ("Hello!", MessageStatus::Complete)
    );
}

#[test]
fn builtins_never_overwrite_user_edits() {
    let store = store_with_builtins();
    let mut c = builtin::all().remove(0);
    c.name = "Edited by the user".into();
    assert!(!store.insert_character_if_absent(&c, true, 2).unwrap());
    assert_ne!(
        store.get_character(&c.id).unwrap().name,
        "Edited by the user"
    );
}

#[test]
fn unknown_ids_are_typed_errors() {
    let store = store_with_builtins();
    assert!(matches!(
        store.get_character("nobody"),
        Err(Error::CharacterNotFound(_))
    ));
    assert!(matches!(
        store.create_session("nobody", Scenario::ChitChat, "t", None, 1),
        Err(Error::CharacterNotFound(_))
    ));
    assert!(matches!(
        store.insert_message(99, Role::User, "x", MessageStatus::Complete, 1),
        Err(Error::SessionNotFound(99))
    ));
}

#[test]
fn trash_keeps_sessions_until_purged_and_removed_builtins_stay_removed() {
    let store = store_with_builtins();
    let c = builtin::all().remove(0);
    let s = store
        .create_session(&c.id, Scenario::ChitChat, "t", Some("hi"), 5)
        .unwrap();
    store.trash_character(&c.id, 100).unwrap();
    assert!(store
        .list_characters()
        .unwrap()
        .iter()
        .all(|x| x.id != c.id));
    assert_eq!(store.list_trash().unwrap()[0].deleted_at, Some(100));
    assert!(store.search_characters(&c.name).unwrap().is_empty());
    // Purging what was deleted before 100 leaves it; restoring brings it back whole.
    assert!(store.purge_trash(100, 200).unwrap().is_empty());
    store.restore_character(&c.id).unwrap();
    assert!(store
        .list_characters()
        .unwrap()
        .iter()
        .any(|x| x.id == c.id));
    assert_eq!(store.list_messages(s.id).unwrap().len(), 1);

    store.trash_character(&c.id, 300).unwrap();
    let gone = store.purge_trash(i64::MAX, 400).unwrap();
    assert_eq!(gone.len(), 1);
    assert!(matches!(
        store.get_session(s.id),
        Err(Error::SessionNotFound(_))
    ));
    assert!(!store.insert_character_if_absent(&c, true, 500).unwrap());
    assert!(!store.has_character(&c.id).unwrap());
}

#[test]
fn search_finds_profile_text_but_not_field_names() {
    let store = store_with_builtins();
    let ada = store.get_character("ada-lovelace").unwrap();
    let word = ada
        .profile
        .attributes
        .achievements
        .split_whitespace()
        .find(|w| w.len() > 7)
        .unwrap()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_uppercase();
    assert!(store.search_characters(&word).unwrap().contains(&ada.id));
    assert!(store
        .search_characters("interaction_patterns")
        .unwrap()
        .is_empty());
    assert!(store.search_characters("100%_").unwrap().is_empty());
    assert_eq!(store.search_characters("ada").unwrap()[0], "ada-lovelace");
}

#[test]
fn search_follows_every_change_and_takes_any_text() {
    let store = store_with_builtins();
    let c = builtin::all().remove(0);
    let s = store
        .create_session(
            &c.id,
            Scenario::ChitChat,
            "t",
            Some("Welcome to the orchard"),
            1,
        )
        .unwrap();
    let found = |q: &str| -> Vec<i64> {
        store
            .search_messages(q, 10)
            .unwrap()
            .into_iter()
            .map(|h| h.message_id)
            .collect()
    };
    let greeting = store.list_messages(s.id).unwrap()[0].id;
    assert_eq!(found("orchard"), [greeting]);
    // A streamed reply is found once it is finished, by its final text.
    let r = store
        .insert_message(s.id, Role::Character, "", MessageStatus::Streaming, 2)
        .unwrap();
    store.append_to_message(r.id, "The pears are ").unwrap();
    assert!(found("pears").is_empty());
    store
        .finish_message(r.id, "The pears are ripe.", MessageStatus::Complete)
        .unwrap();
    assert_eq!(found("pears ripe"), [r.id]);
    assert_eq!(found("pea*"), [r.id]);
    store.edit_message(r.id, "The plums are ripe.").unwrap();
    assert!(found("pears").is_empty());
    assert_eq!(found("PLUMS"), [r.id]);
    // FTS syntax is text here: none of these is an error.
    for q in ["\"", "AND", "plums -ripe", "a:b", "(", "*", "NEAR(x y)", ""] {
        store.search_messages(q, 10).unwrap();
    }
    let hit = &store.search_messages("plums", 10).unwrap()[0];
    assert_eq!(hit.snippet, "The [plums] are ripe.");
    assert_eq!(hit.character_id, c.id);
    store.delete_message(r.id, 0).unwrap();
    assert!(found("plums").is_empty());
    // A trashed Session's messages are not found; restored, they are; purged, they are gone
    // from the index too.
    store.trash_session(s.id, 5).unwrap();
    assert!(found("orchard").is_empty());
    assert_eq!(
        store.purge_sessions(5).unwrap(),
        0,
        "only sessions trashed before 5"
    );
    store.restore_session(s.id).unwrap();
    assert_eq!(found("orchard"), [greeting]);
    // A streaming row cannot be edited or deleted under the writer.
    let r = store
        .insert_message(s.id, Role::Character, "x", MessageStatus::Streaming, 6)
        .unwrap();
    assert!(matches!(
        store.edit_message(r.id, "y"),
        Err(Error::MessageBusy(_))
    ));
    assert!(matches!(
        store.delete_message(r.id, 0),
        Err(Error::MessageBusy(_))
    ));
    // Through all of that, the index stayed in step with the messages.
    store
        .finish_message(r.id, "x done", MessageStatus::Complete)
        .unwrap();
    store.check_search_index().unwrap();
}

#[test]
fn a_branch_copies_the_messages_up_to_the_one_chosen() {
    let store = store_with_builtins();
    let c = builtin::all().remove(0);
    let s = store
        .create_session(&c.id, Scenario::Interview, "Talk", Some("Hello"), 1)
        .unwrap();
    let a = store
        .insert_message(s.id, Role::User, "one", MessageStatus::Complete, 2)
        .unwrap();
    store
        .insert_message(s.id, Role::Character, "two", MessageStatus::Complete, 3)
        .unwrap();
    let greeting = store.list_messages(s.id).unwrap()[0].id;
    let b = store.branch_session(a.id, 10).unwrap();
    assert_eq!(
        (b.scenario, b.title.as_str(), b.n_messages),
        (Scenario::Interview, "Talk (branch)", 2)
    );
    let g = store.branch_session(greeting, 11).unwrap();
    assert_eq!(store.list_messages(g.id).unwrap()[0].content, "Hello");
    assert_eq!(
        store.list_messages(s.id).unwrap().len(),
        3,
        "the original is untouched"
    );
    assert_eq!(
        store
            .recent_messages(s.id, 2)
            .unwrap()
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>(),
        ["one", "two"]
    );
}

#[test]
fn personas_default_and_memories_reach_their_sessions() {
    let store = store_with_builtins();
    let c = builtin::all().remove(0);
    let s = store
        .create_session(&c.id, Scenario::Companionship, "t", None, 1)
        .unwrap();
    assert_eq!(store.session_persona(s.id).unwrap().name, "User");
    let sam = store
        .save_persona(
            &Persona {
                id: 0,
                name: "Sam".into(),
                description: "A nurse.".into(),
                is_default: true,
            },
            2,
        )
        .unwrap();
    let s2 = store
        .create_session(&c.id, Scenario::Companionship, "t", None, 3)
        .unwrap();
    assert_eq!(store.session_persona(s2.id).unwrap().name, "Sam");
    assert_eq!(store.session_persona(s.id).unwrap().name, "User");
    assert!(matches!(
        store.delete_persona(sam.id, 0),
        Err(Error::DefaultPersona)
    ));
    assert_eq!(
        store.list_personas().unwrap().len(),
        2,
        "the default cannot be deleted"
    );
    store
        .add_memory(
            &c.id,
            Some(s.id),
            MemoryKind::Fact,
            "I have a dog.",
            None,
            4,
        )
        .unwrap();
    store
        .add_memory(&c.id, None, MemoryKind::Pinned, "Call me Sam.", None, 5)
        .unwrap();
    let kinds = |sid| -> Vec<&'static str> {
        store
            .memories_for_session(sid)
            .unwrap()
            .iter()
            .map(|m| m.kind.as_str())
            .collect()
    };
    assert_eq!(kinds(s.id), ["fact", "pinned"]);
    assert_eq!(
        kinds(s2.id),
        ["pinned"],
        "the Character's memory reaches every Session"
    );
}

#[test]
fn gallery_lists_recently_chatted_first() {
    let store = store_with_builtins();
    let all = builtin::all();
    let last = all.last().unwrap();
    store
        .create_session(&last.id, Scenario::ChitChat, "t", Some("hi"), 500)
        .unwrap();
    let list = store.list_characters().unwrap();
    assert_eq!(list.len(), all.len());
    assert_eq!(list[0].id, last.id);
    assert_eq!(list[0].last_chat_at, Some(500));
}

#[test]
fn ratings_replace_refuse_out_of_range_and_go_with_their_session() {
    let store = store_with_builtins();
    let c = builtin::all().remove(0);
    let s = store
        .create_session(&c.id, Scenario::ChitChat, "t", Some("Hi"), 10)
        .unwrap();
    let reply = store
        .insert_message(s.id, Role::Character, "Hello", MessageStatus::Complete, 11)
        .unwrap();
    let rating = |overall: u8| Rating {
        session_id: s.id,
        model: "a.gguf".into(),
        setup: "{}".into(),
        scores: Scores {
            consistency: 4,
            human_likeness: 4,
            engagement: 4,
            quality: 4,
            safety: 5,
            correctness: 3,
            overall,
        },
        comment: String::new(),
        created_at: 12,
    };
    store.save_rating(&rating(3)).unwrap();
    store.save_rating(&rating(5)).unwrap();
    assert_eq!(store.rating(s.id).unwrap(), Some(rating(5)), "replaced");
    assert!(store.save_rating(&rating(6)).is_err(), "SQL refuses 6");
    assert_eq!(store.rating(s.id).unwrap(), Some(rating(5)));

    store.set_thumb(reply.id, 1, "a.gguf", 13).unwrap();
    store.set_thumb(reply.id, -1, "a.gguf", 14).unwrap();
    assert_eq!(store.thumbs(s.id).unwrap(), vec![(reply.id, -1)]);
    let avg = store.rating_averages(Some(&c.id)).unwrap();
    assert_eq!(
        store.rating_averages(None).unwrap(),
        avg,
        "one Character: the same overall"
    );
    assert_eq!(avg.len(), 1);
    assert_eq!((avg[0].sessions, avg[0].thumbs_down), (1, 1));
    assert_eq!(avg[0].means[6], 5.0);

    // Deleting the Session for good takes its rating and thumbs with it.
    store
        .conn()
        .execute("DELETE FROM sessions WHERE id = ?1", [s.id])
        .unwrap();
    assert_eq!(store.rating(s.id).unwrap(), None);
    assert!(store.rating_averages(Some(&c.id)).unwrap().is_empty());
}
