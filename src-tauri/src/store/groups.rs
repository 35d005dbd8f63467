//! Group Sessions: a Session with two or more Characters. Who the members are and in which
//! order, who is muted, when each was in the room (`session_presence`: a member's prompt holds
//! only the messages they were there for), who wrote each reply (`messages.speaker_id`), the
//! group's name and how the next speaker is chosen (`Strategy`). Every change is one
//! transaction.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};

use super::messages::{insert_message_raw, MessageStatus, Role};
use super::{Error, Result, Session, Store};
use crate::characters::Scenario;

/// How a group's next speaker is chosen (`conversation::group::next_speakers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Members named in the last message, else one drawn by talkativeness.
    Natural,
    /// Every member, in order.
    List,
    /// One member who has not spoken since the person's last message.
    Pooled,
    /// Only the member asked for.
    Manual,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Natural => "natural",
            Strategy::List => "list",
            Strategy::Pooled => "pooled",
            Strategy::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "natural" => Strategy::Natural,
            "list" => Strategy::List,
            "pooled" => Strategy::Pooled,
            "manual" => Strategy::Manual,
            _ => return None,
        })
    }
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub character_id: String,
    pub position: i64,
    pub muted: bool,
    /// In the room now (joined and not left).
    pub present: bool,
}

/// A group Session's own part.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub session_id: i64,
    pub name: String,
    pub strategy: Strategy,
    /// In their order.
    pub members: Vec<Member>,
}

/// Copies group `source`'s members and presence into `target`, a branch whose messages were
/// just copied in order with ids after `before` (nothing for a one-Character Session).
pub(super) fn branch_group(
    tx: &rusqlite::Transaction<'_>,
    source: i64,
    target: i64,
    before: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE sessions SET (group_name, strategy) = (SELECT group_name, strategy FROM sessions WHERE id = ?1)
         WHERE id = ?2",
        params![source, target],
    )?;
    tx.execute(
        "INSERT INTO session_members (session_id, character_id, position, muted)
         SELECT ?2, character_id, position, muted FROM session_members WHERE session_id = ?1",
        params![source, target],
    )?;
    // Old ids to new, by order: the n-th message of the source is the n-th of the branch.
    let old: Vec<i64> = {
        let mut stmt = tx.prepare("SELECT id FROM messages WHERE session_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([source], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let new: Vec<i64> = {
        let mut stmt =
            tx.prepare("SELECT id FROM messages WHERE session_id = ?1 AND id > ?2 ORDER BY id")?;
        let rows = stmt.query_map(params![target, before], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // A span edge maps to the branch's id of the last message at or before it (0 stays 0).
    let map = |edge: i64| -> i64 {
        old.iter()
            .zip(&new)
            .take_while(|(o, _)| **o <= edge)
            .last()
            .map_or(0, |(_, n)| *n)
    };
    let spans: Vec<(String, i64, Option<i64>)> = {
        let mut stmt = tx.prepare(
            "SELECT character_id, after_message, until_message FROM session_presence WHERE session_id = ?1",
        )?;
        let rows = stmt.query_map([source], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let last_new = new.last().copied().unwrap_or(0);
    let point = new.len().checked_sub(1).map_or(0, |i| old[i]);
    for (who, after, until) in spans {
        if after > 0 && after >= point {
            continue; // joined after the branch point: not in the room there
        }
        let after = map(after);
        // Someone who left after the branch point is still in the room in the branch.
        let until = until.map(map).filter(|u| *u < last_new);
        if until.is_some_and(|u| u <= after) {
            continue;
        }
        tx.execute(
            "INSERT INTO session_presence (session_id, character_id, after_message, until_message)
             VALUES (?1, ?2, ?3, ?4)",
            params![target, who, after, until],
        )?;
    }
    Ok(())
}

impl Store {
    /// Starts a group Session of `members` (the first is the host) in `scenario`, everyone in
    /// the room; `greeting`, if any (speaker, text), becomes its first message.
    pub fn create_group(
        &self,
        members: &[String],
        scenario: Scenario,
        name: &str,
        strategy: Strategy,
        greeting: Option<(&str, &str)>,
        now: i64,
    ) -> Result<Session> {
        let mut conn = self.conn();
        let tx = Store::write_tx(&mut conn)?;
        for id in members {
            let live: Option<bool> = tx
                .query_row(
                    "SELECT deleted_at IS NULL FROM characters WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            if live != Some(true) {
                return Err(Error::CharacterNotFound(id.clone()));
            }
        }
        tx.execute(
            "INSERT INTO sessions (character_id, scenario, title, created_at, updated_at, persona_id, group_name, strategy)
             VALUES (?1, ?2, ?3, ?4, ?4, (SELECT id FROM personas WHERE is_default = 1 ORDER BY id LIMIT 1), ?3, ?5)",
            params![members[0], scenario.as_str(), name, now, strategy.as_str()],
        )?;
        let id = tx.last_insert_rowid();
        for (i, m) in members.iter().enumerate() {
            tx.execute(
                "INSERT INTO session_members (session_id, character_id, position) VALUES (?1, ?2, ?3)",
                params![id, m, i as i64],
            )?;
            tx.execute(
                "INSERT INTO session_presence (session_id, character_id, after_message) VALUES (?1, ?2, 0)",
                params![id, m],
            )?;
        }
        if let Some((speaker, text)) = greeting.filter(|(_, t)| !t.trim().is_empty()) {
            let m =
                insert_message_raw(&tx, id, Role::Character, text, MessageStatus::Complete, now)?;
            tx.execute(
                "UPDATE messages SET speaker_id = ?2 WHERE id = ?1",
                params![m, speaker],
            )?;
        }
        tx.commit()?;
        drop(conn);
        self.get_session(id)
    }

    /// The group part of a Session; `None` for a one-Character Session.
    pub fn group(&self, session_id: i64) -> Result<Option<Group>> {
        let conn = self.conn();
        let head: Option<(Option<String>, Option<String>)> = conn
            .query_row(
                "SELECT group_name, strategy FROM sessions WHERE id = ?1",
                [session_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((name, strategy)) = head else {
            return Err(Error::SessionNotFound(session_id));
        };
        let Some(strategy) = strategy.as_deref().and_then(Strategy::parse) else {
            return Ok(None);
        };
        let mut stmt = conn.prepare(
            "SELECT m.character_id, m.position, m.muted,
                    EXISTS (SELECT 1 FROM session_presence p WHERE p.session_id = m.session_id
                            AND p.character_id = m.character_id AND p.until_message IS NULL)
             FROM session_members m WHERE m.session_id = ?1 ORDER BY m.position",
        )?;
        let members = stmt
            .query_map([session_id], |r| {
                Ok(Member {
                    character_id: r.get(0)?,
                    position: r.get(1)?,
                    muted: r.get(2)?,
                    present: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(Group {
            session_id,
            name: name.unwrap_or_default(),
            strategy,
            members,
        }))
    }

    /// A member joins (a new one is added at the end) or leaves the room, from the Session's
    /// latest message on. Joining twice or leaving twice changes nothing.
    pub fn set_member_present(
        &self,
        session_id: i64,
        character_id: &str,
        present: bool,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = Store::write_tx(&mut conn)?;
        let last: i64 = tx.query_row(
            "SELECT coalesce(max(id), 0) FROM messages WHERE session_id = ?1",
            [session_id],
            |r| r.get(0),
        )?;
        let open: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM session_presence WHERE session_id = ?1 AND character_id = ?2 AND until_message IS NULL)",
            params![session_id, character_id],
            |r| r.get(0),
        )?;
        if present && !open {
            tx.execute(
                "INSERT OR IGNORE INTO session_members (session_id, character_id, position)
                 VALUES (?1, ?2, (SELECT coalesce(max(position), -1) + 1 FROM session_members WHERE session_id = ?1))",
                params![session_id, character_id],
            )?;
            tx.execute(
                "INSERT INTO session_presence (session_id, character_id, after_message) VALUES (?1, ?2, ?3)",
                params![session_id, character_id, last],
            )?;
        } else if !present && open {
            tx.execute(
                "UPDATE session_presence SET until_message = ?3
                 WHERE session_id = ?1 AND character_id = ?2 AND until_message IS NULL",
                params![session_id, character_id, last],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Mutes or unmutes a member: a muted member is never chosen to speak, only asked.
    pub fn set_member_muted(&self, session_id: i64, character_id: &str, muted: bool) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE session_members SET muted = ?3 WHERE session_id = ?1 AND character_id = ?2",
            params![session_id, character_id, muted],
        )?;
        if n == 0 {
            return Err(Error::CharacterNotFound(character_id.to_string()));
        }
        Ok(())
    }

    /// When a member was in the room: (after_message, until_message) spans, oldest first.
    pub fn presence(&self, session_id: i64, character_id: &str) -> Result<Vec<(i64, Option<i64>)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT after_message, until_message FROM session_presence
             WHERE session_id = ?1 AND character_id = ?2 ORDER BY after_message",
        )?;
        let rows = stmt.query_map(params![session_id, character_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Who wrote each reply of a group Session, by message id.
    pub fn speakers(&self, session_id: i64) -> Result<HashMap<i64, String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, speaker_id FROM messages WHERE session_id = ?1 AND speaker_id IS NOT NULL",
        )?;
        let rows = stmt.query_map([session_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How the group's next speaker is chosen from now on.
    pub fn set_strategy(&self, session_id: i64, strategy: Strategy) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE sessions SET strategy = ?2 WHERE id = ?1 AND group_name IS NOT NULL",
            params![session_id, strategy.as_str()],
        )?;
        if n == 0 {
            return Err(Error::SessionNotFound(session_id));
        }
        Ok(())
    }

    /// Records which member wrote a reply.
    pub fn set_speaker(&self, message_id: i64, character_id: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE messages SET speaker_id = ?2 WHERE id = ?1",
            params![message_id, character_id],
        )?;
        if n == 0 {
            return Err(Error::MessageNotFound(message_id));
        }
        Ok(())
    }
}
