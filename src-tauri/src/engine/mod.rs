//! The engine: turns chat messages into streamed text.
//!
//! `Engine` is the one trait every backend implements: `MistralEngine` (mistral.rs, a local
//! GGUF, in process), `RemoteEngine` (an OpenAI-compatible server elsewhere), and
//! `ScriptedEngine`, a fake for tests of logic where the words do not matter. Around them:
//! `sampling` (settings, presets, the seeded sampler), `dry` (the loop breaker), `gguf`
//! (header and vocabulary reader), `transcode` (SIMD-friendly copies of slow quantisations),
//! `models` (the user's model files and whether they fit), `catalog` (suggested models) and
//! `download` (from a Hugging Face repository). The engine knows nothing of Characters, SQLite
//! or Tauri: it takes `ChatMessage`s and `Sampling` and yields `EngineEvent`s.
//!
//! `Slot` holds the process's one loaded Engine and its `EngineStatus`. Loading runs in the
//! background (a model can take seconds to load), so the app is usable meanwhile, and can be
//! stopped; the status says what is happening and, when the model is missing, damaged or
//! unsupported, what to do. The loaded model lives until another is loaded in its place or the
//! process ends.

pub mod catalog;
pub mod download;
pub mod dry;
pub mod gguf;
pub mod mistral;
pub mod models;
pub mod prompt_cache;
pub mod remote;
pub mod sampling;
pub mod scripted;
pub mod transcode;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::{mpsc, watch};

pub use mistral::MistralEngine;
pub use remote::{RemoteConfig, RemoteEngine};
pub use sampling::Sampling;
pub use scripted::ScriptedEngine;

/// Who wrote a chat message, in the model's terms (serialised as OpenAI's chat format names
/// them: "system", "user", "assistant").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

impl ChatRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatRole::System => "system",
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }
}

/// One message of a chat prompt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: ChatRole, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

/// A streamed piece of a reply, or its end.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// The next piece of text.
    Text(String),
    /// The reply ended normally.
    Finished {
        reason: FinishReason,
        usage: Option<Usage>,
    },
    /// The engine failed mid-reply; what was streamed before stands.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn or hit a stop string.
    Stop,
    /// The reply reached `max_tokens`.
    Length,
}

/// Counts the engine reports for one reply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub prompt_seconds: f64,
    pub completion_seconds: f64,
}

/// A reply in progress. Dropping it cancels the generation.
pub type Generation = mpsc::Receiver<EngineEvent>;

/// What every backend offers.
pub trait Engine: Send + Sync {
    /// What is loaded.
    fn info(&self) -> &ModelInfo;
    /// Tokens `messages` take once rendered with the model's chat template, generation prompt
    /// included: the exact size of the prompt they would make.
    fn count_prompt_tokens<'a>(
        &'a self,
        messages: &'a [ChatMessage],
    ) -> BoxFuture<'a, Result<usize, Error>>;
    /// Tokens of plain text, no template.
    fn count_tokens<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<usize, Error>>;
    /// `messages` as the model reads them: the text its chat template makes (special tokens
    /// written out), and its length in tokens. Backends that cannot see the template (a remote
    /// server) show the messages one per block, with the count they estimate.
    fn render_prompt<'a>(
        &'a self,
        messages: &'a [ChatMessage],
    ) -> BoxFuture<'a, Result<RenderedPrompt, Error>> {
        async move {
            let text = messages
                .iter()
                .map(|m| format!("[{}]\n{}", m.role.as_str(), m.content))
                .collect::<Vec<_>>()
                .join("\n\n");
            Ok(RenderedPrompt {
                text,
                tokens: self.count_prompt_tokens(messages).await?,
                exact: false,
            })
        }
        .boxed()
    }
    /// Starts a reply. Must be called inside a tokio runtime.
    fn generate(&self, messages: Vec<ChatMessage>, sampling: Sampling) -> Generation;
    /// Whether `complete` works.
    fn completes_text(&self) -> bool {
        false
    }
    /// Continues plain text, no chat template (the local API's `/v1/completions`). Backends
    /// that cannot (`completes_text` false) fail at once.
    fn complete(&self, prompt: String, sampling: Sampling) -> Generation {
        let _ = (prompt, sampling);
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(EngineEvent::Failed(
            "this engine continues chats only, not plain text".into(),
        ));
        rx
    }
}

/// A prompt as the model reads it (`Engine::render_prompt`).
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedPrompt {
    pub text: String,
    pub tokens: usize,
    /// Whether `text` is the model's own template; false for an approximation.
    pub exact: bool,
}

/// What the user sees of a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// File name, for display.
    pub name: String,
    pub path: PathBuf,
    pub architecture: String,
    /// Parameters, from the GGUF's tensor shapes.
    pub parameters: u64,
    /// The file's main quantisation, with what it runs as when transcoded ("Q4_1 → Q8_0").
    pub quantization: String,
    /// Tokens of context the model was trained for.
    pub context_length: usize,
    /// Where it runs, e.g. "CPU (AVX2)".
    pub device: String,
    /// Where its layers sit, e.g. "all 30 layers on the CPU", when known.
    pub layers: Option<String>,
}

/// Why an engine cannot load or answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// No file at the model path.
    #[error("the model file {path} does not exist; run `bash .ci/start` from the Troupe folder to fetch the default model, or choose a GGUF file in Settings")]
    ModelMissing { path: PathBuf },
    /// The file is not a GGUF model, or is damaged.
    #[error(
        "{path} is not a usable GGUF model ({reason}); download it again or choose another file"
    )]
    ModelCorrupt { path: PathBuf, reason: String },
    /// A GGUF of an architecture this build cannot run.
    #[error(
        "{path} is a '{architecture}' model, which Troupe cannot run yet; supported: {supported}"
    )]
    ModelUnsupported {
        path: PathBuf,
        architecture: String,
        supported: String,
    },
    /// The backend failed to load the model.
    #[error("the model {path} failed to load: {reason}")]
    LoadFailed { path: PathBuf, reason: String },
    /// No model is loaded yet (still loading, or loading failed).
    #[error("{0}")]
    NotReady(String),
    /// The backend failed while answering.
    #[error("the engine failed: {0}")]
    Backend(String),
    /// The person stopped the loading; no model is loaded.
    #[error("loading the model was stopped; choose a model in Settings, or load it again")]
    Stopped,
}

/// The state of the model, for the status bar.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineStatus {
    Loading { path: PathBuf },
    Ready(ModelInfo),
    Failed(Error),
}

impl EngineStatus {
    /// The model's name when one is ready.
    pub fn ready_name(&self) -> Option<String> {
        match self {
            EngineStatus::Ready(info) => Some(info.name.clone()),
            _ => None,
        }
    }

    /// The model file when one is ready.
    pub fn ready_path(&self) -> Option<PathBuf> {
        match self {
            EngineStatus::Ready(info) => Some(info.path.clone()),
            _ => None,
        }
    }
}

/// The process's one Engine and its status. Cheap to clone.
#[derive(Clone)]
pub struct Slot {
    engine: Arc<Mutex<Option<Arc<dyn Engine>>>>,
    status: Arc<watch::Sender<EngineStatus>>,
    /// Counts loads, connects and stops: a load that ends after a newer one began, or after
    /// Stop, is dropped instead of put in the slot.
    attempts: Arc<AtomicU64>,
    /// Where transcoded model copies go (`MistralEngine::load`).
    cache_dir: Option<PathBuf>,
}

impl Slot {
    pub fn new() -> Slot {
        let (tx, _) = watch::channel(EngineStatus::Failed(Error::NotReady(
            "no model chosen yet".into(),
        )));
        Slot {
            engine: Arc::new(Mutex::new(None)),
            status: Arc::new(tx),
            attempts: Arc::new(AtomicU64::new(0)),
            cache_dir: None,
        }
    }

    /// The same slot, keeping transcoded model copies in `dir`.
    pub fn with_cache_dir(mut self, dir: PathBuf) -> Slot {
        self.cache_dir = Some(dir);
        self
    }

    /// A slot already holding `engine` (tests, benchmarks).
    pub fn with_engine(engine: Arc<dyn Engine>) -> Slot {
        let slot = Slot::new();
        slot.status
            .send_replace(EngineStatus::Ready(engine.info().clone()));
        *slot.engine.lock().unwrap() = Some(engine);
        slot
    }

    pub fn status(&self) -> EngineStatus {
        self.status.borrow().clone()
    }

    /// Changes of status, for the UI's status bar.
    pub fn subscribe(&self) -> watch::Receiver<EngineStatus> {
        self.status.subscribe()
    }

    /// The loaded engine, or why there is none.
    pub fn engine(&self) -> Result<Arc<dyn Engine>, Error> {
        if let Some(e) = self
            .engine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(e);
        }
        Err(match self.status() {
            EngineStatus::Loading { path } => Error::NotReady(format!(
                "the model {} is still loading; try again in a moment",
                path.file_name().unwrap_or_default().to_string_lossy()
            )),
            EngineStatus::Failed(e) => e,
            EngineStatus::Ready(_) => Error::NotReady("no model loaded".into()),
        })
    }

    /// Connects to a remote OpenAI-compatible server and puts it in the slot, like `load`.
    pub async fn connect(&self, config: RemoteConfig) -> Result<(), Error> {
        let attempt = self.begin(config.base_url.clone().into());
        self.settle(attempt, RemoteEngine::connect(config).await)
    }

    /// Loads the GGUF at `path` with mistral.rs and puts it in the slot; the previous engine
    /// serves until the new one is ready. Returns once loading has finished (spawn it to load
    /// in the background).
    pub async fn load(&self, path: PathBuf) -> Result<(), Error> {
        let attempt = self.begin(path.clone());
        self.settle(
            attempt,
            MistralEngine::load(&path, self.cache_dir.as_deref()).await,
        )
    }

    /// Lets go of the loaded engine (its memory is freed once no reply holds it) and says the
    /// model is loading `then`, the file that will take its place; the arena sets the model in
    /// use aside this way while a model that cannot sit beside it writes.
    pub fn unload(&self, then: PathBuf) {
        let mut slot = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        self.attempts.fetch_add(1, Ordering::SeqCst);
        *slot = None;
        self.status
            .send_replace(EngineStatus::Loading { path: then });
    }

    /// Stops the load or connect under way: the previous engine, if any, serves again, else
    /// the status says loading was stopped. mistral.rs cannot be interrupted inside a load, so
    /// the load runs on in the background and what it made is dropped when it ends. False when
    /// nothing was loading.
    pub fn stop_loading(&self) -> bool {
        let slot = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(self.status(), EngineStatus::Loading { .. }) {
            return false;
        }
        self.attempts.fetch_add(1, Ordering::SeqCst);
        self.status.send_replace(match slot.as_ref() {
            Some(engine) => EngineStatus::Ready(engine.info().clone()),
            None => EngineStatus::Failed(Error::Stopped),
        });
        true
    }

    /// The start of a load or connect: its number, and `Loading`.
    fn begin(&self, path: PathBuf) -> u64 {
        let _slot = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        self.status.send_replace(EngineStatus::Loading { path });
        self.attempts.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The end of load or connect number `attempt`: the engine and `Ready`, or no engine and
    /// `Failed`; nothing changes when it was stopped or overtaken by a newer one.
    fn settle(
        &self,
        attempt: u64,
        result: Result<impl Engine + 'static, Error>,
    ) -> Result<(), Error> {
        let mut slot = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        if self.attempts.load(Ordering::SeqCst) != attempt {
            return Err(Error::Stopped);
        }
        match result {
            Ok(engine) => {
                let info = engine.info().clone();
                *slot = Some(Arc::new(engine));
                self.status.send_replace(EngineStatus::Ready(info));
                Ok(())
            }
            Err(e) => {
                *slot = None;
                self.status.send_replace(EngineStatus::Failed(e.clone()));
                Err(e)
            }
        }
    }
}

impl Default for Slot {
    fn default() -> Self {
        Slot::new()
    }
}

/// Checks a model file before handing it to a backend, so a missing, truncated or foreign file
/// is a clear error rather than a panic deep in a loader.
pub fn check_model_file(path: &Path) -> Result<gguf::Header, Error> {
    if !path.is_file() {
        return Err(Error::ModelMissing {
            path: path.to_path_buf(),
        });
    }
    let header = gguf::read_header(path).map_err(|reason| Error::ModelCorrupt {
        path: path.to_path_buf(),
        reason,
    })?;
    if !mistral::SUPPORTED_ARCHITECTURES.contains(&header.architecture.as_str()) {
        return Err(Error::ModelUnsupported {
            path: path.to_path_buf(),
            architecture: header.architecture,
            supported: mistral::SUPPORTED_ARCHITECTURES.join(", "),
        });
    }
    Ok(header)
}

/// What a process that may run the engine sets first thing in `main`, while no other thread
/// exists: no backtraces for library errors, and one allocator arena.
pub fn prepare_process() {
    // RUST_BACKTRACE=1 (set by developers and CI for panics) also makes every library error
    // capture a backtrace, and mistral.rs formats one for each optional GGUF key it probes
    // while reading a tokenizer: symbolising them parsed the binary's debug info, 56 MB kept
    // for the life of the process (heaptrack, docs/PERFORMANCE.md). Panics still print theirs;
    // RUST_LIB_BACKTRACE=1 brings the errors' back.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    one_allocator_arena();
}

/// Makes glibc's allocator keep one arena for the whole process (see `prepare_process`).
/// By default every thread that allocates gets an arena of its own (up to eight per core), and
/// memory one thread frees stays resident in its arena for that thread alone: with the engine's
/// worker threads, the prefix cache's entries coming and going and the activations of each
/// turn, that kept 60–130 MB more resident in `troupe bench` on SmolLM2-135M than one
/// arena does, at the same speed (prefill, decode and first token within the run-to-run spread;
/// docs/PERFORMANCE.md, issue 24). The kernels allocate nothing in their loops, so the one
/// arena's lock is not contended.
pub fn one_allocator_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_ARENA_MAX: std::ffi::c_int = -8;
        // SAFETY: glibc's mallopt takes no pointers; called before any other thread exists.
        unsafe {
            mallopt(M_ARENA_MAX, 1);
        }
    }
}

/// Hands the memory loading freed back to the system. Loading reads, transcodes and repacks
/// tensors on every thread, and glibc keeps what those threads freed in their arenas, resident,
/// for allocations that never come (28 MB of Qwen2.5-0.5B's loaded process here: issue 24).
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes no pointers and may be called at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Whether the local engine keeps its KV cache (every layer's keys and values) in F16, as
/// llama.cpp does by default, rather than F32: half the memory, a large share of the whole at
/// the long contexts of the 1–12 B models people run (an 8 B model's 8,000 tokens: 1 GB rather
/// than 2), for perplexity within 0.1% of F32's (docs/PERFORMANCE.md, issue 24).
/// `TROUPE_KV_CACHE=f32` keeps F32, for comparisons; read at each load.
pub fn kv_cache_f16() -> bool {
    std::env::var("TROUPE_KV_CACHE").map_or(true, |v| !v.eq_ignore_ascii_case("f32"))
}

/// The most prompt tokens one forward pass of the local engine runs: a longer prompt goes
/// through in chunks of this many, as llama.cpp's micro-batches do, so the activations held at
/// once are sized to the chunk and not the prompt (the MLP's rows: 24 MB for Qwen2.5-0.5B at 621
/// tokens, over 200 MB for an 8 B model at 2,000). Prefill speed holds: a matmul over 256 rows
/// keeps the cores as busy as one over the whole prompt (docs/PERFORMANCE.md, issue 24).
/// `TROUPE_PREFILL_CHUNK=0` runs a prompt whole, for comparisons; read at each load.
pub fn prefill_chunk() -> usize {
    std::env::var("TROUPE_PREFILL_CHUNK")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(PREFILL_CHUNK)
}

const PREFILL_CHUNK: usize = 256;

/// Bytes the local engine's KV cache holds per key or value (see `kv_cache_f16`).
pub fn kv_bytes_per_value() -> u64 {
    if kv_cache_f16() {
        2
    } else {
        4
    }
}
