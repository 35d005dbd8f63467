//! Personas: who the user is in a Session (a name the Character uses, a line it reads); one is
//! the default.

use rusqlite::{params, OptionalExtension};

use super::{Error, Result, Store};

/// Who the user is in a Session: a name the Character uses and a description it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Persona {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub is_default: bool,
}

impl Store {
    pub fn list_personas(&self) -> Result<Vec<Persona>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, description, is_default FROM personas ORDER BY is_default DESC, name COLLATE NOCASE",
        )?;
        let rows = stmt.query_map([], persona_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The persona of a Session (the default one when it has none).
    pub fn session_persona(&self, session_id: i64) -> Result<Persona> {
        let conn = self.conn();
        conn.query_row(
            "SELECT p.id, p.name, p.description, p.is_default FROM personas p
             WHERE p.id = coalesce((SELECT persona_id FROM sessions WHERE id = ?1),
                                   (SELECT id FROM personas WHERE is_default = 1 ORDER BY id LIMIT 1))",
            [session_id],
            persona_from_row,
        )
        .optional()?
        .ok_or(Error::SessionNotFound(session_id))
    }

    /// Adds a persona (made the default when `is_default`, or when it is the only one).
    pub fn save_persona(&self, p: &Persona, now: i64) -> Result<Persona> {
        let mut conn = self.conn();
        let tx = Store::write_tx(&mut conn)?;
        if p.is_default {
            tx.execute("UPDATE personas SET is_default = 0", [])?;
        }
        let id = if p.id > 0 {
            let n = tx.execute(
                "UPDATE personas SET name = ?2, description = ?3, is_default = ?4 OR is_default WHERE id = ?1",
                params![p.id, p.name, p.description, p.is_default],
            )?;
            if n == 0 {
                return Err(Error::PersonaNotFound(p.id));
            }
            p.id
        } else {
            tx.execute(
                "INSERT INTO personas (name, description, is_default, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![p.name, p.description, p.is_default, now],
            )?;
            tx.last_insert_rowid()
        };
        tx.commit()?;
        Ok(Persona { id, ..p.clone() })
    }
}

pub(super) fn persona_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Persona> {
    Ok(Persona {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        is_default: r.get(3)?,
    })
}
