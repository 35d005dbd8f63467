//! The store on a real SQLite file: what is written survives reopening, a reply left
//! `streaming` by a crash reopens as `interrupted`, and a database from a newer Troupe is
//! refused rather than damaged.

use troupe::app::Troupe;
use troupe::characters::Scenario;
use troupe::settings::Paths;
use troupe::store::{Error, MessageStatus, Role, Store};

#[test]
fn data_survives_reopening_and_crash_leftovers_are_marked() {
    let dir = tempfile::tempdir().unwrap();
    let (sid, reply_id) = {
        let troupe = Troupe::open(Paths::at(dir.path())).unwrap();
        let s = troupe
            .store
            .create_session(
                "ada-lovelace",
                Scenario::Companionship,
                "t",
                Some("Welcome"),
                1,
            )
            .unwrap();
        troupe
            .store
            .insert_message(
                s.id,
                Role::User,
                "I had a hard day",
                MessageStatus::Complete,
                2,
            )
            .unwrap();
        let r = troupe
            .store
            .insert_message(s.id, Role::Character, "", MessageStatus::Streaming, 3)
            .unwrap();
        troupe.store.append_to_message(r.id, "Oh, my dear").unwrap();
        (s.id, r.id)
        // Dropped without finishing the reply, as a crash would leave it.
    };
    let troupe = Troupe::open(Paths::at(dir.path())).unwrap();
    let msgs = troupe.store.list_messages(sid).unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[2].id, reply_id);
    assert_eq!(msgs[2].content, "Oh, my dear");
    assert_eq!(msgs[2].status, MessageStatus::Interrupted);
    assert_eq!(troupe.store.integrity_check().unwrap(), "ok");
    assert!(dir.path().join("avatars/ada-lovelace.png").is_file());
    let sessions = troupe.store.list_sessions("ada-lovelace").unwrap();
    assert_eq!(sessions[0].scenario, Scenario::Companionship);
}

#[test]
fn a_database_from_a_newer_troupe_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("troupe.db");
    drop(Store::open(&path).unwrap());
    // Pretend a future version migrated it further.
    let conn = rusqlite_free_bump(&path);
    assert!(conn, "could not bump user_version");
    match Store::open(&path) {
        Err(Error::TooNew { found, known }) => assert!(found > known),
        other => panic!("expected TooNew, got {:?}", other.map(|_| ())),
    }
}

/// Sets `PRAGMA user_version` through the sqlite3 file format itself (offset 60, big-endian),
/// so this test needs no SQLite driver of its own.
fn rusqlite_free_bump(path: &std::path::Path) -> bool {
    // Checkpoint the WAL into the main file first by reopening and closing cleanly.
    drop(Store::open(path).unwrap());
    let mut bytes = std::fs::read(path).unwrap();
    if bytes.len() < 100 {
        return false;
    }
    bytes[60..64].copy_from_slice(&999u32.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
    let _ = std::fs::remove_file(path.with_extension("db-wal"));
    let _ = std::fs::remove_file(path.with_extension("db-shm"));
    true
}

#[test]
fn a_garbage_database_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("troupe.db");
    std::fs::write(
        &path,
        b"this is not a database, it is a poem about databases".repeat(100),
    )
    .unwrap();
    let err = Store::open(&path).err().expect("garbage must not open");
    let msg = err.to_string();
    assert!(msg.contains("troupe.db"), "{msg}");
    // Nothing was overwritten.
    assert!(std::fs::read(&path)
        .unwrap()
        .starts_with(b"this is not a database"));
}
