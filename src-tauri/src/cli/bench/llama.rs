//! llama.cpp's own benchmark, run as a child process, for `troupe bench --vs-llama-cpp`: the
//! same file, threads, prompt and reply length, its speed and its peak memory.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// Which build of llama.cpp judges: `.ci/llama-cpp.sh` makes both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Build {
    /// llama.cpp's defaults for this CPU (`GGML_NATIVE=ON`), as its users build it.
    Native,
    /// AVX2/FMA/F16C only, the instruction set of Troupe's AVX2 kernels.
    Avx2,
}

impl Build {
    pub fn describe(self) -> &'static str {
        match self {
            Build::Native => "native build, GGML_NATIVE=ON",
            Build::Avx2 => "AVX2-only build, GGML_NATIVE=OFF",
        }
    }
}

/// $LLAMA_BENCH, else where `.ci/llama-cpp.sh` builds `build`.
pub fn default_path(build: Build) -> PathBuf {
    if let Some(p) = std::env::var_os("LLAMA_BENCH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let dir = match build {
        Build::Native => "llama.cpp-0.94.0-native",
        Build::Avx2 => "llama.cpp-0.94.0",
    };
    home.join(".cache/troupe")
        .join(dir)
        .join("build/bin/llama-bench")
}

/// Runs llama-bench twice: `prompt_tokens` of prefill, then `new_tokens` of decode after a
/// context of `prompt_tokens` (`-d`), as Troupe's decode follows its prompt; `runs` times
/// each. llama-bench feeds random tokens rather than our text; the work per token is the
/// same, so the lengths are what make the runs comparable. Its time to first token is the
/// prefill time of the prompt (the first token comes from the prefill's logits).
pub fn run(
    bin: &Path,
    model: &Path,
    threads: usize,
    prompt_tokens: usize,
    new_tokens: usize,
    runs: usize,
) -> anyhow::Result<serde_json::Value> {
    let run = |args: &[String]| -> anyhow::Result<(serde_json::Value, f64)> {
        let mut child = Command::new(bin)
            .arg("-m")
            .arg(model)
            .args(["-t", &threads.to_string(), "-r", &runs.max(1).to_string()])
            .args(["-o", "json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        // Peak memory: the child's own high-water mark, polled until it exits. (The
        // rusage of children would report this process's peak: Linux carries the
        // high-water mark of the forking process across exec.)
        let status_path = format!("/proc/{}/status", child.id());
        let mut peak_kb = 0f64;
        let mut stdout = child.stdout.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            out
        });
        let status = loop {
            if let Some(hwm) = std::fs::read_to_string(&status_path).ok().and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            }) {
                peak_kb = peak_kb.max(hwm);
            }
            if let Some(status) = child.try_wait()? {
                break status;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let out = reader.join().unwrap_or_default();
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            bail!(
                "llama-bench failed: {}",
                err.lines().last().unwrap_or("(no message)")
            );
        }
        let rows: serde_json::Value =
            serde_json::from_slice(&out).context("llama-bench printed no JSON")?;
        let row = rows
            .as_array()
            .and_then(|r| r.first())
            .cloned()
            .context("llama-bench's JSON has no results")?;
        Ok((row, peak_kb / 1024.0))
    };
    let (pp_row, pp_peak) = run(&[
        "-p".into(),
        prompt_tokens.to_string(),
        "-n".into(),
        "0".into(),
    ])?;
    let (tg_row, tg_peak) = run(&[
        "-p".into(),
        "0".into(),
        "-n".into(),
        new_tokens.to_string(),
        "-d".into(),
        prompt_tokens.to_string(),
    ])?;
    let samples = |row: &serde_json::Value| -> Vec<f64> {
        row["samples_ts"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default()
    };
    let (pp, tg) = (samples(&pp_row), samples(&tg_row));
    if pp.is_empty() || tg.is_empty() {
        bail!("llama-bench's JSON has no prompt or generation results");
    }
    let ttft: Vec<f64> = pp
        .iter()
        .map(|t| prompt_tokens as f64 / t * 1000.0)
        .collect();
    Ok(serde_json::json!({
        "build": format!(
            "llama.cpp {} ({}), {}",
            pp_row["build_commit"].as_str().unwrap_or("?"),
            pp_row["backends"].as_str().unwrap_or("CPU"),
            pp_row["cpu_info"].as_str().unwrap_or("")
        ),
        "decode_tps": super::stats(&tg)["median"],
        "prefill_tps": super::stats(&pp)["median"],
        "ttft_ms": super::stats(&ttft)["median"],
        "peak_rss_mb": pp_peak.max(tg_peak).round(),
        "spread": {
            "decode_tps": super::stats(&tg),
            "prefill_tps": super::stats(&pp),
            "ttft_ms": super::stats(&ttft),
        }
    }))
}
