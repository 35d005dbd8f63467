//! `troupe bench`: time to first token, prefill and decode speed, memory; with
//! `--vs-llama-cpp`, llama-bench on the same file and the ratios.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;

use super::{llama, one_run, peak_rss_mb, rss_mb, stats};
use crate::app::Troupe;
use crate::characters::{Character, Scenario};
use crate::conversation::prompt;
use crate::engine::{ChatMessage, ChatRole, Engine, MistralEngine, Sampling};
use crate::settings::Paths;

/// The benchmark prompt: a built-in character's real system prompt, a few turns of history and
/// a question, about 500 tokens, like a chat a few turns in. `nonce` makes every run's prompt
/// distinct from its first token, so no run is helped by the prefix cache of another.
fn bench_messages(c: &Character, nonce: usize) -> Vec<ChatMessage> {
    let mut m = vec![ChatMessage::new(
        ChatRole::System,
        format!(
            "Conversation {nonce}.\n{}",
            prompt::system_prompt(c, Scenario::ChitChat)
        ),
    )];
    let turns = [
        (
            c.greetings.chit_chat.as_str(),
            "Good evening! I was hoping to find you in.",
        ),
        (
            "Then you are in luck. What is on your mind?",
            "I keep thinking about how people become who they are.",
        ),
        (
            "A large question for a small evening. Begin with yourself: what made you?",
            "Books, mostly, and one stubborn teacher.",
        ),
    ];
    for (character, user) in turns {
        m.push(ChatMessage::new(ChatRole::Assistant, character));
        m.push(ChatMessage::new(ChatRole::User, user));
    }
    m
}

/// What `troupe bench` measures and how it reports.
pub struct Options {
    pub runs: usize,
    pub max_tokens: usize,
    pub threads: Option<usize>,
    pub json: bool,
    /// Also run this llama-bench, of this build.
    pub llama_bench: Option<(PathBuf, llama::Build)>,
}

/// Loads the model, measures, compares with llama.cpp when asked, and prints the report.
pub async fn bench(troupe: &Troupe, model: Option<PathBuf>, opts: Options) -> anyhow::Result<()> {
    let settings = troupe.settings();
    let path = troupe.model_file(&settings, model.as_deref());
    // The prompt cache bounded as the app bounds it.
    troupe.use_memory_settings(&settings);
    if let Some((bin, build)) = &opts.llama_bench {
        if !bin.is_file() {
            let arg = if *build == llama::Build::Avx2 {
                " avx2"
            } else {
                ""
            };
            bail!(
                "llama-bench not found at {}; build it with `bash .ci/llama-cpp.sh{arg}` or pass its path",
                bin.display()
            );
        }
    }
    let rss_before = rss_mb();
    let t0 = Instant::now();
    let engine = MistralEngine::load(&path, Some(&Paths::model_cache())).await?;
    let load_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let rss_loaded = rss_mb();
    let character = bench_character(troupe)?;
    let budget = settings.prompt_cache_mb.bytes();
    let figures = measure(&engine, &character, opts.runs, opts.max_tokens, budget).await?;
    let threads = threads(opts.threads);
    let mut report = serde_json::json!({
        "model": engine.info().name,
        "quantization": engine.info().quantization,
        "device": engine.info().device,
        "threads": threads,
        "runs": opts.runs,
        "prompt_tokens": figures.prompt_tokens,
        "new_tokens": opts.max_tokens,
        "troupe": figures.json(load_ms, rss_before, rss_loaded),
    });
    report["memory"] = memory_breakdown(
        &path,
        figures.prompt_tokens + opts.max_tokens,
        budget,
        (rss_before, rss_loaded),
    );
    if let Some((bin, build)) = &opts.llama_bench {
        // Same file (the user's original, not Troupe's transcoded copy), threads, prompt length
        // and reply length.
        let l = llama::run(
            bin,
            &path,
            threads,
            figures.prompt_tokens,
            opts.max_tokens,
            opts.runs,
        )?;
        report["llama_cpp_build"] = serde_json::json!(build.describe());
        add_ratios(&mut report, l);
    }
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Sherlock Holmes, else the first Character there is.
fn bench_character(troupe: &Troupe) -> anyhow::Result<Character> {
    Ok(troupe.store.get_character("sherlock-holmes").or_else(|_| {
        let id = troupe
            .store
            .list_characters()?
            .first()
            .map(|c| c.id.clone())
            .unwrap_or_default();
        troupe.store.get_character(&id)
    })?)
}

/// The figures of every measured run.
#[derive(Default)]
struct Figures {
    prompt_tokens: usize,
    ttft: Vec<f64>,
    prefill: Vec<f64>,
    decode: Vec<f64>,
    /// The process's peak memory over llama-bench's workload (load, fresh chats, no prompt
    /// cache), before the chats that use the prompt cache.
    peak_uncached_mb: f64,
    /// The next turn's first token, its prefix cached.
    warm: Vec<f64>,
    /// A warmed chat's first reply's first token.
    opened: Vec<f64>,
}

/// Two parts, each a warm-up and `runs` measured runs. First llama-bench's workload: fresh
/// chats (a cold prompt, then the reply) with the prompt cache held empty, so the peak memory
/// so far compares like for like with llama-bench, which keeps none. Then, with the prompt
/// cache bounded by `budget` as the app bounds it, a chat and its next turn, and a chat warmed
/// the way the window warms one.
async fn measure(
    engine: &MistralEngine,
    character: &Character,
    runs: usize,
    max_tokens: usize,
    budget: usize,
) -> anyhow::Result<Figures> {
    // Greedy and without stop strings, so every run generates the same, full length.
    let sampling = Sampling::greedy(max_tokens);
    let one_token = Sampling {
        max_tokens: 1,
        ..sampling.clone()
    };
    let mut f = Figures::default();
    crate::engine::prompt_cache::set_budget(0);
    for i in 0..=runs {
        let (run, _) = one_run(engine, bench_messages(character, i), &sampling).await?;
        if i == 0 {
            continue; // warm-up
        }
        f.prompt_tokens = run.tokens;
        f.ttft.push(run.ttft_ms);
        f.prefill.push(run.prefill_tps);
        f.decode.push(run.decode_tps);
    }
    f.peak_uncached_mb = peak_rss_mb();
    crate::engine::prompt_cache::set_budget(budget);
    for i in 0..=runs {
        // Conversations numbered after the first part's, so none starts as one of those did.
        let messages = bench_messages(character, runs + 1 + 2 * i);
        let (_, reply) = one_run(engine, messages.clone(), &sampling).await?;
        // The next turn of the same chat: its prefix is cached, only the new tokens prefill.
        let mut next = messages;
        next.push(ChatMessage::new(ChatRole::Assistant, reply.trim()));
        next.push(ChatMessage::new(
            ChatRole::User,
            "And what would you tell your younger self?",
        ));
        let (follow, _) = one_run(engine, next, &one_token).await?;
        // A chat the app warmed when it opened (`conversation::warm`): everything but the
        // user's message was prefilled in the background; the first reply pays only the rest.
        let fresh = bench_messages(character, runs + 2 + 2 * i);
        let before_user = fresh[..fresh.len() - 1].to_vec();
        one_run(engine, before_user, &one_token).await?;
        let (first, _) = one_run(engine, fresh, &one_token).await?;
        if i == 0 {
            continue; // warm-up
        }
        f.opened.push(first.ttft_ms);
        f.warm.push(follow.ttft_ms);
    }
    Ok(f)
}

impl Figures {
    /// The report's `troupe` object: medians, then the spread of each.
    fn json(&self, load_ms: f64, rss_before: f64, rss_loaded: f64) -> serde_json::Value {
        serde_json::json!({
            "decode_tps": stats(&self.decode)["median"],
            "prefill_tps": stats(&self.prefill)["median"],
            "ttft_ms": stats(&self.ttft)["median"],
            "next_turn_ttft_ms": stats(&self.warm)["median"],
            "warmed_first_reply_ttft_ms": stats(&self.opened)["median"],
            "peak_rss_mb": (peak_rss_mb()).round(),
            "peak_rss_mb_no_prompt_cache": self.peak_uncached_mb.round(),
            "load_ms": load_ms.round(),
            "idle_rss_mb_before_load": rss_before.round(),
            "idle_rss_mb_loaded": rss_loaded.round(),
            "spread": {
                "decode_tps": stats(&self.decode),
                "prefill_tps": stats(&self.prefill),
                "ttft_ms": stats(&self.ttft),
                "next_turn_ttft_ms": stats(&self.warm),
                "warmed_first_reply_ttft_ms": stats(&self.opened),
            }
        })
    }
}

/// The threads the matmuls run on: as asked, else RAYON_NUM_THREADS, else every core.
fn threads(asked: Option<usize>) -> usize {
    asked
        .or_else(|| {
            std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|t| t.parse().ok())
        })
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// Tokens mistral.rs's KV cache grows by (`NormalCache::CACHE_GROW_SIZE`).
const KV_GROWS_BY: usize = 256;

/// Where the peak memory went, as far as the engine can account for it: the process before the
/// model (the binary's pages and the libraries it links, WebKitGTK's among them, the runtime,
/// the library database), what loading added (weights, tokenizer and the engine's
/// own buffers, measured), the KV cache of the sequence being written (computed from the
/// model's shape, in the dtype the engine keeps it, for `sequence_tokens` rounded up to the 256
/// tokens the cache grows by) and of the prefix cache's entries (F16, `sequence_tokens` each,
/// as many as the count and `budget` bytes allow; held in files rather than memory where the
/// engine keeps them there), and the rest (activations, allocator slack) as the difference.
fn memory_breakdown(
    model: &std::path::Path,
    sequence_tokens: usize,
    budget: usize,
    (rss_before, rss_loaded): (f64, f64),
) -> serde_json::Value {
    let peak = peak_rss_mb();
    let mb = |b: u64| b as f64 / 1_048_576.0;
    let per_token = crate::engine::gguf::read_header(model)
        .ok()
        .and_then(|h| h.kv_bytes_per_token())
        .unwrap_or(0);
    let capacity = sequence_tokens.div_ceil(KV_GROWS_BY) * KV_GROWS_BY;
    let kv = mb(per_token * capacity as u64);
    // Entries are kept in F16 whatever the live cache's dtype.
    let entry = per_token * 2 / crate::engine::kv_bytes_per_value() * sequence_tokens as u64;
    let entries = crate::engine::prompt_cache::entries()
        .min((budget as u64 / entry.max(1)).min(usize::MAX as u64) as usize);
    let prefix = mb(entry) * entries as f64;
    // Entries no request continues wait in files (`engine::prompt_cache::spill_files`); the
    // one a request reads back is its KV cache.
    let in_files = crate::engine::prompt_cache::in_files();
    let (held, filed) = if in_files {
        (0.0, prefix)
    } else {
        (prefix, 0.0)
    };
    let weights = (rss_loaded - rss_before).max(0.0);
    let rest = (peak - rss_before - weights - kv - held).max(0.0);
    let r = |x: f64| x.round();
    serde_json::json!({
        "before_load_mb": r(rss_before),
        "weights_and_engine_mb": r(weights),
        "kv_cache_mb": r(kv),
        "prefix_cache_mb": r(held),
        "prefix_cache_in_files_mb": r(filed),
        "prefix_cache_entries": entries,
        "prefix_cache_budget_mb": r(mb(budget as u64)),
        "prefix_cache_dtype": "F16",
        "activations_and_rest_mb": r(rest),
        "peak_mb": r(peak),
        "kv_dtype": if crate::engine::kv_cache_f16() { "F16" } else { "F32" },
        "kv_mb_per_1000_tokens": r(mb(per_token * 1000)),
        "kv_tokens_per_sequence": capacity,
    })
}

/// Adds llama.cpp's figures and Troupe's ratio to them.
fn add_ratios(report: &mut serde_json::Value, l: serde_json::Value) {
    let of = |a: f64, b: f64| {
        serde_json::json!(if b > 0.0 {
            (a / b * 100.0).round() / 100.0
        } else {
            0.0
        })
    };
    let ours = |k: &str| report["troupe"][k].as_f64().unwrap_or(0.0);
    let theirs = |k: &str| l[k].as_f64().unwrap_or(0.0);
    let ratio = serde_json::json!({
        "decode_tps": of(ours("decode_tps"), theirs("decode_tps")),
        "prefill_tps": of(ours("prefill_tps"), theirs("prefill_tps")),
        "ttft_ms": of(ours("ttft_ms"), theirs("ttft_ms")),
        "peak_rss_mb": of(ours("peak_rss_mb"), theirs("peak_rss_mb")),
        // llama-bench keeps no prompt cache: our peak over the same work against its peak.
        "peak_rss_mb_no_prompt_cache":
            of(ours("peak_rss_mb_no_prompt_cache"), theirs("peak_rss_mb")),
    });
    report["ratio"] = ratio;
    report["llama_cpp"] = l;
}

/// The report as a table, and the side-by-side when llama.cpp ran.
fn print_table(report: &serde_json::Value) {
    let t = &report["troupe"];
    println!(
        "model {} on {} · {} threads · {} prompt tokens · {} new tokens · {} runs",
        report["model"].as_str().unwrap_or(""),
        report["device"].as_str().unwrap_or(""),
        report["threads"],
        report["prompt_tokens"],
        report["new_tokens"],
        report["runs"]
    );
    println!("{:<28}{:>10}{:>10}{:>10}", "", "median", "min", "max");
    for (label, key) in [
        ("time to first token (ms)", "ttft_ms"),
        ("next turn first token (ms)", "next_turn_ttft_ms"),
        ("warmed chat first token (ms)", "warmed_first_reply_ttft_ms"),
        ("prefill (tokens/s)", "prefill_tps"),
        ("decode (tokens/s)", "decode_tps"),
    ] {
        let s = &t["spread"][key];
        let f = |k: &str| s[k].as_f64().unwrap_or(0.0);
        println!(
            "{label:<28}{:>10.1}{:>10.1}{:>10.1}",
            f("median"),
            f("min"),
            f("max")
        );
    }
    println!(
        "model load {} ms · RSS {} MB before load, {} MB loaded, peak {} MB ({} MB before the \
         chats that use the prompt cache)",
        t["load_ms"],
        t["idle_rss_mb_before_load"],
        t["idle_rss_mb_loaded"],
        t["peak_rss_mb"],
        t["peak_rss_mb_no_prompt_cache"]
    );
    let m = &report["memory"];
    let f = |k: &str| m[k].as_f64().unwrap_or(0.0);
    let filed = match f("prefix_cache_in_files_mb") {
        mb if mb > 0.0 => format!(", {mb} MB of them in files"),
        _ => String::new(),
    };
    println!(
        "peak memory {} MB = before the model {} + weights and engine {} + KV cache {} + prefix \
         cache {} ({} entries, F16{filed}) + activations and the rest {} (KV at {}, {} MB per \
         1,000 tokens; KV figures computed from the model's shape)",
        f("peak_mb"),
        f("before_load_mb"),
        f("weights_and_engine_mb"),
        f("kv_cache_mb"),
        f("prefix_cache_mb"),
        m["prefix_cache_entries"],
        f("activations_and_rest_mb"),
        m["kv_dtype"].as_str().unwrap_or(""),
        f("kv_mb_per_1000_tokens"),
    );
    let Some(l) = report.get("llama_cpp") else {
        return;
    };
    println!();
    println!(
        "vs llama.cpp, {} ({}), same file, {} threads:",
        report["llama_cpp_build"].as_str().unwrap_or(""),
        l["build"].as_str().unwrap_or(""),
        report["threads"]
    );
    println!(
        "{:<28}{:>10}{:>10}{:>10}",
        "", "troupe", "llama.cpp", "ratio"
    );
    for (label, ours, theirs) in [
        ("time to first token (ms)", "ttft_ms", "ttft_ms"),
        ("prefill (tokens/s)", "prefill_tps", "prefill_tps"),
        ("decode (tokens/s)", "decode_tps", "decode_tps"),
        (
            "peak memory, no prompt cache",
            "peak_rss_mb_no_prompt_cache",
            "peak_rss_mb",
        ),
        ("peak memory, whole run (MB)", "peak_rss_mb", "peak_rss_mb"),
    ] {
        let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
        println!(
            "{label:<28}{:>10.1}{:>10.1}{:>9.2}x",
            f(&t[ours]),
            f(&l[theirs]),
            f(&report["ratio"][ours])
        );
    }
    println!(
        "(llama-bench keeps no prompt cache: the first memory row is Troupe over the same work, \
         before the chats that use its prompt cache)"
    );
}
