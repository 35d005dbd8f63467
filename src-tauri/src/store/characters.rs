//! Characters and their trash: the gallery's summaries, profile search, favourites, the
//! trash (rows kept until emptied) and built-ins removed for good.

use rusqlite::{params, OptionalExtension};

use super::{Error, Result, Store};
use crate::characters::{Category, Character};

/// What the gallery shows of a Character: enough to draw a card, not the whole profile.
#[derive(Debug, Clone, PartialEq)]
pub struct CharacterSummary {
    pub id: String,
    pub name: String,
    pub category: Category,
    pub tagline: String,
    pub avatar: Option<String>,
    /// When the user last chatted with it (unix ms), if ever.
    pub last_chat_at: Option<i64>,
    pub tags: Vec<String>,
    pub favourite: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// When it went to the trash (unix ms); `None` for a Character in the gallery.
    pub deleted_at: Option<i64>,
}

impl Store {
    /// Inserts a Character unless one with its id exists. Returns whether it was inserted.
    /// Built-ins are installed through this, so an update never overwrites the user's edits.
    /// A built-in the user removed for good (emptied from the trash) is not installed again.
    pub fn insert_character_if_absent(
        &self,
        c: &Character,
        builtin: bool,
        now: i64,
    ) -> Result<bool> {
        let data = serde_json::to_string(c).expect("a Character always serialises");
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO characters (id, name, category, data, builtin, created_at, updated_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6
             WHERE NOT ?5 OR NOT EXISTS (SELECT 1 FROM removed_builtins WHERE id = ?1)",
            params![c.id, c.name, c.category.as_str(), data, builtin, now],
        )?;
        Ok(n == 1)
    }

    /// The gallery's view of every Character not in the trash, most recently chatted first,
    /// then by name. Only the columns a card draws: the profiles stay in the database.
    pub fn list_characters(&self) -> Result<Vec<CharacterSummary>> {
        self.summaries(
            "WHERE c.deleted_at IS NULL ORDER BY 6 IS NULL, 6 DESC, c.name COLLATE NOCASE",
        )
    }

    /// The Characters in the trash, most recently deleted first.
    pub fn list_trash(&self) -> Result<Vec<CharacterSummary>> {
        self.summaries("WHERE c.deleted_at IS NOT NULL ORDER BY c.deleted_at DESC")
    }

    fn summaries(&self, tail: &str) -> Result<Vec<CharacterSummary>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT c.id, c.name, c.category, json_extract(c.data, '$.tagline'),
                    json_extract(c.data, '$.avatar'),
                    (SELECT max(s.updated_at) FROM sessions s WHERE s.character_id = c.id),
                    json_extract(c.data, '$.tags'), c.favourite, c.created_at, c.updated_at,
                    c.deleted_at
             FROM characters c {tail}"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(CharacterSummary {
                id: r.get(0)?,
                name: r.get(1)?,
                category: Category::parse(&r.get::<_, String>(2)?).unwrap_or(Category::Fictional),
                tagline: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                avatar: r.get(4)?,
                last_chat_at: r.get(5)?,
                tags: r
                    .get::<_, Option<String>>(6)?
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default(),
                favourite: r.get(7)?,
                created_at: r.get(8)?,
                updated_at: r.get(9)?,
                deleted_at: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Ids of the Characters (not in the trash) whose name, tagline, tags, description or any
    /// profile field contains `query`, ignoring case (ASCII). Hundreds of rows: a scan is fast.
    pub fn search_characters(&self, query: &str) -> Result<Vec<String>> {
        let pattern = format!(
            "%{}%",
            query
                .trim()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT c.id FROM characters c WHERE c.deleted_at IS NULL AND (
                 c.name LIKE ?1 ESCAPE '\\'
                 OR EXISTS (SELECT 1 FROM json_tree(c.data) t
                            WHERE t.type = 'text'
                              AND (t.path LIKE '$.profile%' OR t.path = '$.tags'
                                   OR t.fullkey IN ('$.tagline', '$.description', '$.personality', '$.setting'))
                              AND t.value LIKE ?1 ESCAPE '\\'))
             ORDER BY c.name COLLATE NOCASE",
        )?;
        let rows = stmt.query_map([pattern], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks a Character as a favourite, or not.
    pub fn set_favourite(&self, id: &str, favourite: bool) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE characters SET favourite = ?2 WHERE id = ?1",
            params![id, favourite],
        )?;
        if n == 0 {
            return Err(Error::CharacterNotFound(id.to_string()));
        }
        Ok(())
    }

    /// Moves a Character to the trash: it leaves the gallery, keeping its Sessions.
    pub fn trash_character(&self, id: &str, now: i64) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE characters SET deleted_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        if n == 0 {
            return Err(Error::CharacterNotFound(id.to_string()));
        }
        Ok(())
    }

    /// Brings a Character back from the trash, as it was.
    pub fn restore_character(&self, id: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE characters SET deleted_at = NULL WHERE id = ?1",
            [id],
        )?;
        if n == 0 {
            return Err(Error::CharacterNotFound(id.to_string()));
        }
        Ok(())
    }

    /// Deletes for good the trashed Characters deleted before `before` (unix ms; `i64::MAX`
    /// for all of them), with their Sessions and Messages, in one transaction. Returns them, so
    /// the caller can remove their avatar files. A removed built-in is remembered, so it is not
    /// installed again.
    pub fn purge_trash(&self, before: i64, now: i64) -> Result<Vec<Character>> {
        let mut conn = self.conn();
        let tx = Store::write_tx(&mut conn)?;
        let gone: Vec<(String, String, bool)> = {
            let mut stmt = tx.prepare(
                "SELECT id, data, builtin FROM characters WHERE deleted_at IS NOT NULL AND deleted_at < ?1",
            )?;
            let rows = stmt.query_map([before], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (id, _, builtin) in &gone {
            if *builtin {
                tx.execute(
                    "INSERT OR REPLACE INTO removed_builtins (id, removed_at) VALUES (?1, ?2)",
                    params![id, now],
                )?;
            }
            // A group it hosts moves to another member still in the library, so the group's
            // history outlives it (the rest of the group's members decide when it goes).
            tx.execute(
                "UPDATE sessions SET character_id = (
                     SELECT m.character_id FROM session_members m JOIN characters c ON c.id = m.character_id
                     WHERE m.session_id = sessions.id AND m.character_id != ?1
                     ORDER BY c.deleted_at IS NOT NULL, m.position LIMIT 1)
                 WHERE character_id = ?1 AND EXISTS (
                     SELECT 1 FROM session_members m JOIN characters c ON c.id = m.character_id
                     WHERE m.session_id = sessions.id AND m.character_id != ?1)",
                [id],
            )?;
            tx.execute("DELETE FROM characters WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(gone
            .into_iter()
            .filter_map(|(_, data, _)| serde_json::from_str(&data).ok())
            .collect())
    }

    /// Inserts a new, user-made Character; fails if its id is taken.
    pub fn insert_character(&self, c: &Character, now: i64) -> Result<()> {
        if !self.insert_character_if_absent(c, false, now)? {
            return Err(Error::CharacterExists(c.id.clone()));
        }
        Ok(())
    }

    /// One whole Character.
    /// Whether the Character is in the trash (`CharacterNotFound` when it is gone for good).
    pub fn in_trash(&self, id: &str) -> Result<bool> {
        self.conn()
            .query_row(
                "SELECT deleted_at IS NOT NULL FROM characters WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::CharacterNotFound(id.to_string()))
    }

    /// Whether a Character with this id exists.
    pub fn has_character(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM characters WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Saves an edited Character (its id must exist).
    pub fn update_character(&self, c: &Character, now: i64) -> Result<()> {
        let data = serde_json::to_string(c).expect("a Character always serialises");
        let n = self.conn().execute(
            "UPDATE characters SET name = ?2, category = ?3, data = ?4, updated_at = ?5 WHERE id = ?1",
            params![c.id, c.name, c.category.as_str(), data, now],
        )?;
        if n == 0 {
            return Err(Error::CharacterNotFound(c.id.clone()));
        }
        Ok(())
    }

    pub fn get_character(&self, id: &str) -> Result<Character> {
        let data: Option<String> = self
            .conn()
            .query_row("SELECT data FROM characters WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        let data = data.ok_or_else(|| Error::CharacterNotFound(id.to_string()))?;
        serde_json::from_str(&data).map_err(|source| Error::Corrupt {
            id: id.to_string(),
            source,
        })
    }
}
