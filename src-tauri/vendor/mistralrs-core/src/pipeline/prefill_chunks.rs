//! Troupe patch: a long prompt runs through a GGUF model on the CPU in chunks of a few hundred
//! tokens, as llama.cpp runs one in micro-batches, so the activations a forward pass holds are
//! sized to the chunk rather than to the prompt. The MLP's rows dominate them (tokens ×
//! intermediate size × 4 bytes, twice over for gate and up): 24 MB for Qwen2.5-0.5B at 621
//! tokens, over 200 MB for an 8 B model at 2,000. Each chunk appends its keys and values to the
//! sequence's cache and the next attends to them, as a prompt's new tokens after a prefix-cache
//! hit do; only the last chunk's logits are kept. The keys and values are the ones a whole
//! prompt would write (the attention reads them back from the cache either way).
//!
//! Off (0) until the embedding app sets a chunk length; read at every forward pass.

use std::sync::atomic::{AtomicUsize, Ordering};

static PREFILL_CHUNK: AtomicUsize = AtomicUsize::new(0);

/// Troupe patch: the most tokens of a prompt one forward pass runs on the CPU (0: the whole
/// prompt at once, as upstream). See the module's comment.
pub fn set_prefill_chunk(tokens: usize) {
    PREFILL_CHUNK.store(tokens, Ordering::Relaxed);
}

/// One forward pass of a chunked prompt: its first token, its length in tokens, and the logits
/// it returns (their first position within the piece, and how many).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub from: usize,
    pub len: usize,
    pub logits: (usize, usize),
}

/// The pieces a prompt of `len` tokens runs in, wanting `logits` (first position, count), or
/// `None` to run it whole: chunking off, a prompt no longer than a chunk, or logits wanted from
/// before the last chunk (raw logits over the whole prompt, as perplexity asks).
pub(crate) fn pieces(len: usize, logits: (usize, usize)) -> Option<Vec<Piece>> {
    pieces_of(len, logits, PREFILL_CHUNK.load(Ordering::Relaxed))
}

fn pieces_of(len: usize, (start, count): (usize, usize), chunk: usize) -> Option<Vec<Piece>> {
    if chunk == 0 || len <= chunk {
        return None;
    }
    let last = (len - 1) / chunk * chunk;
    if start < last || start + count > len {
        return None;
    }
    let piece = |from: usize| {
        let len = chunk.min(len - from);
        // An earlier piece's logits are thrown away: ask for one row, the cheapest.
        let logits = if from == last {
            (start - from, count)
        } else {
            (len - 1, 1)
        };
        Piece { from, len, logits }
    };
    Some((0..len).step_by(chunk).map(piece).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(from: usize, len: usize, logits: (usize, usize)) -> Piece {
        Piece { from, len, logits }
    }

    #[test]
    fn a_prompt_runs_in_chunks_and_only_the_last_gives_its_logits() {
        assert_eq!(
            pieces_of(621, (620, 1), 256),
            Some(vec![
                p(0, 256, (255, 1)),
                p(256, 256, (255, 1)),
                p(512, 109, (108, 1)),
            ])
        );
        // One token past a chunk: the last piece is that token alone.
        assert_eq!(
            pieces_of(257, (256, 1), 256),
            Some(vec![p(0, 256, (255, 1)), p(256, 1, (0, 1))])
        );
        // The last few positions' logits, all within the last piece.
        assert_eq!(
            pieces_of(600, (590, 10), 256),
            Some(vec![
                p(0, 256, (255, 1)),
                p(256, 256, (255, 1)),
                p(512, 88, (78, 10)),
            ])
        );
    }

    #[test]
    fn a_prompt_runs_whole_when_chunks_cannot_serve_it() {
        assert_eq!(pieces_of(621, (620, 1), 0), None, "chunking off");
        assert_eq!(pieces_of(256, (255, 1), 256), None, "one chunk long");
        assert_eq!(
            pieces_of(621, (0, 621), 256),
            None,
            "logits for every position"
        );
        assert_eq!(
            pieces_of(621, (500, 121), 256),
            None,
            "logits from before the last chunk"
        );
        assert_eq!(
            pieces_of(621, (620, 2), 256),
            None,
            "logits past the prompt"
        );
    }
}
