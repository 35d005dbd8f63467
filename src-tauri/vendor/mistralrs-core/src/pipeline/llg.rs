use std::sync::{Arc, OnceLock};

use anyhow::Result;
use llguidance::{api::TopLevelGrammar, ParserFactory};
use tokenizers::Tokenizer;
use toktrie::{TokTrie, TokenId, TokenizerEnv};
use toktrie_hf_tokenizers::ByteTokenizer;

use crate::Constraint;

pub fn build_llg_factory(tokenizer: impl Into<Arc<Tokenizer>>) -> Result<Arc<ParserFactory>> {
    let env = token_env(tokenizer.into())?;
    // Troupe patch: no precomputed token slices. `new_simple` sliced the vocabulary by
    // `general_slices()`'s regexes to speed up masks for JSON-like grammars: 39 MB resident for
    // Qwen2.5's 152k tokens (heaptrack, issue 24) in every process, which Troupe never uses
    // (it asks for no constraints). Constraints still work; their masks are computed unsliced.
    let factory = ParserFactory::new(&env, toktrie::InferenceCapabilities::default(), &[])?;
    Ok(Arc::new(factory))
}

/// Troupe patch: the token environment of `source` (its trie, and the tokenizer grammars use),
/// built as upstream built it but keeping `source` shared: see `LazyTokenizerEnv`.
fn token_env(source: Arc<Tokenizer>) -> Result<toktrie::TokEnv> {
    let tokenizer = (*source).clone();
    // Collect special token info before from_tokenizer() consumes the tokenizer.
    let added_special: Vec<(u32, String)> = tokenizer
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, at)| at.special)
        .map(|(id, at)| (id, at.content))
        .collect();

    let bt = toktrie_hf_tokenizers::ByteTokenizer::from_tokenizer(tokenizer)?;
    let info = bt.tokrx_info();
    let mut token_bytes = bt.token_bytes();

    // Fix up special tokens that from_tokenizer() may have missed.
    // Tekken tokenizers add special tokens to the BPE base vocab first, which can
    // prevent the toktrie builder from applying the SPECIAL_TOKEN_MARKER prefix.
    for (id, content) in &added_special {
        let idx = *id as usize;
        if idx < token_bytes.len()
            && (token_bytes[idx].is_empty()
                || token_bytes[idx][0] != toktrie::TokTrie::SPECIAL_TOKEN_MARKER)
        {
            let mut bytes = content.as_bytes().to_vec();
            bytes.insert(0, toktrie::TokTrie::SPECIAL_TOKEN_MARKER);
            token_bytes[idx] = bytes;
        }
    }

    let tok_trie = toktrie::TokTrie::from(&info, &token_bytes);
    drop((bt, token_bytes));
    Ok(Arc::new(LazyTokenizerEnv {
        source,
        byte_tokenizer: OnceLock::new(),
        tok_trie,
    }))
}

pub fn llg_grammar_from_constraint(constraint: &Constraint) -> Result<Option<TopLevelGrammar>> {
    let grm = match constraint {
        Constraint::Regex(regex) => TopLevelGrammar::from_regex(regex),
        Constraint::Lark(lark) => TopLevelGrammar::from_lark(lark.clone()),
        Constraint::JsonSchema(value) => TopLevelGrammar::from_json_schema(value.clone()),
        Constraint::Llguidance(value) => value.clone(),
        Constraint::None => return Ok(None),
    };
    Ok(Some(grm))
}

pub fn constraint_from_llg_grammar(
    factory: &ParserFactory,
    grm: TopLevelGrammar,
) -> Result<llguidance::Matcher> {
    let parser = factory.create_parser(grm)?;
    Ok(llguidance::Matcher::new(Ok(parser)))
}

/// Troupe patch: upstream's `ByteTokenizerEnv`, but holding the pipeline's tokenizer (shared)
/// and making its `ByteTokenizer` (a modified copy of it) only when a grammar first tokenizes
/// text. Every token the engine decodes goes through the trie; the copy and its per-token
/// byte strings (~10 MB of hash tables for Qwen2.5's 152k tokens, issue 24) served only
/// constraints, which Troupe never asks for. A grammar's text tokenizes exactly as before.
struct LazyTokenizerEnv {
    source: Arc<Tokenizer>,
    byte_tokenizer: OnceLock<ByteTokenizer>,
    tok_trie: TokTrie,
}

impl LazyTokenizerEnv {
    fn encode(&self, s: &str) -> Vec<TokenId> {
        let bt = self.byte_tokenizer.get_or_init(|| {
            ByteTokenizer::from_tokenizer((*self.source).clone())
                .expect("the same tokenizer was converted when the model loaded")
        });
        bt.hf_tokenizer
            .encode(s, false)
            .expect("tokenizer error")
            .get_ids()
            .to_vec()
    }
}

impl TokenizerEnv for LazyTokenizerEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.tok_trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.tok_trie
            .tokenize_with_greedy_fallback(s, |s| self.encode(s))
    }

    fn tokenize_bytes_special(&self, s: &[u8]) -> Vec<TokenId> {
        self.tok_trie.tokenize_with_greedy_fallback(s, |s| {
            self.tok_trie.tokenize_with_special(s, |s| self.encode(s))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Troupe patch: a byte-level BPE of five tokens and one special token.
    fn tokenizer() -> Tokenizer {
        let json = r#"{
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [{"id": 5, "content": "<|im_end|>", "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false,
                "trim_offsets": true, "use_regex": true},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                "continuing_subword_prefix": null, "end_of_word_suffix": null,
                "fuse_unk": false, "byte_fallback": false,
                "vocab": {"h": 0, "i": 1, "hi": 2, "\u0120": 3, "\u0120hi": 4, "<|im_end|>": 5},
                "merges": ["h i", "\u0120 hi"]}
        }"#;
        json.parse().unwrap()
    }

    /// Troupe patch: the shared environment decodes and tokenizes as upstream's, and makes its
    /// tokenizer copy only when text is first tokenized.
    #[test]
    fn the_shared_token_env_tokenizes_as_upstreams() {
        let source = Arc::new(tokenizer());
        let ours = LazyTokenizerEnv {
            source: source.clone(),
            byte_tokenizer: OnceLock::new(),
            tok_trie: token_env(source.clone()).unwrap().tok_trie().clone(),
        };
        let bt = ByteTokenizer::from_tokenizer((*source).clone()).unwrap();
        let trie = TokTrie::from(&bt.tokrx_info(), &bt.token_bytes());
        let upstream = toktrie_hf_tokenizers::ByteTokenizerEnv {
            tokenizer: bt,
            tok_trie: trie,
        };
        assert_eq!(ours.tok_trie().decode(&[2, 4]), b"hi hi");
        assert_eq!(
            ours.tok_trie().decode(&[2, 4]),
            upstream.tok_trie().decode(&[2, 4])
        );
        assert!(
            ours.byte_tokenizer.get().is_none(),
            "no copy before a grammar needs one"
        );
        for text in [&b"hi hi"[..], b"hihi", b"hi<|im_end|>", b"h\xffi"] {
            assert_eq!(ours.tokenize_bytes(text), upstream.tokenize_bytes(text));
            assert_eq!(
                ours.tokenize_bytes_special(text),
                upstream.tokenize_bytes_special(text)
            );
        }
        assert_eq!(ours.tokenize_bytes(b"hi hi"), [2, 4]);
        assert!(ours.byte_tokenizer.get().is_some());
    }
}
