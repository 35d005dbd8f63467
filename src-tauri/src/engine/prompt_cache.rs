//! The local engine's prompt cache: the KV caches of completed requests that mistral.rs keeps
//! (its prefix cache, patched in our vendored copy), so that a chat's next turn, a regenerated
//! reply or a warmed prompt runs only its new tokens. How many it keeps, how many bytes they may
//! hold (the *Prompt cache (MB)* setting), and where those no request continues wait: in
//! unnamed files, out of the process's memory.

use std::path::Path;
use std::sync::Arc;

/// Completed sequences the prefix cache keeps, so the next turn of a chat (or a regenerated
/// reply) prefills only its new tokens. Each holds a whole KV cache (kept in F16 and only as
/// long as its tokens: 17 MB for SmolLM2-135M and 9 MB for the default Qwen2.5-0.5B at 750
/// tokens, ~256 MB for an 8 B model at 2,000), and the app needs few: the open chat's last
/// turn and a warmed prompt or two. Bounded on CPU, and in bytes by `set_budget`, thanks to
/// our vendored mistralrs-core patches (upstream never evicts there; docs/PERFORMANCE.md).
const ENTRIES: usize = 4;

/// The bytes the prefix cache may hold (the `prompt_cache_mb` setting); applies from the next
/// reply on, to the engine loaded now and later ones, without a reload.
pub fn set_budget(bytes: usize) {
    mistralrs_core::set_prefix_cache_budget(bytes);
}

/// Where prompt-cache entries go while no request continues them: unnamed files in `cache_dir`
/// (the OS page cache holds them while memory is free and writes them out when it is short,
/// instead of the process holding them; docs/PERFORMANCE.md). The open chat's entry is taken by
/// its next turn and never written; another chat's is written once when the user switches, and
/// read back in a few milliseconds when they return. Without a cache folder, or with
/// `TROUPE_PROMPT_SPILL=0` (for comparisons), every entry stays in memory.
pub(super) fn spill_files(cache_dir: Option<&Path>) -> Option<mistralrs_core::SpillFile> {
    if !in_files() {
        return None;
    }
    let dir = cache_dir?.to_path_buf();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!(
            "prompt cache: kept in memory, {} cannot be made: {e}",
            dir.display()
        );
        return None;
    }
    Some(Arc::new(move || tempfile::tempfile_in(&dir)))
}

/// Whether an engine loaded with a cache folder keeps prompt-cache entries no request
/// continues in files (`spill_files`): unless `TROUPE_PROMPT_SPILL=0`.
pub fn in_files() -> bool {
    std::env::var_os("TROUPE_PROMPT_SPILL").is_none_or(|v| v != "0")
}

/// The completed sequences the prefix cache keeps: `ENTRIES`, or TROUPE_PREFIX_CACHE_N for
/// measurements (0 turns it off).
pub fn entries() -> usize {
    std::env::var("TROUPE_PREFIX_CACHE_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ENTRIES)
}
