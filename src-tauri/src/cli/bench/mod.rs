//! `troupe bench`: measuring the engine, not using the app. Speed against llama.cpp
//! (`speed`, `llama`), memory over many requests and a long chat as the window holds it
//! (`soak`), full-text search at scale (`search`), and perplexity (`perplexity`). This is the
//! one room of a front end that reaches below `app::Troupe`: it loads engines and sends
//! prompts itself, because what it measures is the engine.

mod llama;
mod perplexity;
mod search;
mod soak;
mod speed;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;

use crate::app::Troupe;
use crate::engine::{ChatMessage, Engine, EngineEvent, Sampling};

/// `troupe bench`'s options.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Measured runs (after one warm-up).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Tokens generated per run.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Worker threads for the matmuls (default: all cores; main.rs sets RAYON_NUM_THREADS).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Instead: send this many short requests and print memory as it goes (a soak test).
    #[arg(long, value_name = "REQUESTS")]
    pub soak: Option<usize>,
    /// Instead: hold one chat of this many turns with a built-in Character, as the window
    /// does (the next prompt warmed while the user would read), and print the time to
    /// first token of every turn.
    #[arg(long, value_name = "TURNS", conflicts_with = "soak")]
    pub turns: Option<usize>,
    /// Instead: seed a scratch database with this many messages and time full-text search
    /// and opening a session (no model needed).
    #[arg(long, value_name = "MESSAGES", conflicts_with_all = ["soak", "turns"])]
    pub search: Option<usize>,
    /// Instead: the model's perplexity on this text file (plain text, scored in windows of
    /// 1,024 tokens), to compare quantisations of one model. Lower is better.
    #[arg(long, value_name = "TEXT_FILE", conflicts_with_all = ["soak", "turns", "search"])]
    pub perplexity: Option<PathBuf>,
    /// Also run llama.cpp's llama-bench on the same file, threads, prompt length and reply
    /// length, and print the ratios.
    #[arg(long)]
    pub vs_llama_cpp: bool,
    /// The llama-bench binary (default: $LLAMA_BENCH, else the one `bash .ci/llama-cpp.sh`
    /// builds).
    #[arg(long, value_name = "PATH", requires = "vs_llama_cpp")]
    pub llama_bench: Option<PathBuf>,
    /// Which llama.cpp build judges: `native` (its defaults for this CPU, as its users build
    /// it) or `avx2` (Troupe's AVX2 kernels' instruction set); `bash .ci/llama-cpp.sh [avx2]`.
    #[arg(long, value_enum, default_value = "native", requires = "vs_llama_cpp")]
    pub llama_cpp_build: llama::Build,
}

/// Runs the benchmark the options choose.
pub async fn run(troupe: &Troupe, model: Option<PathBuf>, args: BenchArgs) -> anyhow::Result<()> {
    if let Some(requests) = args.soak {
        return soak::soak(troupe, model, requests).await;
    }
    if let Some(turns) = args.turns {
        return soak::long_chat(model, turns, args.max_tokens).await;
    }
    if let Some(n) = args.search {
        return search::search(n);
    }
    if let Some(text) = &args.perplexity {
        return perplexity::perplexity(troupe, model, text, args.json).await;
    }
    let opts = speed::Options {
        runs: args.runs,
        max_tokens: args.max_tokens,
        threads: args.threads,
        json: args.json,
        llama_bench: args.vs_llama_cpp.then(|| {
            let build = args.llama_cpp_build;
            let bin = args
                .llama_bench
                .unwrap_or_else(|| llama::default_path(build));
            (bin, build)
        }),
    };
    speed::bench(troupe, model, opts).await
}

/// A fresh scratch directory under the system's temp dir.
pub(super) fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "troupe-bench-{}-{}",
        std::process::id(),
        crate::app::now_ms()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Peak resident memory of this process, in MB (Linux; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    proc_status_kb("VmHWM:") / 1024.0
}

/// Current resident memory of this process, in MB (Linux; 0 elsewhere).
pub fn rss_mb() -> f64 {
    proc_status_kb("VmRSS:") / 1024.0
}

fn proc_status_kb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0.0)
}

pub(super) struct Run {
    pub ttft_ms: f64,
    pub prefill_tps: f64,
    pub decode_tps: f64,
    pub tokens: usize,
}

pub(super) async fn one_run(
    engine: &dyn Engine,
    messages: Vec<ChatMessage>,
    sampling: &Sampling,
) -> anyhow::Result<(Run, String)> {
    let prompt_tokens = engine.count_prompt_tokens(&messages).await?;
    let started = Instant::now();
    let mut gen = engine.generate(messages, sampling.clone());
    let mut first = None;
    let mut n = 0usize;
    let mut text = String::new();
    while let Some(e) = gen.recv().await {
        match e {
            EngineEvent::Text(t) => {
                first.get_or_insert_with(|| started.elapsed().as_secs_f64());
                n += 1;
                text.push_str(&t);
            }
            EngineEvent::Finished { usage, .. } => {
                if let Some(u) = usage {
                    n = n.max(u.completion_tokens);
                }
                break;
            }
            EngineEvent::Failed(e) => bail!("generation failed: {e}"),
        }
    }
    let total = started.elapsed().as_secs_f64();
    let ttft = first.unwrap_or(total);
    Ok((
        Run {
            ttft_ms: ttft * 1000.0,
            prefill_tps: prompt_tokens as f64 / ttft,
            decode_tps: if n > 1 {
                (n - 1) as f64 / (total - ttft).max(1e-9)
            } else {
                0.0
            },
            tokens: prompt_tokens,
        },
        text,
    ))
}

pub(super) fn stats(xs: &[f64]) -> serde_json::Value {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let median = if v.is_empty() { 0.0 } else { v[v.len() / 2] };
    let r = |x: f64| (x * 10.0).round() / 10.0;
    serde_json::json!({
        "median": r(median),
        "min": r(v.first().copied().unwrap_or(0.0)),
        "max": r(v.last().copied().unwrap_or(0.0)),
    })
}
