//! A small GGUF header reader: architecture, context length, size and whether the file is
//! whole, read before a backend touches the file. Backends tend to panic or mmap garbage on a
//! truncated or foreign file; this turns those cases into a sentence for the user.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// What the header says about a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: u32,
    pub architecture: String,
    pub name: Option<String>,
    pub context_length: Option<u64>,
    pub n_tensors: u64,
    /// Parameters, summed over tensor shapes.
    pub n_params: u64,
    /// The file's quantisation as llama.cpp names it (`general.file_type`, e.g. "Q4_K_M"),
    /// else its most common tensor type (e.g. "Q4_1").
    pub quantization: String,
    /// Transformer blocks (layers), attention heads, key/value heads and hidden size, where
    /// the header says: what the KV cache of a context costs.
    pub layers: Option<u64>,
    pub heads: Option<u64>,
    pub kv_heads: Option<u64>,
    pub embedding: Option<u64>,
}

impl Header {
    /// Bytes of KV cache per token of context (keys and values, every layer), as the local
    /// engine keeps it (`super::kv_bytes_per_value`: F16 unless asked for F32); `None` when the
    /// header lacks the shape.
    pub fn kv_bytes_per_token(&self) -> Option<u64> {
        let (layers, heads, embedding) = (self.layers?, self.heads?, self.embedding?);
        let kv_heads = self.kv_heads.unwrap_or(heads);
        Some(layers * 2 * kv_heads * (embedding / heads.max(1)) * super::kv_bytes_per_value())
    }
}

const MAGIC: &[u8; 4] = b"GGUF";
/// A length above this in a header is damage, not data (the largest real strings are templates
/// of a few KB; the largest arrays are vocabularies of a few hundred thousand entries).
const MAX_LEN: u64 = 1 << 28;

/// Reads and checks the header of the GGUF at `path`; the error is a short reason.
pub fn read_header(path: &Path) -> Result<Header, String> {
    let file = File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    read_header_from(BufReader::with_capacity(1 << 16, file), file_len)
}

/// `read_header` of a GGUF of `file_len` bytes read from `inner` (a file, or bytes in memory:
/// the fuzz target's).
pub fn read_header_from(inner: impl Read + Seek, file_len: u64) -> Result<Header, String> {
    let mut r = Reader { inner };

    let mut magic = [0u8; 4];
    r.inner
        .read_exact(&mut magic)
        .map_err(|_| "the file is empty or too short".to_string())?;
    if &magic != MAGIC {
        return Err("it does not start with the GGUF signature".into());
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(format!("GGUF version {version} is not supported"));
    }
    let n_tensors = r.u64()?;
    let n_kv = r.u64()?;
    if n_tensors > MAX_LEN || n_kv > MAX_LEN {
        return Err("the header is damaged".into());
    }

    let mut architecture = None;
    let mut name = None;
    let mut alignment = 32u64;
    let mut file_type = None;
    // Numbers under `<arch>.`, read before we know the architecture (it is usually first).
    let shape_keys = [
        ".context_length",
        ".block_count",
        ".attention.head_count",
        ".attention.head_count_kv",
        ".embedding_length",
    ];
    let mut numbers: Vec<(String, u64)> = Vec::new();
    for _ in 0..n_kv {
        let key = r.string()?;
        let ty = r.u32()?;
        let shape = shape_keys.iter().any(|s| key.ends_with(s));
        match (key.as_str(), ty) {
            ("general.architecture", 8) => architecture = Some(r.string()?),
            ("general.name", 8) => name = Some(r.string()?),
            ("general.alignment", 4) => alignment = u64::from(r.u32()?).max(1),
            ("general.file_type", 4) => file_type = Some(r.u32()?),
            (k, 4) if shape => numbers.push((k.to_string(), u64::from(r.u32()?))),
            (k, 10) if shape => numbers.push((k.to_string(), r.u64()?)),
            _ => r.skip_value(ty)?,
        }
    }
    let architecture = architecture.ok_or("it has no general.architecture")?;
    let number = |suffix: &str| {
        numbers
            .iter()
            .find(|(k, _)| *k == format!("{architecture}{suffix}"))
            .map(|(_, v)| *v)
    };
    let context_length = number(".context_length");
    let (layers, heads, kv_heads, embedding) = (
        number(".block_count"),
        number(".attention.head_count"),
        number(".attention.head_count_kv"),
        number(".embedding_length"),
    );

    let mut n_params = 0u64;
    let mut counts: Vec<(u32, u64)> = Vec::new();
    let mut data_needed = 0u64;
    for _ in 0..n_tensors {
        let _name = r.string()?;
        let n_dims = r.u32()?;
        if n_dims > 8 {
            return Err("a tensor has an impossible shape".into());
        }
        let mut elems = 1u64;
        for _ in 0..n_dims {
            elems = elems
                .checked_mul(r.u64()?)
                .ok_or("a tensor has an impossible shape")?;
        }
        let ty = r.u32()?;
        let offset = r.u64()?;
        // A crafted header can claim any sizes: every sum saturates rather than overflow.
        n_params = n_params.saturating_add(elems);
        match counts.iter_mut().find(|(t, _)| *t == ty) {
            Some((_, n)) => *n = n.saturating_add(elems),
            None => counts.push((ty, elems)),
        }
        let bytes = type_size(ty)
            .map(|(block, size)| elems.div_ceil(block).saturating_mul(size))
            .unwrap_or(0);
        data_needed = data_needed.max(offset.saturating_add(bytes));
    }
    let pos = r.inner.stream_position().map_err(|e| e.to_string())?;
    let data_start = pos.div_ceil(alignment) * alignment;
    if data_start.saturating_add(data_needed) > file_len {
        return Err(format!(
            "it is truncated: the tensors need {} bytes but the file has {}",
            data_start.saturating_add(data_needed),
            file_len
        ));
    }
    let quantization = file_type
        .and_then(file_type_name)
        .map(str::to_string)
        .unwrap_or_else(|| main_quantization(&counts));

    Ok(Header {
        version,
        architecture,
        name,
        context_length,
        n_tensors,
        n_params,
        quantization,
        layers,
        heads,
        kv_heads,
        embedding,
    })
}

/// The tokenizer's vocabulary as the GGUF stores it: each token's text (byte-level BPE spells a
/// newline `Ċ`, SentencePiece `<0x0A>`) and type (3 = control, e.g. `<|im_start|>`). Empty
/// when the file has none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vocabulary {
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
}

/// The vocabulary of the GGUF at `path`, read from its metadata (the tensors are not touched).
pub fn read_vocabulary(path: &Path) -> Result<Vocabulary, String> {
    let file = File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
    };
    if &r.bytes::<4>()? != MAGIC {
        return Err("it does not start with the GGUF signature".into());
    }
    let _version = r.u32()?;
    let (_n_tensors, n_kv) = (r.u64()?, r.u64()?);
    let mut vocab = Vocabulary::default();
    for _ in 0..n_kv.min(MAX_LEN) {
        let key = r.string()?;
        let ty = r.u32()?;
        match (key.as_str(), ty) {
            ("tokenizer.ggml.tokens", 9) => {
                let (item, n) = (r.u32()?, r.len()?);
                if item != 8 {
                    return Err("tokenizer.ggml.tokens is not a list of strings".into());
                }
                vocab.tokens = (0..n).map(|_| r.raw_string()).collect::<Result<_, _>>()?;
            }
            ("tokenizer.ggml.token_type", 9) => {
                let (item, n) = (r.u32()?, r.len()?);
                if item != 5 {
                    return Err("tokenizer.ggml.token_type is not a list of i32".into());
                }
                vocab.types = (0..n)
                    .map(|_| r.bytes::<4>().map(i32::from_le_bytes))
                    .collect::<Result<_, _>>()?;
            }
            _ => r.skip_value(ty)?,
        }
        if !vocab.tokens.is_empty() && !vocab.types.is_empty() {
            break;
        }
    }
    Ok(vocab)
}

/// The name llama.cpp gives a file type (`general.file_type`, its `llama_ftype`), for the types
/// it still writes. A "Q4_K_M" file mixes Q4_K, Q6_K and often Q5_0 or Q8_0 tensors, so no
/// tensor type names it: the most common one had labelled Qwen2.5's Q4_K_M file "Q5_0".
fn file_type_name(file_type: u32) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        _ => return None,
    })
}

/// A file's quantisation where its header names none: the type that holds the most elements,
/// float tensors (the norms) aside; `counts` is (type, elements) per type.
fn main_quantization(counts: &[(u32, u64)]) -> String {
    counts
        .iter()
        .filter(|(t, _)| !matches!(t, 0 | 1 | 30))
        .max_by_key(|(_, n)| *n)
        .or(counts.first())
        .map(|(t, _)| type_name(*t))
        .unwrap_or_else(|| "none".into())
}

/// (elements per block, bytes per block) of a ggml tensor type, for the types we know.
pub(super) fn type_size(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (1, 4),
        1 => (1, 2),
        2 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        9 => (32, 36),
        10 => (256, 84),
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),
        30 => (1, 2),
        _ => return None,
    })
}

pub(super) fn type_name(ty: u32) -> String {
    let known = [
        (0, "F32"),
        (1, "F16"),
        (2, "Q4_0"),
        (3, "Q4_1"),
        (6, "Q5_0"),
        (7, "Q5_1"),
        (8, "Q8_0"),
        (9, "Q8_1"),
        (10, "Q2_K"),
        (11, "Q3_K"),
        (12, "Q4_K"),
        (13, "Q5_K"),
        (14, "Q6_K"),
        (15, "Q8_K"),
        (30, "BF16"),
    ];
    known
        .iter()
        .find(|(t, _)| *t == ty)
        .map(|(_, n)| n.to_string())
        .unwrap_or(format!("type {ty}"))
}

pub(super) struct Reader<R> {
    pub(super) inner: R,
}

impl<R: Read + Seek> Reader<R> {
    pub(super) fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.inner
            .read_exact(&mut b)
            .map_err(|_| "the header ends early (truncated file)".to_string())?;
        Ok(b)
    }
    pub(super) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    pub(super) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    pub(super) fn len(&mut self) -> Result<u64, String> {
        let n = self.u64()?;
        if n > MAX_LEN {
            return Err("the header is damaged (impossible length)".into());
        }
        Ok(n)
    }
    pub(super) fn string(&mut self) -> Result<String, String> {
        let n = self.len()? as usize;
        let mut b = vec![0u8; n];
        self.inner
            .read_exact(&mut b)
            .map_err(|_| "the header ends early (truncated file)".to_string())?;
        String::from_utf8(b).map_err(|_| "the header has a string that is not UTF-8".to_string())
    }
    /// A string that need not be UTF-8 (a byte token of a vocabulary), lossily decoded.
    pub(super) fn raw_string(&mut self) -> Result<String, String> {
        let n = self.len()? as usize;
        let mut b = vec![0u8; n];
        self.inner
            .read_exact(&mut b)
            .map_err(|_| "the header ends early (truncated file)".to_string())?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }
    pub(super) fn skip(&mut self, n: u64) -> Result<(), String> {
        self.inner
            .seek(SeekFrom::Current(n as i64))
            .map_err(|e| e.to_string())?;
        Ok(())
    }
    pub(super) fn skip_value(&mut self, ty: u32) -> Result<(), String> {
        match ty {
            0 | 1 | 7 => self.skip(1),
            2 | 3 => self.skip(2),
            4 | 5 | 6 => self.skip(4),
            10..=12 => self.skip(8),
            8 => {
                let n = self.len()?;
                self.skip(n)
            }
            9 => {
                let item = self.u32()?;
                let n = self.len()?;
                match item {
                    0 | 1 | 7 => self.skip(n),
                    2 | 3 => self.skip(n * 2),
                    4 | 5 | 6 => self.skip(n * 4),
                    10..=12 => self.skip(n * 8),
                    8 => (0..n).try_for_each(|_| {
                        let len = self.len()?;
                        self.skip(len)
                    }),
                    _ => Err(format!("unknown array item type {item}")),
                }
            }
            _ => Err(format!("unknown metadata type {ty}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A tiny, valid GGUF: one llama tensor of 64 F32 values.
    pub(crate) fn tiny_gguf(arch: &str) -> Vec<u8> {
        tiny_gguf_of_type(arch, None)
    }

    /// `tiny_gguf`, its header naming `file_type` as its `general.file_type` where given.
    fn tiny_gguf_of_type(arch: &str, file_type: Option<u32>) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes()); // tensors
        let kvs = 2 + u64::from(file_type.is_some());
        b.extend_from_slice(&kvs.to_le_bytes());
        let s = |b: &mut Vec<u8>, s: &str| {
            b.extend_from_slice(&(s.len() as u64).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        };
        s(&mut b, "general.architecture");
        b.extend_from_slice(&8u32.to_le_bytes());
        s(&mut b, arch);
        s(&mut b, &format!("{arch}.context_length"));
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&2048u32.to_le_bytes());
        if let Some(t) = file_type {
            s(&mut b, "general.file_type");
            b.extend_from_slice(&4u32.to_le_bytes());
            b.extend_from_slice(&t.to_le_bytes());
        }
        s(&mut b, "w");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&64u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // F32
        b.extend_from_slice(&0u64.to_le_bytes());
        while b.len() % 32 != 0 {
            b.push(0);
        }
        b.extend_from_slice(&[0u8; 256]);
        b
    }

    #[test]
    fn impossible_tensor_sizes_are_an_error_not_an_overflow() {
        // Three F32 tensors of 2^62 elements each: their bytes, and their sum, overflow u64
        // (a debug build panicked on the multiplication).
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&3u64.to_le_bytes()); // tensors
        b.extend_from_slice(&1u64.to_le_bytes()); // kvs
        let s = |b: &mut Vec<u8>, s: &str| {
            b.extend_from_slice(&(s.len() as u64).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        };
        s(&mut b, "general.architecture");
        b.extend_from_slice(&8u32.to_le_bytes());
        s(&mut b, "llama");
        for name in ["a", "b", "c"] {
            s(&mut b, name);
            b.extend_from_slice(&1u32.to_le_bytes()); // one dimension
            b.extend_from_slice(&(1u64 << 62).to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes()); // F32
            b.extend_from_slice(&0u64.to_le_bytes()); // offset
        }
        b.extend_from_slice(&[0u8; 64]);
        let f = write(&b);
        let e = read_header(f.path()).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn reads_a_valid_header() {
        let f = write(&tiny_gguf("llama"));
        let h = read_header(f.path()).unwrap();
        assert_eq!(h.architecture, "llama");
        assert_eq!(h.context_length, Some(2048));
        assert_eq!((h.n_tensors, h.n_params), (1, 64));
        assert_eq!(h.quantization, "F32");
    }

    #[test]
    fn the_quantisation_is_the_files_type_as_llama_cpp_names_it() {
        // Its tensors are F32, but the header names the file's type: that name wins.
        let named = |t| read_header(write(&tiny_gguf_of_type("llama", Some(t))).path());
        assert_eq!(named(15).unwrap().quantization, "Q4_K_M");
        assert_eq!(named(3).unwrap().quantization, "Q4_1");
        // A type llama.cpp no longer writes (or never did): the most common tensor type.
        assert_eq!(named(4).unwrap().quantization, "F32");
        assert_eq!(named(1024).unwrap().quantization, "F32");
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let f = write(b"this is not a model at all, just text");
        assert!(read_header(f.path())
            .unwrap_err()
            .contains("GGUF signature"));
        let f = write(b"");
        assert!(read_header(f.path()).unwrap_err().contains("empty"));
        let full = tiny_gguf("llama");
        let f = write(&full[..full.len() - 100]);
        assert!(read_header(f.path()).unwrap_err().contains("truncated"));
        let f = write(&full[..40]);
        assert!(read_header(f.path()).unwrap_err().contains("truncated"));
    }

    #[test]
    fn the_fuzz_seeds_are_headers_that_read() {
        // The fuzzer starts from these (written by src-tauri/fuzz/seeds/make_seeds.py): a seed
        // that does not read would start it on the error paths only.
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/make_seeds.py");
        let ok = std::process::Command::new("python3")
            .arg(script)
            .args(["gguf".as_ref(), dir.path().as_os_str()])
            .status()
            .unwrap();
        assert!(ok.success());
        let mut n = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            n += 1;
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let h = read_header_from(std::io::Cursor::new(&bytes), bytes.len() as u64).unwrap();
            assert_eq!(h.context_length, Some(2048), "{h:?}");
        }
        assert_eq!(n, 3);
    }
}
