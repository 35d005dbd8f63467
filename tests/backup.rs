//! Nothing lost: snapshots, restore, export everything and import everything, on real data
//! directories (SQLite files, avatar files, real card fixtures), compared row by row with a
//! dump of every table and byte by byte for every avatar. Bad files (truncated, foreign,
//! tampered, from a newer Troupe) are refused with their name and change nothing. Undo brings a
//! deleted Message, Memory or Persona back; the trash's purge has a snapshot behind it and
//! never runs on opening the library (what every CLI command does).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use troupe::app::vocabulary::{MemoryKind, MessageStatus, Persona, Role, SnapshotReason};
use troupe::app::{BackupError, Imported, Troupe};
use troupe::characters::Scenario;
use troupe::settings::{BackupSettings, Paths};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/cards")
        .join(name)
}

fn open(dir: &Path) -> Troupe {
    Troupe::open(Paths::at(dir)).unwrap()
}

/// A Character imported from a real card (with its picture), and `sessions` Sessions with it,
/// each with messages, a prompt record, a pinned memory; a persona; a Character memory.
fn add_character(t: &Troupe, card: &str, sessions: usize, at: i64) -> String {
    let Imported::Character(c) = t.import_card(&fixture(card), None).unwrap() else {
        panic!("{card} is a card")
    };
    let persona = t
        .store
        .save_persona(
            &Persona {
                id: 0,
                name: format!("Reader of {}", c.name),
                description: "likes long letters".into(),
                is_default: false,
            },
            at,
        )
        .unwrap();
    for n in 0..sessions {
        let at = at + n as i64 * 1000;
        let s = t
            .store
            .create_session(
                &c.id,
                Scenario::Interview,
                &format!("talk {n}"),
                Some("Hello."),
                at,
            )
            .unwrap();
        t.store.set_session_persona(s.id, persona.id).unwrap();
        let q = t
            .store
            .insert_message(
                s.id,
                Role::User,
                &format!("question {n} ✓"),
                MessageStatus::Complete,
                at + 1,
            )
            .unwrap();
        let a = t
            .store
            .insert_message(s.id, Role::Character, "", MessageStatus::Streaming, at + 2)
            .unwrap();
        t.store
            .finish_message(
                a.id,
                &format!("answer {n}, at length"),
                MessageStatus::Complete,
            )
            .unwrap();
        t.store
            .save_prompt_record(a.id, &format!("{{\"n\":{n}}}"))
            .unwrap();
        // The person's judgement travels with the Session.
        t.store.set_thumb(a.id, 1, "m.gguf", at + 2).unwrap();
        let turn = t
            .store
            .insert_arena_turn(&troupe::store::ArenaTurn {
                id: 0,
                session_id: s.id,
                message_id: a.id,
                a: "m.gguf".into(),
                b: "m.gguf · precise".into(),
                a_record: Some("{}".into()),
                b_record: None,
                a_failed: None,
                b_failed: Some("stopped early".into()),
                choice: None,
                created_at: at + 2,
            })
            .unwrap();
        t.store.pick_arena_turn(turn, "tie", at + 5).unwrap();
        t.store
            .save_rating(&troupe::store::Rating {
                session_id: s.id,
                model: "m.gguf".into(),
                setup: "{}".into(),
                scores: troupe::store::Scores {
                    consistency: 4,
                    human_likeness: 3,
                    engagement: 5,
                    quality: 4,
                    safety: 5,
                    correctness: 2,
                    overall: n as u8 % 5 + 1,
                },
                comment: format!("rated {n}"),
                created_at: at + 4,
            })
            .unwrap();
        t.store
            .add_memory(
                &c.id,
                Some(s.id),
                MemoryKind::Pinned,
                "a pinned line",
                Some(q.id),
                at + 3,
            )
            .unwrap();
    }
    t.store
        .add_memory(
            &c.id,
            None,
            MemoryKind::Fact,
            "the user keeps bees",
            None,
            at,
        )
        .unwrap();
    c.id
}

/// Every row of every table, ids included (a restore must give back exactly this).
fn dump_exact(dir: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(dir.join("troupe.db")).unwrap();
    let mut out = Vec::new();
    for table in [
        "characters",
        "sessions",
        "messages",
        "memories",
        "personas",
        "prompts",
        "removed_builtins",
        "deleted",
        "ratings",
        "thumbs",
        "arena_turns",
    ] {
        rows(
            &conn,
            &format!("SELECT * FROM {table} ORDER BY rowid"),
            table,
            &mut out,
        );
    }
    out
}

/// Every row by what it means rather than its integer id (an import gives new ids). A built-in
/// Character is installed by each library when it opens, so only its text counts.
fn dump_by_meaning(dir: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(dir.join("troupe.db")).unwrap();
    let mut out = Vec::new();
    rows(
        &conn,
        "SELECT id, name, category, data, builtin,
                        CASE WHEN builtin THEN NULL ELSE created_at END,
                        CASE WHEN builtin THEN NULL ELSE updated_at END,
                        sampling, favourite, deleted_at FROM characters ORDER BY id",
        "characters",
        &mut out,
    );
    rows(
        &conn,
        "SELECT s.character_id, s.scenario, s.title, s.created_at, s.updated_at,
                        s.sampling, p.name, p.description, s.deleted_at
                 FROM sessions s LEFT JOIN personas p ON p.id = s.persona_id
                 ORDER BY s.character_id, s.created_at",
        "sessions",
        &mut out,
    );
    rows(
        &conn,
        "SELECT s.character_id, s.created_at, m.role, m.content, m.status, m.created_at,
                        m.swipes, r.record
                 FROM messages m JOIN sessions s ON s.id = m.session_id
                 LEFT JOIN prompts r ON r.message_id = m.id
                 ORDER BY s.character_id, s.created_at, m.created_at, m.role",
        "messages",
        &mut out,
    );
    rows(
        &conn,
        "SELECT k.character_id, s.created_at, k.kind, k.content, m.content, k.created_at
                 FROM memories k LEFT JOIN sessions s ON s.id = k.session_id
                 LEFT JOIN messages m ON m.id = k.message_id
                 ORDER BY 1, 2, 3, 4, 6",
        "memories",
        &mut out,
    );
    rows(
        &conn,
        "SELECT name, description, is_default FROM personas ORDER BY 1, 2",
        "personas",
        &mut out,
    );
    rows(
        &conn,
        "SELECT s.character_id, s.created_at, r.model, r.setup, r.consistency, r.overall,
                r.comment, r.created_at
         FROM ratings r JOIN sessions s ON s.id = r.session_id ORDER BY 1, 2",
        "ratings",
        &mut out,
    );
    rows(
        &conn,
        "SELECT s.character_id, s.created_at, m.content, t.value, t.model
         FROM thumbs t JOIN messages m ON m.id = t.message_id
         JOIN sessions s ON s.id = m.session_id ORDER BY 1, 2, 3",
        "thumbs",
        &mut out,
    );
    rows(
        &conn,
        "SELECT s.character_id, s.created_at, m.content, t.a, t.b, t.a_record, t.b_record,
                t.a_failed, t.b_failed, t.choice, t.created_at, t.picked_at
         FROM arena_turns t JOIN messages m ON m.id = t.message_id
         JOIN sessions s ON s.id = t.session_id ORDER BY 1, 2, 3",
        "arena_turns",
        &mut out,
    );
    out
}

/// Fails with only the rows that differ (a dump is long).
#[track_caller]
fn same(have: &[String], want: &[String], what: &str) {
    let missing: Vec<_> = want.iter().filter(|r| !have.contains(r)).collect();
    let extra: Vec<_> = have.iter().filter(|r| !want.contains(r)).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && have.len() == want.len(),
        "{what}: missing {missing:#?}\nextra {extra:#?}"
    );
}

/// The rows `sql` selects, as text; none when its table is newer than the database (a library
/// from an older release, before it is migrated).
fn rows(conn: &rusqlite::Connection, sql: &str, table: &str, out: &mut Vec<String>) {
    let mut stmt = match conn.prepare(sql) {
        Ok(stmt) => stmt,
        Err(e) if e.to_string().contains("no such table") => return,
        Err(e) => panic!("{sql}: {e}"),
    };
    let n = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let values: Vec<Value> = (0..n).map(|i| r.get(i).unwrap()).collect();
        out.push(format!("{table}: {values:?}"));
    }
}

/// Every avatar file the library's Characters name, with its thumbnail, and their bytes.
fn avatars(t: &Troupe) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for c in t
        .store
        .list_characters()
        .unwrap()
        .into_iter()
        .chain(t.store.list_trash().unwrap())
    {
        let c = t.store.get_character(&c.id).unwrap();
        if let Some(name) = c.avatar {
            for f in [name.clone(), troupe::app::vocabulary::thumb_name(&name)] {
                out.insert(
                    format!("{}:{f}", c.id),
                    std::fs::read(t.paths.avatars().join(&f)).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn backup_wipe_restore_gives_back_every_row_and_every_avatar_byte() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path());
    add_character(&t, "odile-v2.png", 3, 1_000);
    add_character(&t, "wren-v3-ztxt.png", 2, 50_000);
    let m = t.store.list_messages(1).unwrap();
    t.delete_message(m[1].id).unwrap(); // a pending undo travels too
    let (rows, pictures) = (dump_exact(dir.path()), avatars(&t));
    let snapshot = t.back_up(None).unwrap();
    assert_eq!(snapshot.manifest.counts, t.counts());
    drop(t);

    // Wipe: the database and every avatar gone; a fresh library has only the built-ins.
    std::fs::remove_file(dir.path().join("troupe.db")).unwrap();
    std::fs::remove_dir_all(dir.path().join("avatars")).unwrap();
    let t = open(dir.path());
    assert_ne!(dump_exact(dir.path()), rows);
    let restored = t.restore(&snapshot.id).unwrap();
    assert_eq!(restored.counts, snapshot.manifest.counts);
    same(&dump_exact(dir.path()), &rows, "every row, ids included");
    assert_eq!(avatars(&t), pictures, "every avatar byte for byte");
    assert_eq!(t.store.integrity_check().unwrap(), "ok");
    t.store.check_search_index().unwrap();
    // The library the restore replaced is a snapshot of its own, listed like any other.
    assert_eq!(restored.before.manifest.reason, SnapshotReason::Restore);
    assert!(t.backups().iter().any(|s| s.id == restored.before.id));
}

#[test]
fn export_all_into_an_empty_library_then_into_one_that_has_half() {
    let a = tempfile::tempdir().unwrap();
    let t = open(a.path());
    add_character(&t, "odile-v2.png", 2, 1_000);
    let half = t.back_up(None).unwrap();
    add_character(&t, "wren-v3-ztxt.png", 3, 90_000);
    add_character(&t, "tobias-v1.json", 1, 200_000);
    let export = a.path().join("everything.zip");
    t.export_all(&export).unwrap();
    let want = dump_by_meaning(a.path());
    let want_avatars = avatars(&t);

    // The export carries a V3 card per Character and a SillyTavern chat per Session.
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&export).unwrap()).unwrap();
    let names: Vec<String> = zip.file_names().map(String::from).collect();
    let n_characters = t.counts().characters as usize;
    assert_eq!(
        names.iter().filter(|n| n.starts_with("cards/")).count(),
        n_characters
    );
    assert_eq!(names.iter().filter(|n| n.ends_with(".jsonl")).count(), 6);
    let card = names
        .iter()
        .find(|n| n.starts_with("cards/odile"))
        .unwrap()
        .clone();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name(&card).unwrap(), &mut bytes).unwrap();
    assert!(
        troupe::characters::card::read(&bytes).is_ok(),
        "the card reads back"
    );
    let chat = names
        .iter()
        .find(|n| n.ends_with(".jsonl"))
        .unwrap()
        .clone();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut zip.by_name(&chat).unwrap(), &mut text).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines[0]["character_name"].is_string() && lines[0]["user_name"].is_string());
    assert!(lines[1..]
        .iter()
        .all(|l| l["mes"].is_string() && l["is_user"].is_boolean()));

    // Into an empty library: the same library.
    let b = tempfile::tempdir().unwrap();
    let tb = open(b.path());
    let report = tb.import_all(&export).unwrap();
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    same(&dump_by_meaning(b.path()), &want, "the library");
    assert_eq!(avatars(&tb), want_avatars);

    // Into a library that has the first half: exactly the other half is added.
    let c = tempfile::tempdir().unwrap();
    let tc = open(c.path());
    tc.restore(half.path.to_str().unwrap()).unwrap();
    let before = tc.counts();
    let report = tc.import_all(&export).unwrap();
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    assert_eq!(report.characters_added, 2);
    assert_eq!(report.sessions_added, 4);
    assert_eq!(tc.counts().messages - before.messages, 4 * 3);
    same(&dump_by_meaning(c.path()), &want, "the library");
    // A second import adds nothing.
    let again = tc.import_all(&export).unwrap();
    assert_eq!(
        (
            again.characters_added,
            again.sessions_added,
            again.messages_added
        ),
        (0, 0, 0)
    );
    same(&dump_by_meaning(c.path()), &want, "the library");
}

#[test]
fn an_import_keeps_both_when_the_same_ids_hold_different_things() {
    let a = tempfile::tempdir().unwrap();
    let ta = open(a.path());
    let id = add_character(&ta, "odile-v2.png", 1, 1_000);
    let export = a.path().join("a.zip");
    ta.export_all(&export).unwrap();

    // Library B has its own Odile under the same id, with a different Session at the same moment.
    let b = tempfile::tempdir().unwrap();
    let tb = open(b.path());
    let id_b = add_character(&tb, "odile-v2.png", 1, 1_000);
    assert_eq!(id, id_b);
    let mut c = tb.store.get_character(&id).unwrap();
    c.name = "Odile (mine)".into();
    tb.store.update_character(&c, 5).unwrap();
    let before = dump_by_meaning(b.path());
    let report = tb.import_all(&export).unwrap();
    assert_eq!(report.characters_added, 1);
    assert_eq!(report.conflicts.len(), 1, "{:?}", report.conflicts);
    assert!(
        report.conflicts[0].contains(&format!("'{id}-2'")),
        "{:?}",
        report.conflicts
    );
    // Nothing that was here changed.
    let after = dump_by_meaning(b.path());
    assert!(
        before.iter().all(|row| after.contains(row)),
        "nothing here was overwritten"
    );
    assert_eq!(tb.store.get_character(&id).unwrap().name, "Odile (mine)");
    let theirs = tb.store.get_character(&format!("{id}-2")).unwrap();
    assert_eq!(tb.store.list_sessions(&theirs.id).unwrap().len(), 1);
    assert!(tb.paths.avatars().join(theirs.avatar.unwrap()).is_file());
}

/// Rewrites a zip member by member, changing what `edit` says.
fn rewrite_zip(from: &Path, to: &Path, edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) {
    let mut zin = zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut zout = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    for i in 0..zin.len() {
        let mut f = zin.by_index(i).unwrap();
        let name = f.name().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut bytes).unwrap();
        zout.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        zout.write_all(&edit(&name, bytes)).unwrap();
    }
    zout.finish().unwrap();
}

#[test]
fn bad_files_are_refused_by_name_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path());
    add_character(&t, "odile-v2.png", 2, 1_000);
    let good = dir.path().join("good.zip");
    t.export_all(&good).unwrap();
    let rows = dump_exact(dir.path());
    let n_backups = t.backups().len();

    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.zip");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let foreign = fixture("wren.charx");
    let newer = dir.path().join("newer.zip");
    rewrite_zip(&good, &newer, |name, b| {
        if name != "manifest.json" {
            return b;
        }
        let mut m: serde_json::Value = serde_json::from_slice(&b).unwrap();
        m["schema_version"] = 99.into();
        m["troupe_version"] = "9.0.0".into();
        serde_json::to_vec(&m).unwrap()
    });
    let tampered = dir.path().join("tampered.zip");
    rewrite_zip(&good, &tampered, |name, mut b| {
        if name.starts_with("avatars/") {
            b[100] ^= 1;
        }
        b
    });
    let escaping = dir.path().join("escaping.zip");
    rewrite_zip(&good, &escaping, |name, b| {
        if name != "manifest.json" {
            return b;
        }
        let text = String::from_utf8(b).unwrap();
        text.replacen("\"avatars/", "\"avatars/../../", 1)
            .into_bytes()
    });

    for (file, expect) in [
        (&truncated, "not a readable zip"),
        (&foreign, "no manifest.json"),
        (&newer, "newer Troupe (9.0.0)"),
        (&tampered, "not what the manifest says"),
        (&escaping, "not a plain file name"),
    ] {
        for result in [
            t.restore(file.to_str().unwrap()).map(|_| ()),
            t.import_all(file).map(|_| ()),
        ] {
            let e = result.expect_err("refused").to_string();
            assert!(
                e.contains(&file.display().to_string()),
                "names the file: {e}"
            );
            assert!(e.contains(expect), "{e}");
        }
        same(
            &dump_exact(dir.path()),
            &rows,
            &format!("{} changed the library", file.display()),
        );
    }
    assert_eq!(
        t.backups().len(),
        n_backups,
        "a refused restore takes no snapshot"
    );
    let missing = t.restore("no-such-backup").unwrap_err();
    assert!(
        matches!(missing, BackupError::Backup(_)) && missing.to_string().contains("no-such-backup")
    );
    // A backup that cannot be written (its folder is a file) leaves no part behind.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"a file").unwrap();
    assert!(t.back_up(Some(&blocked.join("x.zip"))).is_err());
    same(&dump_exact(dir.path()), &rows, "the library");
}

#[test]
fn a_migration_is_preceded_by_a_snapshot_of_the_old_database() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path());
    add_character(&t, "odile-v2.png", 1, 1_000);
    drop(t);
    // Make it look like a database from the release before the undo table (and evaluations).
    let conn = rusqlite::Connection::open(dir.path().join("troupe.db")).unwrap();
    conn.execute_batch(
        "DROP TABLE eval_runs; DROP TABLE deleted; DROP TABLE ratings; DROP TABLE thumbs;
         DROP TABLE arena_turns; DROP TABLE session_members; DROP TABLE session_presence;
         ALTER TABLE sessions DROP COLUMN group_name; ALTER TABLE sessions DROP COLUMN strategy;
         ALTER TABLE messages DROP COLUMN speaker_id;
         PRAGMA user_version = 5;",
    )
    .unwrap();
    drop(conn);
    let old = dump_by_meaning(dir.path());
    let t = open(dir.path());
    let snapshots = t.backups();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].manifest.reason, SnapshotReason::Migration);
    assert_eq!(snapshots[0].manifest.schema_version, 5);
    // Restoring it migrates it again and gives the same library.
    t.restore(&snapshots[0].id).unwrap();
    same(&dump_by_meaning(dir.path()), &old, "the library");
    assert_eq!(
        t.store.schema_version().unwrap(),
        troupe::store::KNOWN_SCHEMA
    );
}

#[test]
fn deleted_messages_memories_and_personas_come_back_with_undo() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path());
    let id = add_character(&t, "odile-v2.png", 1, 1_000);
    let rows = dump_exact(dir.path());
    let session = t.store.list_sessions(&id).unwrap()[0].id;
    let messages = t.store.list_messages(session).unwrap();
    let memory = t.memories(session).unwrap()[0].id;
    let persona = t
        .store
        .list_personas()
        .unwrap()
        .into_iter()
        .find(|p| !p.is_default)
        .unwrap();

    let undo_message = t.delete_message(messages[2].id).unwrap();
    let undo_memory = t.delete_memory(memory).unwrap();
    let undo_persona = t.delete_persona(persona.id).unwrap();
    assert_eq!(
        t.store.list_messages(session).unwrap().len(),
        messages.len() - 1
    );
    assert_eq!(t.store.get_session(session).unwrap().persona_id, None);
    // Undone in any order, each comes back as it was: id, prompt record, links.
    t.undo_delete(undo_persona).unwrap();
    t.undo_delete(undo_message).unwrap();
    t.undo_delete(undo_memory).unwrap();
    same(&dump_exact(dir.path()), &rows, "the library");
    assert!(t.undo_delete(undo_message).is_err(), "an undo happens once");
    // A reply being written cannot be deleted.
    let live = t
        .store
        .insert_message(session, Role::Character, "", MessageStatus::Streaming, 9)
        .unwrap();
    assert!(t.delete_message(live.id).is_err());
}

#[test]
fn the_purge_has_a_snapshot_behind_it_and_opening_never_purges() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path());
    let id = add_character(&t, "odile-v2.png", 1, 1_000);
    // In the trash since long ago (unix ms 5).
    t.store.trash_character(&id, 5).unwrap();
    drop(t);
    // What every CLI command does first: open the library. Nothing is purged.
    let t = open(dir.path());
    assert_eq!(t.trash().unwrap().len(), 1);
    assert!(t.backups().is_empty());
    let done = t.upkeep(BackupSettings::default()).unwrap();
    assert!(done.purged);
    assert!(t.trash().unwrap().is_empty());
    let snapshot = done.snapshot.expect("a snapshot first");
    let s = t.backups().into_iter().find(|s| s.id == snapshot).unwrap();
    assert_eq!(s.manifest.reason, SnapshotReason::Daily);
    assert_eq!(
        s.manifest.counts.sessions, 1,
        "the snapshot holds what was purged"
    );
    // Once a day: the next start takes none.
    let again = t.upkeep(BackupSettings::default()).unwrap();
    assert!(again.snapshot.is_none() && !again.purged);
}

/// A small tmpfs mounted for the test (root only: elsewhere `None`, and the caller says it
/// skipped). Unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(bytes: usize) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_full_disk_during_a_backup_or_a_restore_is_a_clear_error_and_changes_nothing() {
    let Some(disk) = SmallDisk::mount(4 << 20) else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    };
    // The library lives on the small disk; a snapshot of it is kept elsewhere.
    let data = disk.0.join("library");
    let t = open(&data);
    add_character(&t, "odile-v2.png", 2, 1_000);
    let elsewhere = tempfile::tempdir().unwrap();
    let snapshot = elsewhere.path().join("before.zip");
    t.back_up(Some(&snapshot)).unwrap();
    add_character(&t, "wren-v3-ztxt.png", 1, 9_000);
    let rows = dump_exact(&data);
    // Fill the disk.
    let filler = disk.0.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while f.write_all(&[0u8; 64 * 1024]).is_ok() {}
    drop(f);

    let backup = t.back_up(None).unwrap_err().to_string();
    assert!(backup.contains("the disk is full"), "{backup}");
    let restore = t
        .restore(snapshot.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(restore.contains("the disk is full"), "{restore}");
    same(&dump_exact(&data), &rows, "a full disk changed the library");
    let left: Vec<_> = std::fs::read_dir(t.paths.backups())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "nothing half-written is left: {left:?}");
    // Space again: the same backup works.
    std::fs::remove_file(&filler).unwrap();
    t.back_up(None).unwrap();
}

#[test]
fn an_import_carries_a_group_its_members_and_who_said_what() {
    let a = tempfile::tempdir().unwrap();
    let ta = open(a.path());
    let members = ["ada-lovelace", "sherlock-holmes", "marie-curie"].map(String::from);
    let s = ta
        .start_group(
            &members,
            Scenario::ChitChat,
            troupe::app::vocabulary::Strategy::List,
            Some("Evening"),
        )
        .unwrap();
    let say = |who: Option<&str>, text: &str| {
        let role = if who.is_some() {
            Role::Character
        } else {
            Role::User
        };
        let m = ta
            .store
            .insert_message(s.id, role, text, MessageStatus::Complete, 5)
            .unwrap();
        if let Some(who) = who {
            ta.store.set_speaker(m.id, who).unwrap();
        }
    };
    say(None, "Good evening.");
    say(
        Some("sherlock-holmes"),
        "You have been in Afghanistan, I perceive.",
    );
    ta.set_member_present(s.id, "marie-curie", false).unwrap();
    say(None, "Marie has gone home.");
    ta.set_member_muted(s.id, "ada-lovelace", true).unwrap();
    let export = a.path().join("everything.zip");
    ta.export_all(&export).unwrap();

    let b = tempfile::tempdir().unwrap();
    let tb = open(b.path());
    let report = tb.import_all(&export).unwrap();
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    let here = tb
        .sessions("marie-curie")
        .unwrap()
        .into_iter()
        .find(|x| x.title == "Evening")
        .expect("the group is listed with each member");
    let (group, _) = tb.group_cast(here.id).unwrap().expect("still a group");
    let states: Vec<_> = group
        .members
        .iter()
        .map(|m| (m.character_id.as_str(), m.present, m.muted))
        .collect();
    assert_eq!(
        states,
        [
            ("ada-lovelace", true, true),
            ("sherlock-holmes", true, false),
            ("marie-curie", false, false)
        ]
    );
    assert_eq!(group.strategy, troupe::app::vocabulary::Strategy::List);
    let said: Vec<_> = tb
        .store
        .list_messages(here.id)
        .unwrap()
        .into_iter()
        .map(|m| (m.speaker, m.content))
        .collect();
    let theirs: Vec<_> = ta
        .store
        .list_messages(s.id)
        .unwrap()
        .into_iter()
        .map(|m| (m.speaker, m.content))
        .collect();
    assert_eq!(said, theirs);
    // Marie was there for the greeting and the first exchange, not for what came after.
    let before = tb.store.list_messages(here.id).unwrap();
    let spans = tb.store.presence(here.id, "marie-curie").unwrap();
    let left_at = spans[0].1.expect("she left");
    assert_eq!(
        before.iter().filter(|m| m.id <= left_at).count(),
        theirs.len() - 1
    );
}
