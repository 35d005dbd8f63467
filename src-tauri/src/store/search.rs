//! Full-text search over every message (`messages_fts`, an FTS5 index kept in step by
//! triggers): plain words in, hits with the text around them out.

use rusqlite::params;

use super::messages::Role;
use super::{Result, Store};

/// A message found by full-text search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub message_id: i64,
    pub session_id: i64,
    pub character_id: String,
    pub character_name: String,
    pub role: Role,
    /// The text around the match, the matched words between `[` and `]`.
    pub snippet: String,
    pub created_at: i64,
}

impl Store {
    /// Messages matching `query` (words, all required; a trailing `*` matches a prefix), newest
    /// first, in Sessions not in the trash. The query is taken as plain words: FTS5 syntax in
    /// it is quoted away, so any text is a valid query.
    pub fn search_messages(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        let fts = fts_query(query);
        if fts.is_empty() {
            return Ok(vec![]);
        }
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT m.id, m.session_id, s.character_id, c.name, m.role,
                    snippet(messages_fts, 0, '[', ']', '…', 12), m.created_at
             FROM messages_fts f
             JOIN messages m ON m.id = f.rowid
             JOIN sessions s ON s.id = m.session_id
             JOIN characters c ON c.id = s.character_id
             WHERE messages_fts MATCH ?1 AND s.deleted_at IS NULL AND c.deleted_at IS NULL
             ORDER BY f.rowid DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![fts, limit as i64], |r| {
            Ok(SearchHit {
                message_id: r.get(0)?,
                session_id: r.get(1)?,
                character_id: r.get(2)?,
                character_name: r.get(3)?,
                role: Role::parse(&r.get::<_, String>(4)?),
                snippet: r.get(5)?,
                created_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Plain words as an FTS5 query: each word quoted (so `AND`, `-`, `:` and quotes are text),
/// all required; a word ending in `*` stays a prefix search.
pub(super) fn fts_query(query: &str) -> String {
    query
        .split_whitespace()
        .filter_map(|w| {
            let prefix = w.ends_with('*');
            let word: String = w
                .trim_end_matches('*')
                .chars()
                .filter(|c| *c != '"')
                .collect();
            if word.chars().all(|c| !c.is_alphanumeric()) {
                return None;
            }
            Some(if prefix {
                format!("\"{word}\"*")
            } else {
                format!("\"{word}\"")
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}
