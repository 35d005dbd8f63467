//! Import everything: another library's database merged into this one, in one transaction.
//!
//! Merging never overwrites. Stable ids say what is the same thing: a Character by its id, a
//! Session by its Character and the moment it began, a Persona by its name and description.
//! What exists stays as it is; what is new is added (a new Session with all its Messages,
//! prompt records, Memories, rating, thumbs and arena turns); where both sides hold a different thing under one id, both are
//! kept side by side (the incoming one under a new id, or a Session titled "(imported)") and
//! the report names it. Built-in Characters are the same Character on both sides whatever
//! their text, so their Sessions join the ones here.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, OptionalExtension, Transaction};

use super::{Result, Store};

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    pub characters_added: usize,
    pub sessions_added: usize,
    pub messages_added: usize,
    pub memories_added: usize,
    pub personas_added: usize,
    /// Already here, the same: left alone.
    pub unchanged: usize,
    /// Kept side by side, in words ("Character 'alice' differs here: imported as 'alice-2'").
    pub conflicts: Vec<String>,
    /// Avatar files to copy in: (name in the imported library, name here).
    pub avatars: Vec<(String, String)>,
}

impl Store {
    /// Merges the library in the database file `src` (at this build's schema) into this one.
    pub fn merge_from(&self, src: &Path) -> Result<MergeReport> {
        let mut conn = self.conn();
        let src = src
            .to_str()
            .ok_or_else(|| rusqlite::Error::InvalidPath(src.to_path_buf()))?;
        conn.execute("ATTACH DATABASE ?1 AS src", [src])?;
        let result = (|| {
            let tx = Store::write_tx(&mut conn)?;
            let mut report = MergeReport::default();
            let personas = merge_personas(&tx, &mut report)?;
            let characters = merge_characters(&tx, &mut report)?;
            merge_sessions(&tx, &characters, &personas, &mut report)?;
            merge_character_memories(&tx, &characters, &mut report)?;
            tx.execute(
                "INSERT OR IGNORE INTO removed_builtins SELECT * FROM src.removed_builtins",
                [],
            )?;
            tx.commit()?;
            Ok(report)
        })();
        conn.execute("DETACH DATABASE src", [])?;
        result
    }
}

/// Incoming persona id → the id here.
fn merge_personas(tx: &Transaction<'_>, report: &mut MergeReport) -> Result<HashMap<i64, i64>> {
    let mut map = HashMap::new();
    let rows: Vec<(i64, String, String, bool, i64)> = {
        let mut stmt = tx.prepare(
            "SELECT id, name, description, is_default, created_at FROM src.personas ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, name, description, is_default, created_at) in rows {
        let here: Option<i64> = if is_default {
            tx.query_row("SELECT id FROM personas WHERE is_default = 1", [], |r| {
                r.get(0)
            })
            .optional()?
        } else {
            tx.query_row(
                "SELECT id FROM personas WHERE name = ?1 AND description = ?2",
                params![name, description],
                |r| r.get(0),
            )
            .optional()?
        };
        let here = match here {
            Some(h) => h,
            None => {
                tx.execute(
                    "INSERT INTO personas (name, description, is_default, created_at) VALUES (?1, ?2, 0, ?3)",
                    params![name, description, created_at],
                )?;
                report.personas_added += 1;
                tx.last_insert_rowid()
            }
        };
        map.insert(id, here);
    }
    Ok(map)
}

/// Incoming Character id → the id here, for the Characters whose Sessions are merged; and
/// whether each was added (its Sessions are all new) or is shared.
struct CharacterMap {
    ids: HashMap<String, String>,
    added: std::collections::HashSet<String>,
}

fn merge_characters(tx: &Transaction<'_>, report: &mut MergeReport) -> Result<CharacterMap> {
    let mut map = CharacterMap {
        ids: HashMap::new(),
        added: Default::default(),
    };
    let rows: Vec<(String, String, bool)> = {
        let mut stmt = tx.prepare("SELECT id, data, builtin FROM src.characters ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, data, builtin) in rows {
        let here: Option<(String, bool)> = tx
            .query_row(
                "SELECT data, builtin FROM characters WHERE id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let new_id = match here {
            Some((here_data, here_builtin)) if here_data == data || (builtin && here_builtin) => {
                report.unchanged += 1;
                map.ids.insert(id.clone(), id);
                continue;
            }
            Some(_) => {
                let new_id = free_character_id(tx, &id)?;
                report.conflicts.push(format!(
                    "Character '{id}' differs here: the imported one was added as '{new_id}'"
                ));
                new_id
            }
            None => id.clone(),
        };
        let avatar = add_character(tx, &id, &new_id)?;
        if let Some(pair) = avatar {
            report.avatars.push(pair);
        }
        report.characters_added += 1;
        map.added.insert(new_id.clone());
        map.ids.insert(id, new_id);
    }
    Ok(map)
}

fn free_character_id(tx: &Transaction<'_>, id: &str) -> Result<String> {
    let mut n = 2;
    loop {
        let candidate = format!("{id}-{n}");
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM characters WHERE id = ?1)",
            [&candidate],
            |r| r.get(0),
        )?;
        if !taken {
            return Ok(candidate);
        }
        n += 1;
    }
}

/// Copies one Character row in under `new_id`; its avatar is renamed when a Character here
/// already uses that file name. Returns the avatar file to copy.
fn add_character(tx: &Transaction<'_>, id: &str, new_id: &str) -> Result<Option<(String, String)>> {
    let avatar: Option<String> = tx.query_row(
        "SELECT data->>'avatar' FROM src.characters WHERE id = ?1",
        [id],
        |r| r.get(0),
    )?;
    let target = match &avatar {
        Some(name) => {
            let used: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM characters WHERE data->>'avatar' = ?1)",
                [name],
                |r| r.get(0),
            )?;
            Some(if used {
                format!("{new_id}-imported.png")
            } else {
                name.clone()
            })
        }
        None => None,
    };
    tx.execute(
        "INSERT INTO characters (id, name, category, data, builtin, created_at, updated_at,
                                 sampling, favourite, deleted_at)
         SELECT ?2, name, category,
                CASE WHEN ?2 = id AND ?3 IS data->>'avatar' THEN data
                     WHEN ?3 IS NULL THEN json_set(data, '$.id', ?2)
                     ELSE json_set(data, '$.id', ?2, '$.avatar', ?3) END,
                builtin, created_at, updated_at, sampling, favourite, deleted_at
         FROM src.characters WHERE id = ?1",
        params![id, new_id, target],
    )?;
    Ok(avatar.zip(target))
}

fn merge_sessions(
    tx: &Transaction<'_>,
    characters: &CharacterMap,
    personas: &HashMap<i64, i64>,
    report: &mut MergeReport,
) -> Result<()> {
    let rows: Vec<(i64, String, i64)> = {
        let mut stmt =
            tx.prepare("SELECT id, character_id, created_at FROM src.sessions ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, character, created_at) in rows {
        let Some(character) = characters.ids.get(&character) else {
            continue;
        };
        let mut title = None;
        if !characters.added.contains(character) {
            let here: Option<i64> = tx
                .query_row(
                    "SELECT id FROM sessions WHERE character_id = ?1 AND created_at = ?2",
                    params![character, created_at],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(here) = here {
                if same_messages(tx, id, here)? {
                    report.unchanged += 1;
                    continue;
                }
                report.conflicts.push(format!(
                    "Session '{}' with '{character}' differs here: the imported one was added \
                     beside it, titled '{} (imported)'",
                    title_of(tx, here)?,
                    title_of_src(tx, id)?
                ));
                title = Some(format!("{} (imported)", title_of_src(tx, id)?));
            }
        }
        add_session(
            tx,
            id,
            character,
            title.as_deref(),
            characters,
            personas,
            report,
        )?;
    }
    Ok(())
}

fn title_of(tx: &Transaction<'_>, id: i64) -> Result<String> {
    Ok(
        tx.query_row("SELECT title FROM sessions WHERE id = ?1", [id], |r| {
            r.get(0)
        })?,
    )
}

fn title_of_src(tx: &Transaction<'_>, id: i64) -> Result<String> {
    Ok(
        tx.query_row("SELECT title FROM src.sessions WHERE id = ?1", [id], |r| {
            r.get(0)
        })?,
    )
}

/// Whether two Sessions hold the same Messages (role and text, in order).
fn same_messages(tx: &Transaction<'_>, src_id: i64, here_id: i64) -> Result<bool> {
    let digest = |table: &str, id: i64| -> rusqlite::Result<String> {
        tx.query_row(
            &format!(
                "SELECT coalesce(json_group_array(json_array(role, content)), '[]')
                 FROM (SELECT role, content FROM {table} WHERE session_id = ?1 ORDER BY id)"
            ),
            [id],
            |r| r.get(0),
        )
    };
    Ok(digest("src.messages", src_id)? == digest("main.messages", here_id)?)
}

fn add_session(
    tx: &Transaction<'_>,
    src_id: i64,
    character: &str,
    title: Option<&str>,
    characters: &CharacterMap,
    personas: &HashMap<i64, i64>,
    report: &mut MergeReport,
) -> Result<()> {
    let persona: Option<i64> = tx.query_row(
        "SELECT persona_id FROM src.sessions WHERE id = ?1",
        [src_id],
        |r| r.get(0),
    )?;
    let persona = persona.and_then(|p| personas.get(&p).copied());
    tx.execute(
        "INSERT INTO sessions (character_id, scenario, title, created_at, updated_at, sampling,
                               persona_id, deleted_at, group_name, strategy)
         SELECT ?2, scenario, coalesce(?3, title), created_at, updated_at, sampling, ?4, deleted_at,
                group_name, strategy
         FROM src.sessions WHERE id = ?1",
        params![src_id, character, title, persona],
    )?;
    let session = tx.last_insert_rowid();
    report.sessions_added += 1;
    tx.execute(
        "INSERT INTO ratings (session_id, model, setup, consistency, human_likeness, engagement,
                              quality, safety, correctness, overall, comment, created_at)
         SELECT ?2, model, setup, consistency, human_likeness, engagement, quality, safety,
                correctness, overall, comment, created_at
         FROM src.ratings WHERE session_id = ?1",
        params![src_id, session],
    )?;
    // Messages in order, each with its prompt record; their new ids, for the Memories.
    let mut ids = HashMap::new();
    let messages: Vec<i64> = {
        let mut stmt =
            tx.prepare("SELECT id FROM src.messages WHERE session_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([src_id], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for old in messages {
        tx.execute(
            "INSERT INTO messages (session_id, role, content, status, created_at, swipes)
             SELECT ?2, role, content,
                    CASE status WHEN 'streaming' THEN 'interrupted' ELSE status END,
                    created_at, swipes
             FROM src.messages WHERE id = ?1",
            params![old, session],
        )?;
        let new = tx.last_insert_rowid();
        let speaker: Option<String> = tx.query_row(
            "SELECT speaker_id FROM src.messages WHERE id = ?1",
            [old],
            |r| r.get(0),
        )?;
        if let Some(speaker) = speaker.and_then(|s| characters.ids.get(&s)) {
            tx.execute(
                "UPDATE messages SET speaker_id = ?2 WHERE id = ?1",
                params![new, speaker],
            )?;
        }
        tx.execute(
            "INSERT INTO prompts (message_id, record)
             SELECT ?2, record FROM src.prompts WHERE message_id = ?1",
            params![old, new],
        )?;
        tx.execute(
            "INSERT INTO thumbs (message_id, value, model, created_at)
             SELECT ?2, value, model, created_at FROM src.thumbs WHERE message_id = ?1",
            params![old, new],
        )?;
        ids.insert(old, new);
        report.messages_added += 1;
    }
    add_group(tx, src_id, session, characters, &ids)?;
    // Compared turns, pointing at their reply's new id.
    let turns: Vec<(i64, i64)> = {
        let mut stmt = tx.prepare(
            "SELECT id, message_id FROM src.arena_turns WHERE session_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([src_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (turn, message) in turns {
        let Some(message) = ids.get(&message) else {
            continue;
        };
        tx.execute(
            "INSERT INTO arena_turns (session_id, message_id, a, b, a_record, b_record, a_failed,
                                      b_failed, choice, created_at, picked_at)
             SELECT ?2, ?3, a, b, a_record, b_record, a_failed, b_failed, choice, created_at,
                    picked_at
             FROM src.arena_turns WHERE id = ?1",
            params![turn, session, message],
        )?;
    }
    let memories: Vec<(i64, Option<i64>)> = {
        let mut stmt = tx
            .prepare("SELECT id, message_id FROM src.memories WHERE session_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([src_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (memory, message) in memories {
        let message = message.and_then(|m| ids.get(&m).copied());
        add_memory(tx, memory, character, Some(session), message)?;
        report.memories_added += 1;
    }
    Ok(())
}

/// A group's members and when each was in the room, under this library's Character ids and
/// message ids (`ids`: the source's message ids to the new ones). Nothing for a one-Character
/// Session.
fn add_group(
    tx: &Transaction<'_>,
    src_id: i64,
    session: i64,
    characters: &CharacterMap,
    ids: &HashMap<i64, i64>,
) -> Result<()> {
    let members: Vec<(String, i64, bool)> = {
        let mut stmt = tx.prepare(
            "SELECT character_id, position, muted FROM src.session_members WHERE session_id = ?1",
        )?;
        let rows = stmt.query_map([src_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (member, position, muted) in members {
        let Some(member) = characters.ids.get(&member) else {
            continue;
        };
        tx.execute(
            "INSERT INTO session_members (session_id, character_id, position, muted) VALUES (?1, ?2, ?3, ?4)",
            params![session, member, position, muted],
        )?;
    }
    let spans: Vec<(String, i64, Option<i64>)> = {
        let mut stmt = tx.prepare(
            "SELECT character_id, after_message, until_message FROM src.session_presence WHERE session_id = ?1",
        )?;
        let rows = stmt.query_map([src_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // A span's edge is a message id (perhaps of one deleted since): it becomes the new id of
    // the last message at or before it, 0 (from the start) when there is none.
    let mut order: Vec<(i64, i64)> = ids.iter().map(|(o, n)| (*o, *n)).collect();
    order.sort_unstable();
    let edge = |m: i64| {
        order
            .iter()
            .take_while(|(o, _)| *o <= m)
            .last()
            .map_or(0, |(_, n)| *n)
    };
    for (member, after, until) in spans {
        let Some(member) = characters.ids.get(&member) else {
            continue;
        };
        tx.execute(
            "INSERT INTO session_presence (session_id, character_id, after_message, until_message)
             VALUES (?1, ?2, ?3, ?4)",
            params![session, member, edge(after), until.map(edge)],
        )?;
    }
    Ok(())
}

fn add_memory(
    tx: &Transaction<'_>,
    src_id: i64,
    character: &str,
    session: Option<i64>,
    message: Option<i64>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO memories (character_id, session_id, kind, content, message_id, created_at,
                               updated_at)
         SELECT ?2, ?3, kind, content, ?4, created_at, updated_at FROM src.memories WHERE id = ?1",
        params![src_id, character, session, message],
    )?;
    Ok(())
}

/// A Character's own Memories (no Session): added unless the same words are here already.
fn merge_character_memories(
    tx: &Transaction<'_>,
    characters: &CharacterMap,
    report: &mut MergeReport,
) -> Result<()> {
    let rows: Vec<(i64, String)> = {
        let mut stmt = tx.prepare(
            "SELECT m.id, m.character_id FROM src.memories m WHERE m.session_id IS NULL ORDER BY m.id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, character) in rows {
        let Some(character) = characters.ids.get(&character) else {
            continue;
        };
        let here: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM memories h JOIN src.memories s ON s.id = ?1
                WHERE h.character_id = ?2 AND h.session_id IS NULL AND h.kind = s.kind
                  AND h.content = s.content)",
            params![id, character],
            |r| r.get(0),
        )?;
        if here {
            report.unchanged += 1;
        } else {
            add_memory(tx, id, character, None, None)?;
            report.memories_added += 1;
        }
    }
    Ok(())
}
