//! Rewrites a GGUF so every tensor has a quantisation that candle multiplies at full speed.
//!
//! The vendored candle repacks Q4_0, Q4_1, Q5_0 and Q8_0 weights into groups of eight rows for
//! its fastest kernels (`quantized/repack.rs`, x86-64); Q5_1 has only a one-row AVX2 kernel,
//! slower than a Q8_0 copy, and on other CPUs Q4_1 and Q5_0 have no SIMD kernel at all (the
//! small model is Q4_1; Q4_K_M files of small models fall back to Q5_0 for rows not divisible
//! by 256). So on first load such a file is transcoded, once, into a cached copy where those
//! tensors are Q8_0:
//!
//! - Q5_0 → Q8_0 is exact (a Q5_0 block is 32 integers in -16..15 times one scale; Q8_0 keeps the
//!   same scale and integers);
//! - Q4_1 / Q5_1 → Q8_0 re-rounds each value to 1/254 of its block's largest magnitude, far below
//!   the source's own step (1/15 or 1/31 of the block's range).
//!
//! The copy is streamed tensor by tensor (constant memory, any model size), written to a `.part`
//! file and renamed, so a crash or a full disk never leaves a half file that looks whole. The
//! metadata is copied byte for byte, plus one key, `troupe.transcoded_from`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use half::f16;

use super::gguf::{type_name, type_size, Reader};

const Q4_1: u32 = 3;
const Q5_0: u32 = 6;
const Q5_1: u32 = 7;
const Q8_0: u32 = 8;

/// Tensor types candle runs slower than their Q8_0 copy, which the transcoder rewrites. Q4_1
/// and Q5_0 are kept where they are repacked: at least as fast as Q8_0 there, in 20 or 22
/// bytes a block instead of 34 (docs/PERFORMANCE.md).
fn is_slow(ty: u32) -> bool {
    ty == Q5_1 || (matches!(ty, Q4_1 | Q5_0) && !cfg!(target_arch = "x86_64"))
}

/// Every type the transcoder can rewrite, slow here or not ([`transcode_all`]).
fn has_q8_0_form(ty: u32) -> bool {
    matches!(ty, Q4_1 | Q5_0 | Q5_1)
}

/// Whether `t` is rewritten: a slow type, unless it is an embedding table that is only read a
/// row at a time (the file has its own output layer). No matmul runs on such a table, and as
/// Q8_0 it would only take more memory (Qwen2.5-0.5B's: 94 MB as Q5_0, 145 MB as Q8_0). A tied
/// table is the output layer's weight too, and is rewritten.
fn rewrites(layout: &Layout, t: &TensorInfo) -> bool {
    rewrites_of(layout, t, is_slow)
}

fn rewrites_of(layout: &Layout, t: &TensorInfo, types: fn(u32) -> bool) -> bool {
    let read_by_rows =
        t.name == "token_embd.weight" && layout.tensors.iter().any(|o| o.name == "output.weight");
    types(t.ty) && !read_by_rows
}

/// Bumped when what a copy holds changes, so copies made by an older build are replaced.
/// 2: untied embedding tables kept as they are. 3: Q5_0 kept on x86-64. 4: Q4_1 too.
const REVISION: u32 = 4;

struct TensorInfo {
    name: String,
    dims: Vec<u64>,
    ty: u32,
    offset: u64,
}

impl TensorInfo {
    fn elems(&self) -> u64 {
        self.dims.iter().product()
    }
    fn bytes(&self, ty: u32) -> Result<u64, String> {
        let (block, size) =
            type_size(ty).ok_or_else(|| format!("unknown tensor type {}", type_name(ty)))?;
        Ok(self.elems().div_ceil(block) * size)
    }
}

struct Layout {
    version: u32,
    n_kv: u64,
    /// Byte range of the metadata key-values in the file, copied verbatim.
    kv: (u64, u64),
    alignment: u64,
    tensors: Vec<TensorInfo>,
    data_start: u64,
}

fn read_layout(path: &Path) -> Result<Layout, String> {
    let file = File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
    };
    let magic: [u8; 4] = r.bytes()?;
    if &magic != b"GGUF" {
        return Err("it does not start with the GGUF signature".into());
    }
    let version = r.u32()?;
    let n_tensors = r.u64()?;
    let n_kv = r.u64()?;
    let kv_start = r.inner.stream_position().map_err(|e| e.to_string())?;
    let mut alignment = 32;
    for _ in 0..n_kv {
        let key = r.string()?;
        let ty = r.u32()?;
        if key == "general.alignment" && ty == 4 {
            alignment = u64::from(r.u32()?).max(1);
        } else {
            r.skip_value(ty)?;
        }
    }
    let kv_end = r.inner.stream_position().map_err(|e| e.to_string())?;
    let mut tensors = Vec::new();
    for _ in 0..n_tensors {
        let name = r.string()?;
        let n_dims = r.u32()?;
        if n_dims > 8 {
            return Err("a tensor has an impossible shape".into());
        }
        let dims = (0..n_dims)
            .map(|_| r.u64())
            .collect::<Result<Vec<_>, _>>()?;
        let ty = r.u32()?;
        let offset = r.u64()?;
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
        });
    }
    let pos = r.inner.stream_position().map_err(|e| e.to_string())?;
    Ok(Layout {
        version,
        n_kv,
        kv: (kv_start, kv_end),
        alignment,
        tensors,
        data_start: pos.div_ceil(alignment) * alignment,
    })
}

/// The tensor types in `path` that would be transcoded, by name ("Q4_1", ...), with counts;
/// empty when the file is already fast.
pub fn slow_tensor_types(path: &Path) -> Result<Vec<(String, usize)>, String> {
    let layout = read_layout(path)?;
    let mut out: Vec<(String, usize)> = Vec::new();
    for t in layout.tensors.iter().filter(|t| rewrites(&layout, t)) {
        let name = type_name(t.ty);
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => out.push((name, 1)),
        }
    }
    Ok(out)
}

/// Where the transcoded copy of `source` lives in `cache_dir`: named after the source and
/// keyed by its size and modification time (and `REVISION`), so a replaced file gets a fresh
/// copy.
pub fn cached_path(source: &Path, cache_dir: &Path) -> Result<PathBuf, String> {
    let meta = std::fs::metadata(source).map_err(|e| format!("cannot read it: {e}"))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // FNV-1a: stable across Rust versions, unlike DefaultHasher.
    let key = format!("{}|{}|{}|{REVISION}", source.display(), meta.len(), mtime);
    let hash = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    let stem = source
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    Ok(cache_dir.join(format!("{stem}.{hash:016x}.simd.gguf")))
}

/// Removes the copies of `source` in `keep`'s folder other than `keep` (made before the file
/// changed, or by an older build), so the cache holds one copy per model. Best effort: a copy
/// that cannot be removed only takes disk space.
pub fn remove_older_copies(source: &Path, keep: &Path) {
    if let Some(dir) = keep.parent() {
        remove_copies_but(source, dir, Some(keep));
    }
}

/// Removes every copy of `source` in `cache_dir`: the file needs none any more (an older build
/// made one that this build runs without).
pub fn remove_copies(source: &Path, cache_dir: &Path) {
    remove_copies_but(source, cache_dir, None);
}

fn remove_copies_but(source: &Path, dir: &Path, keep: Option<&Path>) {
    let Some(stem) = source.file_stem() else {
        return;
    };
    let prefix = format!("{}.", stem.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let hash = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".simd.gguf"));
        let ours = hash.is_some_and(|h| h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit()));
        if ours && Some(entry.path().as_path()) != keep {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// What a transcode did.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcoded {
    pub path: PathBuf,
    pub tensors_converted: usize,
    pub bytes: u64,
}

/// Writes `dest`: `source` with every slow tensor (`is_slow`) as Q8_0 (but an embedding table
/// read by rows, see `rewrites`). `progress(done, total)`
/// is called with tensor counts.
pub fn transcode(
    source: &Path,
    dest: &Path,
    progress: impl FnMut(usize, usize),
) -> Result<Transcoded, String> {
    transcode_types(source, dest, is_slow, progress)
}

/// [`transcode`] with every Q4_1, Q5_0 and Q5_1 tensor rewritten, whether or not this CPU runs
/// it fast: the copy the engine ran before it kept those types, on which the A/B reference of
/// the unpatched engine was recorded (`tests/engine.rs`).
pub fn transcode_all(
    source: &Path,
    dest: &Path,
    progress: impl FnMut(usize, usize),
) -> Result<Transcoded, String> {
    transcode_types(source, dest, has_q8_0_form, progress)
}

fn transcode_types(
    source: &Path,
    dest: &Path,
    types: fn(u32) -> bool,
    mut progress: impl FnMut(usize, usize),
) -> Result<Transcoded, String> {
    let layout = read_layout(source)?;
    let mut src = BufReader::with_capacity(1 << 20, File::open(source).map_err(|e| e.to_string())?);
    let part = dest.with_extension("gguf.part");
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let result = (|| -> Result<Transcoded, String> {
        let io = |e: std::io::Error| format!("cannot write {}: {e}", part.display());
        let mut out = Counted {
            inner: BufWriter::with_capacity(1 << 20, File::create(&part).map_err(io)?),
            written: 0,
        };
        let string = |s: &str| {
            let mut b = (s.len() as u64).to_le_bytes().to_vec();
            b.extend_from_slice(s.as_bytes());
            b
        };

        out.put(b"GGUF")?;
        out.put(&layout.version.to_le_bytes())?;
        out.put(&(layout.tensors.len() as u64).to_le_bytes())?;
        out.put(&(layout.n_kv + 1).to_le_bytes())?;
        let mut kv = vec![0u8; (layout.kv.1 - layout.kv.0) as usize];
        src.seek(SeekFrom::Start(layout.kv.0))
            .map_err(|e| e.to_string())?;
        src.read_exact(&mut kv).map_err(|e| e.to_string())?;
        out.put(&kv)?;
        out.put(&string("troupe.transcoded_from"))?;
        out.put(&8u32.to_le_bytes())?;
        let from = source.file_name().unwrap_or_default().to_string_lossy();
        out.put(&string(&from))?;

        // New types and offsets: tensors keep their order; each starts aligned.
        let mut new = Vec::with_capacity(layout.tensors.len());
        let mut offset = 0u64;
        for t in &layout.tensors {
            let ty = if rewrites_of(&layout, t, types) {
                Q8_0
            } else {
                t.ty
            };
            if ty != t.ty && t.elems() % 32 != 0 {
                return Err(format!("tensor {} has a partial block", t.name));
            }
            new.push((ty, offset));
            offset = (offset + t.bytes(ty)?).div_ceil(layout.alignment) * layout.alignment;
        }
        for (t, (ty, off)) in layout.tensors.iter().zip(&new) {
            out.put(&string(&t.name))?;
            out.put(&(t.dims.len() as u32).to_le_bytes())?;
            for d in &t.dims {
                out.put(&d.to_le_bytes())?;
            }
            out.put(&ty.to_le_bytes())?;
            out.put(&off.to_le_bytes())?;
        }
        let pad =
            |n: u64| vec![0u8; (n.div_ceil(layout.alignment) * layout.alignment - n) as usize];
        out.put(&pad(out.written))?;
        let data_start = out.written;

        let mut converted = 0;
        for (i, (t, (ty, off))) in layout.tensors.iter().zip(&new).enumerate() {
            debug_assert_eq!(out.written - data_start, *off);
            let mut raw = vec![0u8; t.bytes(t.ty)? as usize];
            src.seek(SeekFrom::Start(layout.data_start + t.offset))
                .map_err(|e| e.to_string())?;
            src.read_exact(&mut raw)
                .map_err(|_| format!("it is truncated (tensor {})", t.name))?;
            let data = if *ty != t.ty {
                converted += 1;
                to_q8_0(t.ty, &raw)
            } else {
                raw
            };
            out.put(&data)?;
            out.put(&pad(out.written - data_start))?;
            progress(i + 1, layout.tensors.len());
        }
        out.inner.flush().map_err(io)?;
        out.inner.get_ref().sync_all().map_err(io)?;
        Ok(Transcoded {
            path: dest.to_path_buf(),
            tensors_converted: converted,
            bytes: out.written,
        })
    })();
    match result {
        Ok(done) => {
            std::fs::rename(&part, dest)
                .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
            Ok(done)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

/// The output file and how many bytes went into it (tensor offsets are computed from it).
struct Counted {
    inner: BufWriter<File>,
    written: u64,
}

impl Counted {
    fn put(&mut self, b: &[u8]) -> Result<(), String> {
        self.written += b.len() as u64;
        self.inner
            .write_all(b)
            .map_err(|e| format!("cannot write the transcoded model: {e}"))
    }
}

/// Converts whole blocks of Q4_1, Q5_0 or Q5_1 into Q8_0 blocks.
fn to_q8_0(ty: u32, raw: &[u8]) -> Vec<u8> {
    let (_, block) = type_size(ty).expect("a slow type is known");
    let mut out = Vec::with_capacity(raw.len() / block as usize * 34);
    let mut values = [0f32; 32];
    for b in raw.chunks_exact(block as usize) {
        if ty == Q5_0 {
            // Exact: same scale, the 5-bit integers fit in i8.
            let (d, q) = q5_ints(b, 2);
            out.extend_from_slice(&d);
            out.extend(q.iter().map(|&v| (v - 16) as u8));
            continue;
        }
        dequantize_block(ty, b, &mut values);
        out.extend_from_slice(&quantize_q8_0(&values));
    }
    out
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// The 32 unsigned 5-bit values of a Q5_0/Q5_1 block whose `qh` starts at `qh_at`, and its raw
/// f16 scale bytes.
fn q5_ints(b: &[u8], qh_at: usize) -> ([u8; 2], [i32; 32]) {
    let qh = u32::from_le_bytes(b[qh_at..qh_at + 4].try_into().expect("4 bytes"));
    let qs = &b[qh_at + 4..qh_at + 20];
    let mut q = [0i32; 32];
    for j in 0..16 {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        q[j] = ((u32::from(qs[j]) & 0x0F) | h0) as i32;
        q[j + 16] = ((u32::from(qs[j]) >> 4) | h1) as i32;
    }
    ([b[0], b[1]], q)
}

/// ggml's reference dequantisation of one block.
fn dequantize_block(ty: u32, b: &[u8], out: &mut [f32; 32]) {
    match ty {
        Q4_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..16 {
                out[j] = f32::from(b[4 + j] & 0x0F) * d + m;
                out[j + 16] = f32::from(b[4 + j] >> 4) * d + m;
            }
        }
        Q5_0 => {
            let d = f16_at(b, 0);
            let (_, q) = q5_ints(b, 2);
            for j in 0..32 {
                out[j] = (q[j] - 16) as f32 * d;
            }
        }
        Q5_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            let (_, q) = q5_ints(b, 4);
            for j in 0..32 {
                out[j] = q[j] as f32 * d + m;
            }
        }
        _ => unreachable!("only slow types are dequantised"),
    }
}

/// ggml's reference Q8_0 quantisation (`quantize_row_q8_0_ref`) of one block.
fn quantize_q8_0(x: &[f32; 32]) -> [u8; 34] {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut block = [0u8; 34];
    block[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for (j, v) in x.iter().enumerate() {
        block[2 + j] = ((v * id).round() as i8) as u8;
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(tensors: &[(&str, u32)]) -> Layout {
        Layout {
            version: 3,
            n_kv: 0,
            kv: (0, 0),
            alignment: 32,
            tensors: tensors
                .iter()
                .map(|(name, ty)| TensorInfo {
                    name: name.to_string(),
                    dims: vec![64, 8],
                    ty: *ty,
                    offset: 0,
                })
                .collect(),
            data_start: 0,
        }
    }

    #[test]
    fn a_new_copy_replaces_the_older_ones_of_the_same_model_only() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("Model.Q4_1.gguf");
        let touch = |name: &str| std::fs::write(dir.path().join(name), b"x").unwrap();
        for name in [
            "Model.Q4_1.0123456789abcdef.simd.gguf",
            "Model.Q4_1.fedcba9876543210.simd.gguf",
            "Other.0123456789abcdef.simd.gguf",
            "Model.Q4_1.notes.txt",
        ] {
            touch(name);
        }
        let keep = dir.path().join("Model.Q4_1.fedcba9876543210.simd.gguf");
        remove_older_copies(&source, &keep);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "Model.Q4_1.fedcba9876543210.simd.gguf",
                "Model.Q4_1.notes.txt",
                "Other.0123456789abcdef.simd.gguf"
            ]
        );
    }

    #[test]
    fn an_untied_embedding_table_is_kept_and_a_tied_one_rewritten() {
        let untied = layout(&[
            ("token_embd.weight", Q5_1),
            ("output.weight", Q8_0),
            ("blk.0.ffn_up.weight", Q5_1),
        ]);
        let kept: Vec<bool> = untied
            .tensors
            .iter()
            .map(|t| rewrites(&untied, t))
            .collect();
        assert_eq!(kept, [false, false, true]);
        let tied = layout(&[("token_embd.weight", Q5_1), ("blk.0.ffn_up.weight", Q5_1)]);
        assert!(tied.tensors.iter().all(|t| rewrites(&tied, t)));
    }

    #[test]
    fn q4_1_and_q5_0_are_kept_where_candle_repacks_them() {
        let file = layout(&[
            ("blk.0.ffn_up.weight", Q5_0),
            ("blk.0.ffn_gate.weight", Q4_1),
            ("blk.0.ffn_down.weight", Q5_1),
        ]);
        let rewritten: Vec<bool> = file.tensors.iter().map(|t| rewrites(&file, t)).collect();
        let off_x86 = !cfg!(target_arch = "x86_64");
        assert_eq!(rewritten, [off_x86, off_x86, true]);
    }

    #[test]
    fn copies_are_removed_when_none_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("Model.Q4_K_M.gguf");
        std::fs::write(
            dir.path().join("Model.Q4_K_M.0123456789abcdef.simd.gguf"),
            b"x",
        )
        .unwrap();
        std::fs::write(dir.path().join("Other.0123456789abcdef.simd.gguf"), b"x").unwrap();
        remove_copies(&source, dir.path());
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["Other.0123456789abcdef.simd.gguf"]);
    }

    fn dequantize_q8_0(b: &[u8]) -> [f32; 32] {
        let d = f16_at(b, 0);
        std::array::from_fn(|j| f32::from(b[2 + j] as i8) * d)
    }

    /// A block of each slow type from deterministic pseudo-random bytes.
    fn block(ty: u32, seed: u32) -> Vec<u8> {
        let (_, size) = type_size(ty).unwrap();
        let mut s = seed.wrapping_mul(2654435761).max(1);
        let mut b: Vec<u8> = (0..size)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                s as u8
            })
            .collect();
        // Plausible scales: d ~ 0.01, m ~ -0.08.
        b[..2].copy_from_slice(&f16::from_f32(0.01 + seed as f32 * 1e-4).to_le_bytes());
        if ty != Q5_0 {
            b[2..4].copy_from_slice(&f16::from_f32(-0.08).to_le_bytes());
        }
        b
    }

    #[test]
    fn q5_0_is_exact() {
        for seed in 0..50 {
            let b = block(Q5_0, seed);
            let mut want = [0f32; 32];
            dequantize_block(Q5_0, &b, &mut want);
            assert_eq!(dequantize_q8_0(&to_q8_0(Q5_0, &b)), want);
        }
    }

    #[test]
    fn q4_1_and_q5_1_stay_within_half_a_q8_step() {
        for ty in [Q4_1, Q5_1] {
            for seed in 0..50 {
                let b = block(ty, seed);
                let mut want = [0f32; 32];
                dequantize_block(ty, &b, &mut want);
                let got = dequantize_q8_0(&to_q8_0(ty, &b));
                let amax = want.iter().fold(0f32, |a, v| a.max(v.abs()));
                for (g, w) in got.iter().zip(&want) {
                    // Half a step of amax/127, plus the f16 rounding of the scale.
                    assert!((g - w).abs() <= amax / 254.0 + amax * 1e-3, "{g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn q4_1_dequantises_as_ggml_does() {
        // d = 0.5, m = -1, nibbles 0..15 low then high: x[j] = j*0.5 - 1, x[j+16] = (15-j)*0.5 - 1.
        let mut b = vec![0u8; 20];
        b[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        b[2..4].copy_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        for j in 0..16 {
            b[4 + j] = (j as u8) | ((15 - j as u8) << 4);
        }
        let mut x = [0f32; 32];
        dequantize_block(Q4_1, &b, &mut x);
        assert_eq!(x[0], -1.0);
        assert_eq!(x[15], 6.5);
        assert_eq!(x[16], 6.5);
        assert_eq!(x[31], -1.0);
    }
}
