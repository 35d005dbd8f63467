//! `troupe bench --search N`: full-text search and opening a Session, on N stored messages in a
//! scratch library (no model needed).

use std::time::Instant;

use super::tempfile_dir;
use crate::app::{now_ms, Troupe};
use crate::characters::Scenario;
use crate::settings::Paths;
use crate::store::{MessageStatus, Role};

/// Words with a spread of frequencies (a Zipf-like draw), so queries hit common, middling and
/// rare words the way real chat does.
const WORDS: &[&str] = &[
    "the",
    "and",
    "you",
    "that",
    "was",
    "for",
    "with",
    "have",
    "this",
    "but",
    "not",
    "what",
    "all",
    "were",
    "when",
    "your",
    "said",
    "there",
    "each",
    "which",
    "bread",
    "morning",
    "river",
    "garden",
    "letter",
    "violin",
    "market",
    "winter",
    "story",
    "captain",
    "engine",
    "museum",
    "lantern",
    "harbour",
    "orchard",
    "telescope",
    "cathedral",
    "marmalade",
    "quartz",
    "zeppelin",
];

/// Messages per seeded Session.
const PER_SESSION: usize = 1000;

/// Seeds a scratch library with `n` messages, then times search and opening a Session.
pub fn search(n: usize) -> anyhow::Result<()> {
    let scratch = tempfile_dir()?;
    let troupe = Troupe::open(Paths::at(&scratch))?;
    let mut rng = XorShift(0x9e3779b97f4a7c15);
    let started = Instant::now();
    let session_ids = seed(&troupe, n, &mut rng)?;
    println!(
        "seeded {n} messages in {} sessions in {:.1} s",
        session_ids.len(),
        started.elapsed().as_secs_f64()
    );
    time_queries(&troupe)?;
    time_opening(&troupe, &session_ids, &mut rng)?;
    drop(troupe);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// A small deterministic random number generator (xorshift64).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Stores `n` messages in Sessions of `PER_SESSION`, across the built-in Characters. Returns
/// the Sessions' ids.
fn seed(troupe: &Troupe, n: usize, rng: &mut XorShift) -> anyhow::Result<Vec<i64>> {
    let characters = troupe.store.list_characters()?;
    let sessions = n.div_ceil(PER_SESSION);
    let mut session_ids = Vec::with_capacity(sessions);
    let now = now_ms();
    for s in 0..sessions {
        let c = &characters[s % characters.len()];
        let session = troupe
            .store
            .create_session(&c.id, Scenario::ChitChat, "bench", None, now)?;
        let rows: Vec<(Role, String)> = (0..PER_SESSION.min(n - s * PER_SESSION))
            .map(|i| {
                let role = if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Character
                };
                (role, sentence(rng))
            })
            .collect();
        troupe
            .store
            .insert_messages_bulk(session.id, &rows, MessageStatus::Complete, now)?;
        session_ids.push(session.id);
    }
    Ok(session_ids)
}

/// 8 to 31 words, Zipf-like over a 8,040-word vocabulary: the listed words first (the
/// commonest), then made-up words from syllables; small ranks are far more likely.
fn sentence(rng: &mut XorShift) -> String {
    const S: [&str; 20] = [
        "ka", "lo", "mi", "ne", "tu", "ra", "so", "vi", "de", "po", "shi", "gan", "tor", "bel",
        "qua", "rin", "zu", "fe", "yo", "wex",
    ];
    let words = 8 + (rng.next() % 24) as usize;
    (0..words)
        .map(|_| {
            let r = (rng.next() % 1_000_000) as f64 / 1_000_000.0;
            let rank = ((r.powi(4)) * 8040.0) as usize;
            match WORDS.get(rank) {
                Some(w) => w.to_string(),
                None => {
                    let k = rank - WORDS.len();
                    format!("{}{}{}", S[k % 20], S[(k / 20) % 20], S[(k / 400) % 20])
                }
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `p`th percentile of `v`.
fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Times each query 20 times and prints p50 and p95, per query and over all.
fn time_queries(troupe: &Troupe) -> anyhow::Result<()> {
    println!("query\tmatches shown\tp50 ms\tp95 ms");
    let mut all = Vec::new();
    for q in [
        // Common, middling and rare words, pairs, prefixes, and a miss.
        "the",
        "bread",
        "morning river",
        "violin",
        "zeppelin",
        "marm*",
        "kaloshi",
        "wexyofe",
        "ka*",
        "quartz cathedral",
        "rinbelzu torgan*",
        "nothingmatches",
    ] {
        let mut times = Vec::new();
        let mut shown = 0;
        for _ in 0..20 {
            let t = Instant::now();
            shown = troupe.store.search_messages(q, 50)?.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        all.extend(times.iter().copied());
        println!(
            "{q}\t{shown}\t{:.2}\t{:.2}",
            percentile(times.clone(), 0.5),
            percentile(times, 0.95)
        );
    }
    println!(
        "search, all queries: p50 {:.2} ms · p95 {:.2} ms (target: p95 under 50 ms)",
        percentile(all.clone(), 0.5),
        percentile(all, 0.95)
    );
    Ok(())
}

/// Times opening 200 random Sessions (their newest 50 messages).
fn time_opening(troupe: &Troupe, session_ids: &[i64], rng: &mut XorShift) -> anyhow::Result<()> {
    let mut times = Vec::new();
    for i in 0..200 {
        let id = session_ids[(rng.next() as usize + i) % session_ids.len()];
        let t = Instant::now();
        let m = troupe.store.recent_messages(id, 50)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(!m.is_empty());
    }
    println!(
        "opening a session (its newest 50 of {PER_SESSION} messages): p50 {:.2} ms · p95 {:.2} ms (target: under 10 ms)",
        percentile(times.clone(), 0.5),
        percentile(times, 0.95)
    );
    Ok(())
}
