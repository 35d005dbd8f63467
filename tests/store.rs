//! The store on a real SQLite file: what is written survives reopening, a reply left
//! `streaming` by a crash reopens as `interrupted`, a database from a newer Troupe is refused
//! rather than damaged, and a write waits for another process's write instead of failing.

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
    // A crash also ends the process that was writing: here the row names one that has exited.
    written_by_a_finished_process(dir.path(), reply_id);
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

#[test]
fn a_write_waits_for_another_processs_write_instead_of_failing() {
    // The window and the CLI share the file. Here the other side holds the write lock for
    // 300 ms while the store adds a message and starts a Session, each of which reads a row
    // before it writes: both wait for the lock (busy timeout) and then write; neither fails
    // with "database is locked".
    let dir = tempfile::tempdir().unwrap();
    let troupe = Troupe::open(Paths::at(dir.path())).unwrap();
    let s = troupe
        .store
        .create_session("ada-lovelace", Scenario::ChitChat, "t", None, 1)
        .unwrap();
    for attempt in ["insert_message", "create_session"] {
        let other = rusqlite::Connection::open(dir.path().join("troupe.db")).unwrap();
        other
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; UPDATE sessions SET title = 'other side' WHERE id = {};",
                s.id
            ))
            .unwrap();
        let started = std::time::Instant::now();
        let releases = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            other.execute_batch("COMMIT").unwrap();
        });
        let result = match attempt {
            "insert_message" => troupe
                .store
                .insert_message(s.id, Role::User, "hello", MessageStatus::Complete, 2)
                .map(|_| ()),
            _ => troupe
                .store
                .create_session("ada-lovelace", Scenario::Interview, "t2", Some("Hi"), 3)
                .map(|_| ()),
        };
        releases.join().unwrap();
        assert!(result.is_ok(), "{attempt}: {result:?}");
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(250),
            "{attempt} did not wait for the other side's write"
        );
    }
    assert_eq!(troupe.store.get_session(s.id).unwrap().title, "other side");
    assert_eq!(troupe.store.list_messages(s.id).unwrap().len(), 1);
}

#[test]
fn a_database_error_mid_reply_leaves_the_reply_interrupted_not_streaming() {
    // The disk refuses the reply's third piece (a trigger stands in for an I/O error): the
    // reply keeps what was shown, is marked interrupted, and can be edited at once, instead of
    // staying `streaming` (locked) until the next start.
    use troupe::conversation::{self, Cancel, TurnEvent};
    use troupe::engine::{Sampling, ScriptedEngine};
    let dir = tempfile::tempdir().unwrap();
    let troupe = Troupe::open(Paths::at(dir.path())).unwrap();
    let s = troupe
        .store
        .create_session("ada-lovelace", Scenario::ChitChat, "t", None, 1)
        .unwrap();
    rusqlite::Connection::open(dir.path().join("troupe.db"))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE UPDATE OF content ON messages
             WHEN NEW.content LIKE '%third%' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;",
        )
        .unwrap();
    let engine = ScriptedEngine::new(
        &["First", " second", " third", " fourth."],
        std::time::Duration::from_millis(1),
    );
    let mut shown = String::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(conversation::send(
        &troupe.store,
        &engine,
        s.id,
        "Hello",
        &Sampling::greedy(50),
        &Cancel::new(),
        &|| 2,
        &mut |e| {
            if let TurnEvent::Text(t) = e {
                shown.push_str(&t);
            }
        },
    ));
    assert!(result.is_err(), "{result:?}");
    let reply = troupe.store.list_messages(s.id).unwrap().pop().unwrap();
    assert_eq!(reply.status, MessageStatus::Interrupted);
    assert_eq!(reply.content, shown);
    assert_eq!(shown, "First second");
    troupe.store.edit_message(reply.id, "Edited.").unwrap();
}

#[cfg(unix)]
#[test]
fn the_library_is_private_to_its_user() {
    // Years of conversations: the data folder is its owner's only, and so are the database
    // and the settings (which may hold a server's API key).
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let troupe = Troupe::open(Paths::at(&data)).unwrap();
    troupe.settings().save(&troupe.paths.settings()).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data folder");
    assert_eq!(mode(&data.join("troupe.db")), 0o600, "the database");
    assert_eq!(mode(&troupe.paths.settings()), 0o600, "settings.json");
}

/// Marks message `id` as written by a process that has exited, as a crash leaves it.
fn written_by_a_finished_process(data: &std::path::Path, id: i64) {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    rusqlite::Connection::open(data.join("troupe.db"))
        .unwrap()
        .execute(
            "UPDATE messages SET owner = ?2 WHERE id = ?1",
            rusqlite::params![id, format!("{pid}:0")],
        )
        .unwrap();
}

#[test]
fn opening_the_library_beside_a_live_reply_leaves_it_alone() {
    // The window writes a reply while the CLI opens the same library: the reply is not marked
    // interrupted under the window, and it finishes as usual. A reply whose writer is gone, and
    // one from before writers were recorded, are.
    let dir = tempfile::tempdir().unwrap();
    let window = Troupe::open(Paths::at(dir.path())).unwrap();
    let s = window
        .store
        .create_session("ada-lovelace", Scenario::ChitChat, "t", None, 1)
        .unwrap();
    let live = window
        .store
        .insert_message(s.id, Role::Character, "", MessageStatus::Streaming, 2)
        .unwrap();
    window.store.append_to_message(live.id, "Good").unwrap();

    let cli = Store::open(&dir.path().join("troupe.db")).unwrap();
    let seen = cli.get_message(live.id).unwrap().unwrap();
    assert_eq!(seen.status, MessageStatus::Streaming);
    window.store.append_to_message(live.id, " day.").unwrap();
    window
        .store
        .finish_message(live.id, "Good day.", MessageStatus::Complete)
        .unwrap();
    let done = cli.get_message(live.id).unwrap().unwrap();
    assert_eq!(
        (done.content.as_str(), done.status),
        ("Good day.", MessageStatus::Complete)
    );

    let dead = window
        .store
        .insert_message(s.id, Role::Character, "Half", MessageStatus::Streaming, 3)
        .unwrap();
    written_by_a_finished_process(dir.path(), dead.id);
    let old = window
        .store
        .insert_message(s.id, Role::Character, "Older", MessageStatus::Streaming, 4)
        .unwrap();
    rusqlite::Connection::open(dir.path().join("troupe.db"))
        .unwrap()
        .execute("UPDATE messages SET owner = NULL WHERE id = ?1", [old.id])
        .unwrap();
    let reopened = Store::open(&dir.path().join("troupe.db")).unwrap();
    for id in [dead.id, old.id] {
        let m = reopened.get_message(id).unwrap().unwrap();
        assert_eq!(m.status, MessageStatus::Interrupted, "{}", m.content);
    }
    // A row someone else closed is not written into by its late writer.
    window.store.append_to_message(dead.id, " more").unwrap();
    assert_eq!(
        reopened.get_message(dead.id).unwrap().unwrap().content,
        "Half"
    );
}
