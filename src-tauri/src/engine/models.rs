//! The user's models: every GGUF in the models folder plus the files they added from elsewhere,
//! each described from its header (architecture, parameters, quantisation, context) with a hint
//! of whether it suits this machine.
//!
//! The hint compares what running the model needs (the file, which is mapped whole, plus the
//! KV cache of a full context and a margin for activations) with this machine's memory (and the
//! GPU's, in CUDA builds): it fits, it won't fit, or it fits but may be slow (little memory to
//! spare, or so large that on CPU, where each token reads the whole file, replies come at only a
//! few words a second).

use std::path::{Path, PathBuf};

use super::gguf::Header;

/// One model file and what we know of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    pub path: PathBuf,
    pub size_bytes: u64,
    /// The header, or why it cannot be read (a damaged or foreign file is still listed, with
    /// its problem, so the user can remove it).
    pub header: Result<Header, String>,
    pub fit: Fit,
    /// A sentence behind the hint ("needs about 1.2 GB of 23 GB").
    pub fit_reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    Fits,
    MaySlow,
    WontFit,
    /// The file is unusable (see the header's error).
    Unusable,
}

/// Memory this machine has, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
    /// Total memory of the GPU the model would run on, in CUDA builds with a GPU.
    pub gpu: Option<u64>,
}

/// Reads /proc/meminfo (and, in CUDA builds, asks nvidia-smi for the GPU's memory).
pub fn machine_memory() -> Memory {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |key: &str| {
        info.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    let total = kb("MemTotal:").unwrap_or(8 << 30);
    Memory {
        total,
        available: kb("MemAvailable:").unwrap_or(total / 2),
        gpu: if cfg!(feature = "cuda") {
            gpu_memory()
        } else {
            None
        },
    }
}

fn gpu_memory() -> Option<u64> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits"])
        .output()
        .ok()?;
    let mb: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    Some(mb << 20)
}

/// Context the app uses at most (conversation::assemble caps long contexts on CPU).
const CONTEXT_FOR_FIT: u64 = 4096;
/// The app, the window and the engine's own buffers.
const OVERHEAD: u64 = 400 << 20;
/// Below this many tokens a second (estimated) a model "may be slow" on CPU.
const SLOW_TOKENS_PER_SECOND: f64 = 4.0;
/// A typical desktop's memory bandwidth a CPU decode step can use, bytes per second.
const CPU_BANDWIDTH: f64 = 12e9;

/// Whether a model of `size` bytes with `header` suits a machine with `mem`.
pub fn fit(size: u64, header: &Result<Header, String>, mem: &Memory) -> (Fit, String) {
    let header = match header {
        Ok(h) => h,
        Err(e) => return (Fit::Unusable, e.clone()),
    };
    fit_need(
        size,
        need(size, header.context_length, header.kv_bytes_per_token()),
        mem,
    )
}

/// Memory a model of `size` bytes needs with the context Troupe uses: its weights, the KV cache
/// (`kv_bytes_per_token` of it per token; an eighth of the weights when unknown), working
/// buffers and the app itself.
pub fn need(size: u64, context_length: Option<u64>, kv_bytes_per_token: Option<u64>) -> u64 {
    let context = context_length.unwrap_or(2048).min(CONTEXT_FOR_FIT);
    let kv = kv_bytes_per_token.map(|b| b * context).unwrap_or(size / 8);
    size + kv + size / 10 + OVERHEAD
}

/// Whether the models at `a` and `b` can be held in memory at once (the arena's two local
/// contenders): their needs together, the app counted once, within what `fit_need` allows one
/// model. A file whose header cannot be read counts as not fitting.
pub fn both_fit(a: &Path, b: &Path, mem: &Memory) -> bool {
    let one = |p: &Path| {
        let size = std::fs::metadata(p).map(|m| m.len()).ok()?;
        let h = super::gguf::read_header(p).ok()?;
        Some((
            size,
            need(size, h.context_length, h.kv_bytes_per_token()) - OVERHEAD,
        ))
    };
    let (Some((sa, na)), Some((sb, nb))) = (one(a), one(b)) else {
        return false;
    };
    fit_need(sa + sb, na + nb + OVERHEAD, mem).0 != Fit::WontFit
}

/// Whether a model of `size` bytes that needs `need` bytes suits a machine with `mem`.
pub fn fit_need(size: u64, need: u64, mem: &Memory) -> (Fit, String) {
    let gb = |b: u64| format!("{:.1} GB", b as f64 / 1e9);
    let budget = mem.gpu.unwrap_or(mem.total);
    let place = if mem.gpu.is_some() {
        "GPU memory"
    } else {
        "memory"
    };
    if need > budget * 9 / 10 {
        return (
            Fit::WontFit,
            format!(
                "needs about {} but this machine has {} of {place}",
                gb(need),
                gb(budget)
            ),
        );
    }
    if mem.gpu.is_none() {
        let tokens_per_second = CPU_BANDWIDTH / size.max(1) as f64;
        if tokens_per_second < SLOW_TOKENS_PER_SECOND {
            return (
                Fit::MaySlow,
                format!(
                    "fits ({} of {}), but on this CPU expect only ~{:.0} tokens a second",
                    gb(need),
                    gb(mem.total),
                    tokens_per_second.max(1.0)
                ),
            );
        }
        if need > mem.available {
            return (
                Fit::MaySlow,
                format!(
                    "needs about {} and only {} is free now: close other programs or expect swapping",
                    gb(need),
                    gb(mem.available)
                ),
            );
        }
    }
    (
        Fit::Fits,
        format!("needs about {} of {} {place}", gb(need), gb(budget)),
    )
}

/// Describes one file.
pub fn describe(path: &Path, mem: &Memory) -> ModelFile {
    let size_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let header = super::check_model_file(path).map_err(|e| match e {
        super::Error::ModelCorrupt { reason, .. } => reason,
        other => other.to_string(),
    });
    let (fit, fit_reason) = fit(size_bytes, &header, mem);
    ModelFile {
        path: path.to_path_buf(),
        size_bytes,
        header,
        fit,
        fit_reason,
    }
}

/// Every `.gguf` in `dir` (not the `.part` files of downloads in progress) and every file in
/// `added` that still exists, without duplicates, sorted by name.
pub fn list(dir: &Path, added: &[PathBuf], mem: &Memory) -> Vec<ModelFile> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .is_some_and(|x| x.eq_ignore_ascii_case("gguf"))
                })
                .collect()
        })
        .unwrap_or_default();
    for p in added {
        if p.is_file() && !paths.iter().any(|q| same_file(q, p)) {
            paths.push(p.clone());
        }
    }
    paths.sort_by_key(|p| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default()
    });
    paths.iter().map(|p| describe(p, mem)).collect()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(n_params: u64, layers: u64) -> Result<Header, String> {
        Ok(Header {
            version: 3,
            architecture: "llama".into(),
            name: None,
            context_length: Some(8192),
            n_tensors: 10,
            n_params,
            quantization: "Q4_K".into(),
            layers: Some(layers),
            heads: Some(32),
            kv_heads: Some(8),
            embedding: Some(4096),
        })
    }

    const GB: u64 = 1_000_000_000;

    #[test]
    fn hints_follow_the_machine() {
        let laptop = Memory {
            total: 16 * GB,
            available: 10 * GB,
            gpu: None,
        };
        // A 135 M model: fits anywhere.
        assert_eq!(
            fit(98_000_000, &header(135_000_000, 30), &laptop).0,
            Fit::Fits
        );
        // An 8 B Q4 (4.9 GB): fits, but CPU decode is ~2.4 tokens/s → may be slow.
        let (f, why) = fit(49 * GB / 10, &header(8_000_000_000, 32), &laptop);
        assert_eq!(f, Fit::MaySlow, "{why}");
        assert!(why.contains("tokens a second"), "{why}");
        // A 70 B Q4 (40 GB): won't fit in 16 GB.
        let (f, why) = fit(40 * GB, &header(70_000_000_000, 80), &laptop);
        assert_eq!(f, Fit::WontFit);
        assert!(why.contains("16.0 GB"), "{why}");
        // Little free memory now: may be slow, and it says why.
        let busy = Memory {
            available: GB / 2,
            ..laptop
        };
        let (f, why) = fit(GB, &header(1_500_000_000, 28), &busy);
        assert_eq!(f, Fit::MaySlow);
        assert!(why.contains("free now"), "{why}");
        // A GPU build judges by GPU memory.
        let gpu = Memory {
            gpu: Some(8 * GB),
            ..laptop
        };
        assert_eq!(
            fit(49 * GB / 10, &header(8_000_000_000, 32), &gpu).0,
            Fit::Fits
        );
        assert_eq!(
            fit(9 * GB, &header(14_000_000_000, 48), &gpu).0,
            Fit::WontFit
        );
        // A damaged file is unusable, with its reason.
        assert_eq!(
            fit(10, &Err("it is truncated".into()), &laptop),
            (Fit::Unusable, "it is truncated".into())
        );
    }
}
