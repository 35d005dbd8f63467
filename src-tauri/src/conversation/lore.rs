//! Lorebook activation (a card's `character_book`, or World Info imported into it): which
//! entries go into a prompt, and why.
//!
//! Card V2 semantics: an entry fires when one of its keys appears in the last `scan_depth`
//! messages (the user's new one included); a `selective` entry also needs one of its secondary
//! keys; `constant` entries are always in; disabled entries never. Matching is a substring
//! match, case-insensitive unless the entry says otherwise (regex keys are matched as plain
//! text). Fired entries are ordered by `insertion_order` (lower first) and kept within a token
//! budget, dropping the lowest `priority` first. Pure: the caller supplies token counts.

use crate::characters::card::{LoreEntry, Lorebook};

/// Messages scanned for keys when the lorebook does not say.
pub const DEFAULT_SCAN_DEPTH: usize = 4;
/// Tokens of keyword lore per prompt when the lorebook does not say.
pub const DEFAULT_BUDGET: usize = 512;

/// Why an entry is in the prompt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fired {
    /// Index in the lorebook's entries.
    pub entry: usize,
    /// The entry's name (or comment, or first key) for people.
    pub name: String,
    /// "constant", or the key (and secondary key) that matched.
    pub reason: String,
    pub content: String,
}

/// What activation decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activation {
    /// Always-on entries (they belong in the stable prefix), in insertion order.
    pub constant: Vec<Fired>,
    /// Entries whose keys matched, in insertion order, within the budget.
    pub keyed: Vec<Fired>,
    /// Entries that matched but did not fit the budget.
    pub over_budget: Vec<Fired>,
}

fn label(e: &LoreEntry) -> String {
    [&e.name, &e.comment]
        .into_iter()
        .find(|s| !s.trim().is_empty())
        .cloned()
        .or_else(|| e.keys.first().cloned())
        .unwrap_or_else(|| "entry".into())
}

fn find<'a>(keys: &'a [String], texts: &[&str], case_sensitive: bool) -> Option<&'a str> {
    keys.iter().map(|k| k.trim()).find(|k| {
        !k.is_empty()
            && texts.iter().any(|t| {
                if case_sensitive {
                    t.contains(k)
                } else {
                    t.to_lowercase().contains(&k.to_lowercase())
                }
            })
    })
}

/// Activates `book` against `recent` (the messages, oldest first; only the last scan-depth
/// are scanned). `tokens(i)` is entry `i`'s content in tokens; `budget` overrides the book's.
pub fn activate(
    book: &Lorebook,
    recent: &[&str],
    tokens: &dyn Fn(usize) -> usize,
    budget: Option<usize>,
) -> Activation {
    let depth = book
        .scan_depth
        .filter(|d| *d > 0)
        .map(|d| d as usize)
        .unwrap_or(DEFAULT_SCAN_DEPTH);
    let scanned = &recent[recent.len().saturating_sub(depth)..];
    let mut out = Activation::default();
    let mut keyed: Vec<(usize, &LoreEntry, String)> = Vec::new();
    for (i, e) in book.entries.iter().enumerate() {
        if !e.enabled || e.content.trim().is_empty() {
            continue;
        }
        if e.constant {
            out.constant.push(Fired {
                entry: i,
                name: label(e),
                reason: "constant".into(),
                content: e.content.trim().to_string(),
            });
            continue;
        }
        let cs = e.case_sensitive.unwrap_or(false);
        let Some(key) = find(&e.keys, scanned, cs) else {
            continue;
        };
        let reason = if e.selective && !e.secondary_keys.is_empty() {
            match find(&e.secondary_keys, scanned, cs) {
                Some(second) => format!("keys \"{key}\" and \"{second}\""),
                None => continue,
            }
        } else {
            format!("key \"{key}\"")
        };
        keyed.push((i, e, reason));
    }
    out.constant
        .sort_by_key(|f| book.entries[f.entry].insertion_order);
    // Within the budget: the highest priority first (ties: lower insertion order first).
    let budget = budget.unwrap_or_else(|| {
        book.token_budget
            .filter(|b| *b > 0)
            .map(|b| b as usize)
            .unwrap_or(DEFAULT_BUDGET)
    });
    let mut by_priority = keyed.clone();
    by_priority.sort_by_key(|(i, e, _)| {
        (
            std::cmp::Reverse(e.priority.unwrap_or(0)),
            e.insertion_order,
            *i,
        )
    });
    let mut used = 0;
    let mut kept = Vec::new();
    for (i, e, reason) in by_priority {
        let fired = Fired {
            entry: i,
            name: label(e),
            reason,
            content: e.content.trim().to_string(),
        };
        let t = tokens(i);
        if used + t <= budget {
            used += t;
            kept.push(fired);
        } else {
            out.over_budget.push(fired);
        }
    }
    kept.sort_by_key(|f| (book.entries[f.entry].insertion_order, f.entry));
    out.keyed = kept;
    out
}

/// The texts of a Character's constant lore entries, in insertion order (they belong in the
/// stable prefix of every prompt).
pub fn constant(character: &crate::characters::Character) -> Vec<String> {
    match &character.lorebook {
        Some(book) => activate(book, &[], &|_| 0, Some(0))
            .constant
            .into_iter()
            .map(|f| f.content)
            .collect(),
        None => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(keys: &[&str], content: &str) -> LoreEntry {
        LoreEntry {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            content: content.into(),
            enabled: true,
            ..Default::default()
        }
    }

    fn book(entries: Vec<LoreEntry>) -> Lorebook {
        Lorebook {
            entries,
            ..Default::default()
        }
    }

    #[test]
    fn keys_fire_within_the_scan_depth_and_case_is_ignored() {
        let b = book(vec![
            entry(&["Eldoria"], "A kingdom."),
            entry(&["dragon"], "Dragons sleep."),
        ]);
        let a = activate(
            &b,
            &["the DRAGON woke", "hi", "hi", "hi", "tell me of eldoria"],
            &|_| 5,
            None,
        );
        // "DRAGON" is five messages back, past the default depth of four.
        assert_eq!(a.keyed.len(), 1);
        assert_eq!(a.keyed[0].reason, "key \"Eldoria\"");
    }

    #[test]
    fn selective_entries_need_a_secondary_key_and_constant_ones_always_fire() {
        let mut sel = entry(&["king"], "The king is old.");
        sel.selective = true;
        sel.secondary_keys = vec!["castle".into()];
        let mut always = entry(&[], "Magic is rare.");
        always.constant = true;
        let mut off = entry(&["king"], "Never.");
        off.enabled = false;
        let b = book(vec![sel, always, off]);
        let a = activate(&b, &["the king spoke"], &|_| 5, None);
        assert!(a.keyed.is_empty());
        assert_eq!(a.constant[0].content, "Magic is rare.");
        let a = activate(&b, &["the king in his castle"], &|_| 5, None);
        assert_eq!(a.keyed[0].reason, "keys \"king\" and \"castle\"");
    }

    #[test]
    fn a_key_matching_everything_is_held_to_the_budget_by_priority() {
        let mut entries: Vec<LoreEntry> = (0..10)
            .map(|i| {
                let mut e = entry(&["e", ""], &format!("entry {i}"));
                e.insertion_order = 10 - i;
                e.priority = Some(i);
                e
            })
            .collect();
        entries.push(entry(&[""], "an empty key matches nothing"));
        let b = book(entries);
        let a = activate(&b, &["every message has an e"], &|_| 100, Some(350));
        // The three highest priorities fit, then they are put in insertion order.
        let kept: Vec<usize> = a.keyed.iter().map(|f| f.entry).collect();
        assert_eq!(kept, vec![9, 8, 7]);
        assert_eq!(a.over_budget.len(), 7);
    }
}
