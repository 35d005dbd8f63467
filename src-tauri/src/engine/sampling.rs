//! How the next token is chosen: the user's `Sampling` settings, named presets, and the
//! seeded sampler the local engine uses.
//!
//! mistral.rs samples with one random generator per engine, seeded once, so a reply cannot be
//! reproduced from a seed, and its request defaults are greedy whatever the temperature. Troupe
//! therefore samples itself: `penalize` applies the repetition penalty to the last
//! `repetition_window` tokens, `dry::penalize` holds back phrases copied from earlier in the
//! chat, then `SeededSampler` picks a token with temperature, top-k, top-p
//! and min-p from its own generator (seeded per reply), and hands back logits where only that
//! token is possible, which mistral.rs's greedy step then takes. Same seed, same prompt, same
//! settings: same reply.
//!
//! Why our own penalty: mistral.rs always penalises every token of the whole context, the
//! system prompt included; Troupe's can look at only the last `repetition_window` tokens, as
//! llama.cpp's `repeat_last_n` does. The default stays the whole context (0): measured with
//! `troupe eval` on Qwen2.5-0.5B, a 64-token window doubled the replies that loop and a
//! 512-token one cost the Character its own name late in a long chat (docs/EVALUATION.md).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Sampling settings for a reply. Stored as JSON (settings, a Character's default, a
/// Session's override); `stop` is decided per reply and never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Sampling {
    /// 0 means greedy: always the likeliest token.
    pub temperature: f64,
    /// Nucleus: keep the likeliest tokens whose probabilities sum to this (1 = off).
    pub top_p: f64,
    /// Keep only this many likeliest tokens (0 = off).
    pub top_k: usize,
    /// Drop tokens less likely than this fraction of the likeliest (0 = off).
    pub min_p: f64,
    /// Above 1 makes tokens already in the chat less likely (1 = off).
    pub repetition_penalty: f64,
    /// How many of the latest tokens the repetition penalty looks at (0 = the whole context,
    /// profile included).
    pub repetition_window: usize,
    /// DRY: how strongly a token that would copy an earlier phrase again is held back
    /// (0 = off; `dry.rs`).
    pub dry_multiplier: f64,
    /// The most tokens a reply may have.
    pub max_tokens: usize,
    /// Fixes the random choices, so a reply can be reproduced; none means a new one each time.
    pub seed: Option<u64>,
    /// Generation stops when the text contains one of these.
    #[serde(skip)]
    pub stop: Vec<String>,
    /// Names DRY never holds back (their tokens break its runs): the speakers of a group,
    /// whose names come up in every line, so the model may write them again in full.
    #[serde(skip)]
    pub dry_names: Vec<String>,
}

impl Default for Sampling {
    fn default() -> Self {
        PRESETS[0].1.clone()
    }
}

/// Named starting points, shown in the UI. The first is the default.
pub static PRESETS: std::sync::LazyLock<Vec<(&'static str, Sampling)>> =
    std::sync::LazyLock::new(|| {
        let base = Sampling {
            temperature: 0.8,
            top_p: 0.95,
            top_k: 0,
            min_p: 0.05,
            repetition_penalty: 1.1,
            repetition_window: DEFAULT_WINDOW,
            dry_multiplier: DEFAULT_DRY,
            max_tokens: 200,
            seed: None,
            stop: vec![],
            dry_names: vec![],
        };
        vec![
            ("balanced", base.clone()),
            (
                "precise",
                Sampling {
                    temperature: 0.3,
                    top_p: 0.9,
                    top_k: 40,
                    min_p: 0.1,
                    ..base.clone()
                },
            ),
            (
                "creative",
                Sampling {
                    temperature: 1.1,
                    top_p: 1.0,
                    min_p: 0.08,
                    repetition_penalty: 1.15,
                    ..base.clone()
                },
            ),
            (
                "deterministic",
                Sampling {
                    temperature: 0.0,
                    top_p: 1.0,
                    min_p: 0.0,
                    seed: Some(0),
                    ..base
                },
            ),
        ]
    });

/// A preset by name.
pub fn preset(name: &str) -> Option<Sampling> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s.clone())
}

impl Sampling {
    /// Greedy, `max_tokens` long, no stop strings: for tests and benchmarks, where every run
    /// must do the same work.
    pub fn greedy(max_tokens: usize) -> Sampling {
        Sampling {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            repetition_window: DEFAULT_WINDOW,
            dry_multiplier: 0.0,
            max_tokens,
            seed: None,
            stop: vec![],
            dry_names: vec![],
        }
    }

    /// The first field that is out of range, and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let check = |ok: bool, field: &'static str, why: &str| {
            if ok {
                Ok(())
            } else {
                Err((field, why.to_string()))
            }
        };
        check(
            (0.0..=2.0).contains(&self.temperature),
            "temperature",
            "must be between 0 and 2",
        )?;
        check(
            self.top_p > 0.0 && self.top_p <= 1.0,
            "topP",
            "must be above 0 and at most 1",
        )?;
        check(self.top_k <= 1000, "topK", "must be at most 1000 (0 = off)")?;
        check(
            (0.0..1.0).contains(&self.min_p),
            "minP",
            "must be at least 0 and below 1",
        )?;
        check(
            (1.0..=2.0).contains(&self.repetition_penalty),
            "repetitionPenalty",
            "must be between 1 and 2",
        )?;
        check(
            self.repetition_window <= 32_768,
            "repetitionWindow",
            "must be at most 32768 tokens (0 = the whole context)",
        )?;
        check(
            (0.0..=5.0).contains(&self.dry_multiplier),
            "dryMultiplier",
            "must be between 0 and 5 (0 = off)",
        )?;
        check(
            (1..=4096).contains(&self.max_tokens),
            "maxTokens",
            "must be between 1 and 4096",
        )
    }

    /// This Sampling with `FIELD=VALUE` changes (the JSON names: `temperature`, `topP`, `topK`,
    /// `minP`, `repetitionPenalty`, `repetitionWindow`, `dryMultiplier`, `maxTokens`, `seed`;
    /// `seed=none`).
    pub fn with_changes(&self, changes: &[String]) -> Result<Sampling, String> {
        let mut value = serde_json::to_value(self).expect("Sampling serialises");
        for kv in changes {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("'{kv}': write FIELD=VALUE"))?;
            if value.get(k).is_none() {
                return Err(format!(
                    "'{kv}': no field '{k}' (temperature, topP, topK, minP, repetitionPenalty, \
                     repetitionWindow, dryMultiplier, maxTokens, seed)"
                ));
            }
            value[k] = if v == "none" {
                serde_json::Value::Null
            } else {
                serde_json::from_str(v).map_err(|_| format!("'{kv}': '{v}' is not a number"))?
            };
        }
        let changed: Sampling =
            serde_json::from_value(value.clone()).map_err(|e| format!("{value}: {e}"))?;
        Ok(Sampling {
            stop: self.stop.clone(),
            ..changed
        })
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || self.top_k == 1
    }
}

/// The repetition penalty's window when settings do not say (see docs/EVALUATION.md).
pub const DEFAULT_WINDOW: usize = 0;
/// DRY's strength when settings do not say (see docs/EVALUATION.md).
pub const DEFAULT_DRY: f64 = 0.8;

/// Makes the tokens among the last `window` of `context` (all of it when 0) less likely, as
/// llama.cpp and mistral.rs do: a positive logit is divided by `penalty`, a negative one
/// multiplied, once per distinct token however often it occurs.
pub fn penalize(logits: &mut [f32], context: &[u32], penalty: f32, window: usize) {
    if penalty == 1.0 {
        return;
    }
    let recent = match window {
        0 => context,
        n => &context[context.len().saturating_sub(n)..],
    };
    let mut seen = vec![false; logits.len()];
    for &t in recent {
        let Some(slot) = seen.get_mut(t as usize) else {
            continue;
        };
        if std::mem::replace(slot, true) {
            continue;
        }
        let l = &mut logits[t as usize];
        *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
    }
}

/// Picks tokens from logits: temperature, then top-k, min-p and top-p, then a draw from its own
/// generator. One per reply.
pub struct SeededSampler {
    temperature: f32,
    top_k: usize,
    top_p: f32,
    min_p: f32,
    rng: Mutex<Rng>,
}

impl SeededSampler {
    pub fn new(s: &Sampling) -> SeededSampler {
        let seed = s.seed.unwrap_or_else(fresh_seed);
        SeededSampler {
            temperature: s.temperature.max(1e-4) as f32,
            top_k: s.top_k,
            top_p: s.top_p as f32,
            min_p: s.min_p as f32,
            rng: Mutex::new(Rng::new(seed)),
        }
    }

    /// The index of the chosen token.
    pub fn choose(&self, logits: &[f32]) -> usize {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            return argmax(logits);
        }
        // Only tokens within e^-20 of the likeliest can matter; this keeps the sort short
        // (tens to hundreds of candidates instead of a 50,000-150,000-token vocabulary).
        let floor = max - 20.0 * self.temperature;
        let mut cands: Vec<(usize, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, &l)| l >= floor)
            .map(|(i, &l)| (i, ((l - max) / self.temperature).exp()))
            .collect();
        cands.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.top_k > 0 {
            cands.truncate(self.top_k);
        }
        if self.min_p > 0.0 {
            // The likeliest candidate has weight exp(0) = 1.
            cands.retain(|&(_, w)| w >= self.min_p);
        }
        let total: f32 = cands.iter().map(|c| c.1).sum();
        if self.top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = cands.len();
            for (n, c) in cands.iter().enumerate() {
                acc += c.1 / total;
                if acc >= self.top_p {
                    keep = n + 1;
                    break;
                }
            }
            cands.truncate(keep.max(1));
        }
        let total: f32 = cands.iter().map(|c| c.1).sum();
        let mut u = self
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_f32()
            * total;
        for &(i, w) in &cands {
            if u < w {
                return i;
            }
            u -= w;
        }
        cands.last().map(|c| c.0).unwrap_or_else(|| argmax(logits))
    }
}

fn argmax(xs: &[f32]) -> usize {
    xs.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0
}

fn fresh_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ COUNTER.fetch_add(0x9e3779b97f4a7c15, Ordering::Relaxed)
}

/// xoshiro256** seeded through splitmix64: small, fast and the same on every platform.
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e3779b97f4a7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
            x ^ (x >> 31)
        };
        Rng([next(), next(), next(), next()])
    }
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_penalty_looks_only_at_its_window() {
        // Token 0 was in the profile long ago; token 1 and 2 are recent (2 twice).
        let context = [0, 5, 5, 5, 1, 2, 2];
        let mut whole = vec![2.0, 2.0, -2.0, 2.0];
        penalize(&mut whole, &context, 2.0, 0);
        assert_eq!(whole, vec![1.0, 1.0, -4.0, 2.0]);
        let mut recent = vec![2.0, 2.0, -2.0, 2.0];
        penalize(&mut recent, &context, 2.0, 3);
        assert_eq!(
            recent,
            vec![2.0, 1.0, -4.0, 2.0],
            "token 0 is outside the window"
        );
        let mut off = vec![2.0, 2.0];
        penalize(&mut off, &[0, 1, 7], 1.0, 0);
        assert_eq!(off, vec![2.0, 2.0]);
        // A token id past the vocabulary (as some models' special tokens are) is skipped.
        let mut small = vec![2.0];
        penalize(&mut small, &[9], 2.0, 0);
        assert_eq!(small, vec![2.0]);
    }

    fn sampler(temperature: f64, top_k: usize, top_p: f64, min_p: f64, seed: u64) -> SeededSampler {
        SeededSampler::new(&Sampling {
            temperature,
            top_k,
            top_p,
            min_p,
            seed: Some(seed),
            ..Sampling::greedy(1)
        })
    }

    const LOGITS: [f32; 5] = [2.0, 1.0, 0.5, 0.0, -30.0];

    #[test]
    fn same_seed_same_choices_other_seed_other_choices() {
        let draw = |seed| {
            let s = sampler(1.0, 0, 1.0, 0.0, seed);
            (0..64).map(|_| s.choose(&LOGITS)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn follows_the_softmax() {
        let s = sampler(1.0, 0, 1.0, 0.0, 1);
        let mut counts = [0usize; 5];
        let n = 20_000;
        for _ in 0..n {
            counts[s.choose(&LOGITS)] += 1;
        }
        let z: f32 = LOGITS.iter().map(|l| l.exp()).sum();
        for (i, c) in counts.iter().enumerate() {
            let want = LOGITS[i].exp() / z;
            let got = *c as f32 / n as f32;
            assert!((got - want).abs() < 0.02, "token {i}: {got} vs {want}");
        }
        assert_eq!(counts[4], 0, "e^-32 is never drawn");
    }

    #[test]
    fn filters_cut_the_tail() {
        // top-k 2: only the two likeliest.
        let s = sampler(1.0, 2, 1.0, 0.0, 3);
        assert!((0..500).all(|_| s.choose(&LOGITS) < 2));
        // min-p 0.5: tokens under half the likeliest's probability go (e^-1 = 0.37 < 0.5).
        let s = sampler(1.0, 0, 1.0, 0.5, 3);
        assert!((0..500).all(|_| s.choose(&LOGITS) == 0));
        // top-p 0.5: the likeliest alone holds 0.55 of the mass.
        let s = sampler(1.0, 0, 0.5, 0.0, 3);
        assert!((0..500).all(|_| s.choose(&LOGITS) == 0));
        // A very low temperature is greedy.
        let s = sampler(0.01, 0, 1.0, 0.0, 3);
        assert!((0..500).all(|_| s.choose(&LOGITS) == 0));
    }

    #[test]
    fn presets_are_valid_and_the_default_is_the_first() {
        for (name, p) in PRESETS.iter() {
            assert_eq!(p.validate(), Ok(()), "{name}");
        }
        assert_eq!(Sampling::default(), preset("balanced").unwrap());
        let bad = Sampling {
            top_p: 0.0,
            ..Sampling::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "topP");
    }

    #[test]
    fn stored_json_tolerates_missing_fields_and_never_stores_stop() {
        let s: Sampling = serde_json::from_str(r#"{"temperature":0.5}"#).unwrap();
        assert_eq!(s.temperature, 0.5);
        assert_eq!(s.top_p, Sampling::default().top_p);
        let json = serde_json::to_string(&Sampling {
            stop: vec!["\nUser:".into()],
            ..Sampling::default()
        })
        .unwrap();
        assert!(!json.contains("stop"), "{json}");
    }
}
