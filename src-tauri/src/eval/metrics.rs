//! The arithmetic of evaluation, kept apart from running anything so it can be tested with
//! plain strings: word n-grams (distinct-n, the longest repeat, loops), ROUGE-L, keyword
//! matches, and the bootstrap interval of a difference. Sources are in docs/EVALUATION.md.

use std::collections::{HashMap, HashSet};

/// The mean; 0 for no samples.
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Lower-cased words (letters, digits and inner apostrophes).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '\u{2019}'))
        .map(|w| w.trim_matches(['\'', '\u{2019}']).to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

fn ngrams(words: &[String], n: usize) -> Vec<&[String]> {
    if words.len() < n {
        Vec::new()
    } else {
        words.windows(n).collect()
    }
}

/// Distinct-n (Li et al., 2016): distinct word n-grams over all n-grams of `replies`.
pub fn distinct(replies: &[String], n: usize) -> f64 {
    let mut all = 0usize;
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    for r in replies {
        let w = words(r);
        for g in ngrams(&w, n) {
            all += 1;
            seen.insert(g.to_vec());
        }
    }
    if all == 0 {
        0.0
    } else {
        seen.len() as f64 / all as f64
    }
}

/// The longest run of words that occurs in two different replies (in words).
pub fn longest_repeat(replies: &[String]) -> usize {
    let all: Vec<Vec<String>> = replies.iter().map(|r| words(r)).collect();
    let mut best = 0;
    for (i, a) in all.iter().enumerate() {
        for b in &all[..i] {
            best = best.max(longest_common_run(a, b));
        }
    }
    best
}

/// Longest common contiguous run of two word lists.
fn longest_common_run(a: &[String], b: &[String]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut best = 0;
    for x in a {
        let mut cur = vec![0usize; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            if x == y {
                cur[j + 1] = prev[j] + 1;
                best = best.max(cur[j + 1]);
            }
        }
        prev = cur;
    }
    best
}

/// Whether `reply` loops: a 4-word phrase three times or more inside it, or most of its
/// 3-grams (60%) copied from one earlier reply.
pub fn loops(reply: &str, earlier: &[String]) -> bool {
    let w = words(reply);
    let mut counts: HashMap<&[String], usize> = HashMap::new();
    for g in ngrams(&w, 4) {
        *counts.entry(g).or_default() += 1;
    }
    if counts.values().any(|&n| n >= 3) {
        return true;
    }
    let mine: HashSet<&[String]> = ngrams(&w, 3).into_iter().collect();
    if mine.len() < 3 {
        return false;
    }
    earlier.iter().any(|e| {
        let ew = words(e);
        let theirs: HashSet<&[String]> = ngrams(&ew, 3).into_iter().collect();
        let shared = mine.iter().filter(|g| theirs.contains(*g)).count();
        shared as f64 >= 0.6 * mine.len() as f64
    })
}

/// ROUGE-L F1 (Lin, 2004) of `candidate` against `reference`, on lower-cased words.
pub fn rouge_l(candidate: &str, reference: &str) -> f64 {
    let c = words(candidate);
    let r = words(reference);
    if c.is_empty() || r.is_empty() {
        return 0.0;
    }
    let mut prev = vec![0usize; r.len() + 1];
    for x in &c {
        let mut cur = vec![0usize; r.len() + 1];
        for (j, y) in r.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                cur[j].max(prev[j + 1])
            };
        }
        prev = cur;
    }
    let lcs = prev[r.len()] as f64;
    if lcs == 0.0 {
        return 0.0;
    }
    let p = lcs / c.len() as f64;
    let rec = lcs / r.len() as f64;
    2.0 * p * rec / (p + rec)
}

/// Whether `text` contains any of `keywords` as whole words (case-insensitive; a keyword of
/// several words matches as a phrase).
pub fn mentions(text: &str, keywords: &[String]) -> bool {
    let w = words(text);
    keywords.iter().any(|k| {
        let kw = words(k);
        !kw.is_empty() && w.windows(kw.len()).any(|win| win == kw.as_slice())
    })
}

/// A small deterministic generator (SplitMix64), so a bootstrap gives the same interval on
/// every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The difference of means `b − a` and its bootstrap 95% interval (Efron; 2,000 resamples,
/// percentile method). Samples of equal length are taken as paired (the same items measured
/// twice) and resampled together; otherwise each side is resampled on its own. `None` when a
/// side has no samples.
pub fn bootstrap_difference(a: &[f64], b: &[f64], seed: u64) -> Option<(f64, f64, f64)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    const RESAMPLES: usize = 2000;
    let diff = mean(b) - mean(a);
    let mut rng = SplitMix(seed);
    let paired = a.len() == b.len();
    let mut diffs = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        let d = if paired {
            let n = a.len();
            let mut s = 0.0;
            for _ in 0..n {
                let i = rng.below(n);
                s += b[i] - a[i];
            }
            s / n as f64
        } else {
            let ma = (0..a.len()).map(|_| a[rng.below(a.len())]).sum::<f64>() / a.len() as f64;
            let mb = (0..b.len()).map(|_| b[rng.below(b.len())]).sum::<f64>() / b.len() as f64;
            mb - ma
        };
        diffs.push(d);
    }
    diffs.sort_by(|x, y| x.total_cmp(y));
    let lo = diffs[(RESAMPLES as f64 * 0.025) as usize];
    let hi = diffs[(RESAMPLES as f64 * 0.975) as usize - 1];
    Some((diff, lo, hi))
}

/// The first whole number from `lo` to `hi` in `text` (a score a model was asked for).
pub fn first_score(text: &str, lo: u32, hi: u32) -> Option<u32> {
    let mut digits = String::new();
    for ch in text.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_digit() {
            digits.push(ch);
        } else if !digits.is_empty() {
            if let Ok(n) = digits.parse::<u32>() {
                if (lo..=hi).contains(&n) {
                    return Some(n);
                }
            }
            digits.clear();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn distinct_and_repeats() {
        let varied = s(&["the cat sat", "a dog ran far"]);
        assert_eq!(distinct(&varied, 1), 1.0);
        let same = s(&["the cat sat", "the cat sat"]);
        assert_eq!(distinct(&same, 1), 0.5);
        assert_eq!(distinct(&same, 2), 0.5);
        assert_eq!(longest_repeat(&same), 3);
        assert_eq!(longest_repeat(&varied), 0);
        assert_eq!(
            longest_repeat(&s(&["oh well the sea is calm", "yes the sea is wide"])),
            3
        );
    }

    #[test]
    fn loops_are_found_inside_and_across_replies() {
        assert!(loops("I see. I see. I see. I see. I see. I see.", &[]));
        assert!(loops(
            "the night is long my friend and the tea is warm",
            &s(&["well the night is long my friend and the tea is warm tonight"])
        ));
        assert!(!loops(
            "Chess on Sunday, then the market.",
            &s(&["The night is long."])
        ));
    }

    #[test]
    fn rouge_l_matches_the_definition() {
        assert_eq!(rouge_l("a b c", "a b c"), 1.0);
        assert_eq!(rouge_l("x y", "a b"), 0.0);
        // LCS "a c" = 2; P = 2/3, R = 2/4.
        let f = rouge_l("a x c", "a b c d");
        assert!((f - 2.0 * (2.0 / 3.0) * 0.5 / (2.0 / 3.0 + 0.5)).abs() < 1e-9);
    }

    #[test]
    fn mentions_whole_words_and_phrases() {
        assert!(mentions("Pepper chewed it", &s(&["pepper"])));
        assert!(!mentions("peppermint tea", &s(&["pepper"])));
        assert!(mentions("she lives in New York now", &s(&["new york"])));
    }

    #[test]
    fn bootstrap_is_deterministic_and_covers_the_difference() {
        let a = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let b = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0];
        let (d, lo, hi) = bootstrap_difference(&a, &b, 7).unwrap();
        assert_eq!(d, 0.625);
        assert!(lo <= d && d <= hi && lo > 0.0, "{lo} {hi}");
        assert_eq!(
            bootstrap_difference(&a, &b, 7),
            bootstrap_difference(&a, &b, 7)
        );
        let same = bootstrap_difference(&a, &a, 7).unwrap();
        assert_eq!(same, (0.0, 0.0, 0.0));
        assert!(bootstrap_difference(&[], &b, 7).is_none());
    }

    #[test]
    fn scores_are_read_from_chatty_answers() {
        assert_eq!(first_score("Score: 4/5 because", 1, 5), Some(4));
        assert_eq!(first_score("I'd say 12, no, 3", 1, 5), Some(3));
        assert_eq!(first_score("excellent!", 1, 5), None);
    }
}
