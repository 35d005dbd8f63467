//! DRY ("don't repeat yourself"), the loop breaker SillyTavern, KoboldCpp and llama.cpp users
//! know: a token that would extend a run of tokens already seen earlier in the chat is made
//! less likely, the more the longer the run (`multiplier × base^(run − allowed)`).
//!
//! Why DRY and not a stronger repetition penalty: the penalty punishes every token seen before,
//! so raising it to end loops also punishes the Character's own name and the profile's facts
//! (measured on Qwen2.5-0.5B: penalty 1.2 ended the loops and cost the name late in a long
//! chat; docs/EVALUATION.md). DRY leaves single tokens alone and only stops a phrase from being
//! copied again, which is what a loop is.
//!
//! Runs stop at sequence breakers (newlines, `:`, `"`, `*` and the chat template's control
//! tokens), as in SillyTavern's defaults, so that "Name:" lines and the template that starts
//! every turn do not count as repetition. The breakers come from the model's vocabulary.

use super::gguf::Vocabulary;

/// Growth per extra repeated token, and the run a repeat may have before DRY acts: the values
/// SillyTavern and KoboldCpp ship and their users tune the multiplier against.
pub const BASE: f32 = 1.75;
pub const ALLOWED_LENGTH: usize = 2;
/// Runs longer than this count as this long: the penalty is already decisive, and the search
/// stays bounded on a long repeat.
const MAX_RUN: usize = 50;

/// Which tokens break a run, indexed by token id.
#[derive(Debug, Clone, Default)]
pub struct Breakers(Vec<bool>);

impl Breakers {
    /// The breakers of a model's vocabulary: control tokens, and tokens whose text holds a
    /// newline (`Ċ` in byte-level BPE, `<0x0A>` in SentencePiece), `:`, `"` or `*`.
    pub fn from_vocabulary(vocab: &Vocabulary) -> Breakers {
        let breaks = |(i, text): (usize, &String)| {
            vocab.types.get(i) == Some(&3)
                || text == "<0x0A>"
                || text.contains(['\n', 'Ċ', ':', '"', '*'])
        };
        Breakers(vocab.tokens.iter().enumerate().map(breaks).collect())
    }

    /// These breakers and `tokens` too.
    pub fn with(&self, tokens: &[u32]) -> Breakers {
        let mut b = self.0.clone();
        for &t in tokens {
            if let Some(x) = b.get_mut(t as usize) {
                *x = true;
            }
        }
        Breakers(b)
    }

    fn breaks(&self, token: u32) -> bool {
        self.0.get(token as usize).copied().unwrap_or(false)
    }
}

/// Lowers the logit of each token that would extend a repeat of at least `ALLOWED_LENGTH`
/// tokens of `context` by `multiplier × BASE^(run − ALLOWED_LENGTH)`. `multiplier` 0 is off.
pub fn penalize(logits: &mut [f32], context: &[u32], multiplier: f32, breakers: &Breakers) {
    let Some(&last) = context.last() else {
        return;
    };
    if multiplier <= 0.0 || breakers.breaks(last) {
        return;
    }
    let n = context.len();
    // The longest run ending at an earlier copy of `last`, for each token that followed it.
    let mut runs: Vec<(u32, usize)> = Vec::new();
    for i in (0..n - 1).filter(|&i| context[i] == last) {
        let next = context[i + 1];
        if breakers.breaks(next) {
            continue;
        }
        let mut run = 1;
        while run < MAX_RUN && run <= i {
            let earlier = context[i - run];
            if earlier != context[n - 1 - run] || breakers.breaks(earlier) {
                break;
            }
            run += 1;
        }
        match runs.iter_mut().find(|(t, _)| *t == next) {
            Some((_, longest)) => *longest = (*longest).max(run),
            None => runs.push((next, run)),
        }
    }
    for (token, run) in runs {
        if run < ALLOWED_LENGTH {
            continue;
        }
        if let Some(l) = logits.get_mut(token as usize) {
            *l -= multiplier * BASE.powi((run - ALLOWED_LENGTH) as i32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_breakers() -> Breakers {
        Breakers::default()
    }

    #[test]
    fn a_token_that_would_repeat_a_phrase_is_penalised_more_the_longer_the_phrase() {
        // "1 2 3 4 ... 1 2 3": 4 would repeat a run of three tokens.
        let context = [1, 2, 3, 4, 9, 1, 2, 3];
        let mut logits = vec![0.0f32; 10];
        penalize(&mut logits, &context, 1.0, &no_breakers());
        assert_eq!(logits[4], -BASE, "run 3 → 1 × 1.75^(3 − 2)");
        assert!(logits.iter().enumerate().all(|(t, &l)| t == 4 || l == 0.0));

        let mut short = vec![0.0f32; 10];
        penalize(&mut short, &[1, 2, 4, 9, 1, 2], 1.0, &no_breakers());
        assert_eq!(short[4], -1.0, "run 2 → 1 × 1.75^0");
    }

    #[test]
    fn single_repeated_tokens_and_off_are_left_alone() {
        // A name seen before (token 5) after a different token is a run of one: not touched.
        let mut logits = vec![0.0f32; 10];
        penalize(&mut logits, &[7, 5, 2, 8, 7], 1.0, &no_breakers());
        assert_eq!(logits[5], 0.0);
        let mut off = vec![0.0f32; 10];
        penalize(&mut off, &[1, 2, 3, 4, 1, 2, 3], 0.0, &no_breakers());
        assert!(off.iter().all(|&l| l == 0.0));
        penalize(&mut off, &[], 1.0, &no_breakers());
    }

    #[test]
    fn breakers_end_a_run() {
        let vocab = Vocabulary {
            tokens: ["a", "b", "Ċ", "<|im_start|>", "c", ":"]
                .map(String::from)
                .to_vec(),
            types: vec![1, 1, 1, 3, 1, 1],
        };
        let breakers = Breakers::from_vocabulary(&vocab);
        assert_eq!(
            (0..6).map(|t| breakers.breaks(t)).collect::<Vec<_>>(),
            [false, false, true, true, false, true]
        );
        // "<|im_start|> a b c ... <|im_start|> a b": the run is a b (the control token breaks
        // it), so c gets the run-2 penalty, not the run-3 one.
        let mut logits = vec![0.0f32; 6];
        penalize(&mut logits, &[3, 0, 1, 4, 2, 3, 0, 1], 1.0, &breakers);
        assert_eq!(logits[4], -1.0);
        // A run is never extended into a breaker, and nothing follows a breaker.
        let mut after = vec![0.0f32; 6];
        penalize(&mut after, &[0, 1, 2, 9, 0, 1], 1.0, &breakers);
        assert_eq!(after[2], 0.0);
        penalize(&mut after, &[0, 2, 4, 0, 2], 1.0, &breakers);
        assert!(after.iter().all(|&l| l == 0.0));
    }

    #[test]
    fn a_long_loop_is_bounded_and_finite() {
        let context: Vec<u32> = (0..4000).map(|i| i % 7).collect();
        let mut logits = vec![0.0f32; 8];
        penalize(&mut logits, &context, 0.8, &no_breakers());
        let next = (4000 % 7) as usize;
        assert!(logits[next].is_finite() && logits[next] < -1e6);
    }
}
