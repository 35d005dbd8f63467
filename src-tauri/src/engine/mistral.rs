//! The mistral.rs backend: a local GGUF file, run in this process.
//!
//! Settings that matter on CPU (measured in docs/PERFORMANCE.md and the research notes):
//! F32 activations (mistral.rs's GGUF builder forces F16 on CPU, ~1.5x slower), the low-level
//! loader so no network is touched, and the tokenizer and chat template from the GGUF itself.
//! The binary is built for any x86-64 CPU; the vendored candle picks its SIMD kernels at run
//! time (`cpu_kernels_asked` below, docs/ARCHITECTURE.md "Builds").
//!
//! Cancelling: dropping the `Generation` receiver ends the reply at once from the caller's
//! point of view; the task here then drops the mistral.rs stream, which ends the sequence at its
//! next token, so the engine is free for the next request.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use either::Either;
use futures::future::BoxFuture;
use futures::FutureExt;
use mistralrs::core::{
    AutoDeviceMapParams, DefaultSchedulerMethod, DeviceMapSetting, GGUFLoaderBuilder,
    GGUFSpecificConfig, MistralRsBuilder, ModelDType, SchedulerConfig, TokenSource,
};
use mistralrs::{
    CustomLogitsProcessor, DType, Model, RequestBuilder, Response, SamplingParams, StopTokens,
    Tensor, TextMessageRole, TextMessages,
};
use tokio::sync::mpsc;

use super::dry::Breakers;
use super::gguf;
use super::prompt_cache;
use super::sampling::SeededSampler;
use super::{
    check_model_file, models, transcode, ChatMessage, ChatRole, Engine, EngineEvent, Error,
    FinishReason, Generation, ModelInfo, Sampling, Usage,
};

/// GGUF architectures mistral.rs 0.8 runs (its `GGUFArchitecture`, lowercased).
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "llama",
    "mistral3",
    "phi2",
    "phi3",
    "starcoder2",
    "qwen2",
    "qwen3",
    "qwen3moe",
];

pub struct MistralEngine {
    model: Arc<Model>,
    info: ModelInfo,
    /// The vocabulary's sequence breakers, for DRY.
    breakers: Arc<Breakers>,
}

impl MistralEngine {
    /// Loads the GGUF at `path`. Checks the file first (missing, damaged, unsupported), then
    /// loads on a blocking thread; a panic inside mistral.rs becomes `Error::LoadFailed`.
    ///
    /// With a `cache_dir`, a file with tensors candle runs slowly (Q5_1; off x86-64 Q4_1, Q5_0)
    /// is transcoded once into a Q8_0 copy there, which is loaded (`transcode.rs`;
    /// `TROUPE_NO_TRANSCODE=1` turns it off). `TROUPE_CPU_KERNELS=avx2|scalar` lowers candle's
    /// kernels from the best the CPU has (`ModelInfo::device` says which run). Q4_0, Q4_1, Q5_0
    /// and Q8_0 weights are repacked at load into groups of eight rows (vendored candle,
    /// `quantized/repack.rs`; `TROUPE_NO_REPACK=1` keeps the file's layout, for comparisons).
    pub async fn load(path: &Path, cache_dir: Option<&Path>) -> Result<MistralEngine, Error> {
        let header = check_model_file(path)?;
        let source = path.to_path_buf();
        // The quantised kernels are the best this CPU has (AVX-512 VNNI, else AVX2) unless
        // `TROUPE_CPU_KERNELS` lowers them: `avx2` to compare like for like with an AVX2 build
        // of another engine, `scalar` to run without SIMD as a CPU without AVX2 would.
        candle_core::quantized::set_cpu_kernels(cpu_kernels_asked());
        candle_core::quantized::set_repack_weights(std::env::var_os("TROUPE_NO_REPACK").is_none());
        mistralrs_core::set_kv_cache_f16(super::kv_cache_f16());
        mistralrs_core::set_prefill_chunk(super::prefill_chunk());
        mistralrs_core::set_prefix_cache_spill(prompt_cache::spill_files(cache_dir));
        // A model that cannot fit this machine's memory is refused now, in a sentence, instead
        // of after minutes of swapping or an out-of-memory kill.
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if let (models::Fit::WontFit, why) =
            models::fit(size, &Ok(header.clone()), &models::machine_memory())
        {
            return Err(Error::LoadFailed {
                path: source,
                reason: format!("it is too large for this machine: it {why}; choose a smaller model or a remote server"),
            });
        }
        // Without a vocabulary in the file DRY has no breakers: runs are then never cut, which
        // is stricter but still correct.
        let breakers = Arc::new(Breakers::from_vocabulary(
            &gguf::read_vocabulary(path).unwrap_or_default(),
        ));
        let (path, quantization) = runnable_copy(&source, cache_dir, &header.quantization).await;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let load_failed = |reason: String| Error::LoadFailed {
            path: source.clone(),
            reason,
        };

        let device = device().map_err(load_failed)?;
        let device_for_load = device.clone();
        // An existing local directory as model id keeps mistral.rs off the network.
        let loader = GGUFLoaderBuilder::new(
            None,
            None,
            dir.to_string_lossy().into_owned(),
            vec![file.clone()],
            GGUFSpecificConfig::default(),
            false,
            None,
        )
        .build();
        let pipeline = tokio::task::spawn_blocking(move || {
            loader.load_model_from_hf(
                None,
                TokenSource::None,
                &ModelDType::F32,
                &device_for_load,
                true,
                DeviceMapSetting::Auto(AutoDeviceMapParams::default_text()),
                None,
                None,
            )
        })
        .await
        .map_err(|e| load_failed(panic_message(e)))?
        .map_err(|e| load_failed(format!("{e:#}")))?;

        let scheduler = SchedulerConfig::DefaultScheduler {
            method: DefaultSchedulerMethod::Fixed(NonZeroUsize::new(4).expect("4 is not zero")),
        };
        // `build` runs a one-token warm-up; spawning keeps a panic there from taking us down.
        let runner = tokio::spawn(async move {
            MistralRsBuilder::new(pipeline, scheduler, false, None)
                .with_prefix_cache_n(prompt_cache::entries())
                .build()
                .await
        })
        .await
        .map_err(|e| load_failed(panic_message(e)))?;
        let model = Model::new(runner);
        super::release_freed_memory();

        let context_length = model
            .max_sequence_length()
            .ok()
            .flatten()
            .or(header.context_length.map(|c| c as usize))
            .unwrap_or(2048);
        let info = ModelInfo {
            name: source
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            path: source,
            architecture: header.architecture,
            parameters: header.n_params,
            quantization,
            context_length,
            layers: header
                .layers
                .map(|n| format!("all {n} layers on {}", where_(&device))),
            device: device_label(&device),
        };
        Ok(MistralEngine {
            model: Arc::new(model),
            info,
            breakers,
        })
    }
}

/// The SIMD-friendly copy of `source` in `cache_dir`, made now if missing; `None` when the file
/// needs none.
async fn fast_copy(source: &Path, cache_dir: &Path) -> Result<Option<std::path::PathBuf>, String> {
    let source = source.to_path_buf();
    let cache_dir = cache_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        if transcode::slow_tensor_types(&source)?.is_empty() {
            transcode::remove_copies(&source, &cache_dir);
            return Ok(None);
        }
        let dest = transcode::cached_path(&source, &cache_dir)?;
        if !dest.is_file() {
            let started = Instant::now();
            let done = transcode::transcode(&source, &dest, |_, _| {})?;
            transcode::remove_older_copies(&source, &dest);
            tracing::info!(
                "transcoded {} tensors of {} to Q8_0 in {:.1} s",
                done.tensors_converted,
                source.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(Some(dest))
    })
    .await
    .map_err(|e| e.to_string())?
}

fn device() -> Result<mistralrs::Device, String> {
    if cfg!(any(feature = "cuda", feature = "metal")) {
        mistralrs::best_device(false).map_err(|e| e.to_string())
    } else {
        Ok(mistralrs::Device::Cpu)
    }
}

fn where_(device: &mistralrs::Device) -> &'static str {
    match device {
        mistralrs::Device::Cpu => "the CPU",
        _ if cfg!(any(feature = "cuda", feature = "metal")) => {
            "the GPU (mapped automatically; layers that do not fit stay on the CPU)"
        }
        _ => "the GPU",
    }
}

/// The kernel level `TROUPE_CPU_KERNELS` asks for (`best`, `avx2` or `scalar`); unset, the
/// best there is. An unknown value is warned about (on stderr) and runs the best kernels.
fn cpu_kernels_asked() -> candle_core::quantized::CpuKernels {
    use candle_core::quantized::CpuKernels;
    match std::env::var("TROUPE_CPU_KERNELS").as_deref() {
        Ok("scalar") => CpuKernels::Scalar,
        Ok("avx2") => CpuKernels::Avx2,
        Ok("best") | Ok("") | Err(_) => CpuKernels::Avx512Vnni,
        Ok(other) => {
            tracing::warn!(
                "TROUPE_CPU_KERNELS={other} is not one of best, avx2, scalar: running the best \
                 kernels this CPU has"
            );
            CpuKernels::Avx512Vnni
        }
    }
}

fn device_label(device: &mistralrs::Device) -> String {
    match device {
        mistralrs::Device::Cpu => match candle_core::quantized::simd_kernels() {
            Some(simd) => format!("CPU ({simd})"),
            None => "CPU (scalar kernels: slow)".into(),
        },
        mistralrs::Device::Cuda(_) => "CUDA GPU".into(),
        mistralrs::Device::Metal(_) => "Metal GPU".into(),
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the loader crashed".into()),
        Err(e) => e.to_string(),
    }
}

fn text_messages(messages: &[ChatMessage]) -> TextMessages {
    messages.iter().fold(TextMessages::new(), |m, msg| {
        m.add_message(role(msg.role), &msg.content)
    })
}

fn role(r: ChatRole) -> TextMessageRole {
    match r {
        ChatRole::System => TextMessageRole::System,
        ChatRole::User => TextMessageRole::User,
        ChatRole::Assistant => TextMessageRole::Assistant,
    }
}

impl MistralEngine {
    /// `messages` through the model's chat template and tokenizer, generation prompt included.
    async fn chat_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, Error> {
        self.model
            .tokenize(
                Either::Left(text_messages(messages)),
                None,
                true,
                true,
                None,
            )
            .await
            .map_err(|e| Error::Backend(e.to_string()))
    }
}

/// How well the model predicts a text: each token's negative log-likelihood (natural log) given
/// the tokens before it in its window. Perplexity is `exp` of their mean.
#[derive(Debug, Clone)]
pub struct TextScore {
    pub nll: Vec<f64>,
    /// Windows the text was cut into, each after its own BOS.
    pub windows: usize,
}

impl TextScore {
    pub fn perplexity(&self) -> f64 {
        (self.nll.iter().sum::<f64>() / self.nll.len().max(1) as f64).exp()
    }
}

impl MistralEngine {
    /// Scores the first `max_tokens` tokens of `text` (all of it if `None`) in windows of
    /// `window` tokens, each one forward pass after a BOS with the engine's raw logits, so every
    /// token but the BOS is predicted. The log-softmax is taken in f64.
    ///
    /// This is how `troupe bench --perplexity` compares quantisations, and how the test of the
    /// vendored patches compares Troupe's engine with upstream's (`tests/engine-ab/`, which
    /// scores the same way). Raw-logit requests bypass the prefix cache (a vendored patch), so
    /// the chats before it do not shorten a window.
    pub async fn score_text(
        &self,
        text: &str,
        window: usize,
        max_tokens: Option<usize>,
    ) -> Result<TextScore, Error> {
        use mistralrs::{Constraint, NormalRequest, Request, RequestMessage, ResponseOk};
        let backend = |e: String| Error::Backend(e);
        let mut tokens = self
            .model
            .tokenize(Either::Right(text.to_string()), None, false, false, None)
            .await
            .map_err(|e| backend(e.to_string()))?;
        if let Some(n) = max_tokens {
            tokens.truncate(n);
        }
        if tokens.is_empty() || window == 0 {
            return Err(backend("there is no text to score".into()));
        }
        let bos = *self
            .model
            .tokenize(Either::Right(" ".to_string()), None, true, false, None)
            .await
            .map_err(|e| backend(e.to_string()))?
            .first()
            .ok_or_else(|| backend("the tokenizer gave no BOS token".into()))?;
        let mut nll = Vec::with_capacity(tokens.len());
        let mut windows = 0;
        for part in tokens.chunks(window) {
            let chunk = [&[bos], part].concat();
            let (tx, mut rx) = mpsc::channel(1);
            let request = Request::Normal(Box::new(NormalRequest {
                messages: RequestMessage::CompletionTokens(chunk.clone()),
                sampling_params: SamplingParams {
                    max_len: Some(0),
                    ..SamplingParams::deterministic()
                },
                response: tx,
                return_logprobs: false,
                is_streaming: false,
                id: 0,
                constraint: Constraint::None,
                suffix: None,
                tools: None,
                tool_choice: None,
                logits_processors: None,
                return_raw_logits: true,
                web_search_options: None,
                model_id: None,
                truncate_sequence: false,
            }));
            let sender = self
                .model
                .inner()
                .get_sender(None)
                .map_err(|e| backend(e.to_string()))?;
            sender
                .send(request)
                .await
                .map_err(|_| backend("the engine is not running".into()))?;
            let response = rx
                .recv()
                .await
                .ok_or_else(|| backend("the engine closed the channel".into()))?
                .as_result()
                .map_err(|e| backend(e.to_string()))?;
            let ResponseOk::Raw { logits_chunks, .. } = response else {
                return Err(backend("the engine sent no raw logits".into()));
            };
            let mut rows: Vec<Vec<f32>> = Vec::with_capacity(chunk.len());
            for t in &logits_chunks {
                rows.extend(
                    t.to_dtype(DType::F32)
                        .and_then(|t| t.to_vec2::<f32>())
                        .map_err(|e| backend(e.to_string()))?,
                );
            }
            if rows.len() != chunk.len() {
                return Err(backend(format!(
                    "{} rows of logits for {} tokens",
                    rows.len(),
                    chunk.len()
                )));
            }
            // Row i predicts token i + 1.
            nll.extend(rows.iter().zip(&chunk[1..]).map(|(row, &t)| {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
                let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
                max + sum.ln() - row[t as usize] as f64
            }));
            windows += 1;
        }
        Ok(TextScore { nll, windows })
    }
}

impl Engine for MistralEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn count_prompt_tokens<'a>(
        &'a self,
        messages: &'a [ChatMessage],
    ) -> BoxFuture<'a, Result<usize, Error>> {
        async move { Ok(self.chat_tokens(messages).await?.len()) }.boxed()
    }

    fn render_prompt<'a>(
        &'a self,
        messages: &'a [ChatMessage],
    ) -> BoxFuture<'a, Result<super::RenderedPrompt, Error>> {
        async move {
            let toks = self.chat_tokens(messages).await?;
            let tokens = toks.len();
            let text = self
                .model
                .detokenize(toks, false)
                .await
                .map_err(|e| Error::Backend(e.to_string()))?;
            Ok(super::RenderedPrompt {
                text,
                tokens,
                exact: true,
            })
        }
        .boxed()
    }

    fn count_tokens<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<usize, Error>> {
        async move {
            let toks = self
                .model
                .tokenize(Either::Right(text.to_string()), None, false, false, None)
                .await
                .map_err(|e| Error::Backend(e.to_string()))?;
            Ok(toks.len())
        }
        .boxed()
    }

    fn generate(&self, messages: Vec<ChatMessage>, sampling: Sampling) -> Generation {
        let (tx, rx) = mpsc::channel(256);
        let model = self.model.clone();
        let breakers = self.breakers.clone();
        tokio::spawn(async move {
            let breakers = with_names(&model, breakers, &sampling.dry_names).await;
            // Our processor applies the repetition penalty over its window and picks the token
            // (sampling.rs); mistral.rs's own step, an argmax, takes it.
            let mut params = SamplingParams::neutral();
            // Temperature 0 makes mistral.rs's own step an argmax (left unset it means 1.0 and
            // mistral.rs samples with its own generator).
            params.temperature = Some(0.0);
            params.max_len = Some(sampling.max_tokens);
            if !sampling.stop.is_empty() {
                params.stop_toks = Some(StopTokens::Seqs(sampling.stop.clone()));
            }
            let mut request = messages
                .iter()
                .fold(RequestBuilder::new(), |r, m| {
                    r.add_message(role(m.role), &m.content)
                })
                .set_sampling(params);
            if !sampling.is_greedy()
                || sampling.repetition_penalty > 1.0
                || sampling.dry_multiplier > 0.0
            {
                request = request.add_logits_processor(Arc::new(Pick::new(&sampling, breakers)));
            }

            let started = Instant::now();
            let mut stream = match model.stream_chat_request(request).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(EngineEvent::Failed(e.to_string())).await;
                    return;
                }
            };
            let mut first_token: Option<f64> = None;
            let mut n_chunks = 0usize;
            loop {
                let next = tokio::select! {
                    _ = tx.closed() => None,
                    r = stream.next() => Some(r),
                };
                let Some(response) = next else {
                    // The caller dropped the Generation. Dropping the stream makes mistral.rs
                    // cancel the sequence at its next token. (Not `TerminateAllSeqsNextStep`:
                    // that flag is global and, when no sequence is left to end, it kills the
                    // next request instead.)
                    return;
                };
                let event = match response {
                    None => EngineEvent::Failed("the engine closed the stream".into()),
                    Some(Response::Chunk(chunk)) => {
                        let Some(choice) = chunk.choices.into_iter().next() else {
                            continue;
                        };
                        if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                            first_token.get_or_insert_with(|| started.elapsed().as_secs_f64());
                            n_chunks += 1;
                            if tx.send(EngineEvent::Text(text)).await.is_err() {
                                continue; // handled by `tx.closed()` on the next turn
                            }
                        }
                        match choice.finish_reason.as_deref() {
                            None => continue,
                            Some("length") => finished(
                                FinishReason::Length,
                                chunk.usage,
                                first_token,
                                n_chunks,
                                started,
                            ),
                            Some("canceled") => {
                                EngineEvent::Failed("the engine cancelled the reply".into())
                            }
                            Some(_) => finished(
                                FinishReason::Stop,
                                chunk.usage,
                                first_token,
                                n_chunks,
                                started,
                            ),
                        }
                    }
                    Some(Response::Done(done)) => {
                        let reason =
                            ended_by(done.choices.first().map(|c| c.finish_reason.as_str()));
                        finished(reason, Some(done.usage), first_token, n_chunks, started)
                    }
                    Some(Response::ModelError(msg, _)) => EngineEvent::Failed(msg),
                    Some(Response::InternalError(e)) | Some(Response::ValidationError(e)) => {
                        EngineEvent::Failed(e.to_string())
                    }
                    Some(_) => EngineEvent::Failed("unexpected response from the engine".into()),
                };
                let _ = tx.send(event).await;
                return;
            }
        });
        rx
    }

    fn completes_text(&self) -> bool {
        true
    }

    fn complete(&self, prompt: String, sampling: Sampling) -> Generation {
        self.complete_text(prompt, sampling)
    }
}

impl MistralEngine {
    /// `Engine::complete`: the prompt as plain text, continued with the same sampler as a chat.
    fn complete_text(&self, prompt: String, sampling: Sampling) -> Generation {
        use mistralrs::core::{Constraint, NormalRequest, Request, RequestMessage};
        let (tx, rx) = mpsc::channel(256);
        let model = self.model.clone();
        let processor: Arc<dyn CustomLogitsProcessor> =
            Arc::new(Pick::new(&sampling, self.breakers.clone()));
        tokio::spawn(async move {
            let mut params = SamplingParams::neutral();
            params.temperature = Some(0.0);
            params.max_len = Some(sampling.max_tokens);
            if !sampling.stop.is_empty() {
                params.stop_toks = Some(StopTokens::Seqs(sampling.stop.clone()));
            }
            let (responses, mut stream) = mpsc::channel(16);
            let request = Request::Normal(Box::new(NormalRequest {
                messages: RequestMessage::Completion {
                    text: prompt,
                    echo_prompt: false,
                    best_of: None,
                },
                is_streaming: true,
                constraint: Constraint::None,
                logits_processors: Some(vec![processor]),
                ..NormalRequest::new_simple(
                    RequestMessage::CompletionTokens(vec![]),
                    params,
                    responses,
                    0,
                    None,
                    None,
                )
            }));
            let sent = match model.inner().get_sender(None) {
                Ok(sender) => sender.send(request).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = sent {
                let _ = tx.send(EngineEvent::Failed(e)).await;
                return;
            }
            let started = Instant::now();
            let (mut first_token, mut n_chunks) = (None, 0usize);
            loop {
                let next = tokio::select! {
                    _ = tx.closed() => return, // dropping `stream` ends the sequence
                    r = stream.recv() => r,
                };
                let event = match next {
                    None => EngineEvent::Failed("the engine closed the stream".into()),
                    Some(Response::CompletionChunk(chunk)) => {
                        let Some(choice) = chunk.choices.into_iter().next() else {
                            continue;
                        };
                        if !choice.text.is_empty() {
                            first_token.get_or_insert_with(|| started.elapsed().as_secs_f64());
                            n_chunks += 1;
                            let _ = tx.send(EngineEvent::Text(choice.text)).await;
                        }
                        let reason = match choice.finish_reason.as_deref() {
                            None => continue,
                            Some("length") => FinishReason::Length,
                            Some(_) => FinishReason::Stop,
                        };
                        finished(reason, None, first_token, n_chunks, started)
                    }
                    Some(Response::CompletionDone(done)) => {
                        let reason =
                            ended_by(done.choices.first().map(|c| c.finish_reason.as_str()));
                        finished(reason, Some(done.usage), first_token, n_chunks, started)
                    }
                    Some(Response::CompletionModelError(msg, _)) => EngineEvent::Failed(msg),
                    Some(Response::InternalError(e)) | Some(Response::ValidationError(e)) => {
                        EngineEvent::Failed(e.to_string())
                    }
                    Some(_) => EngineEvent::Failed("unexpected response from the engine".into()),
                };
                let _ = tx.send(event).await;
                return;
            }
        });
        rx
    }
}

/// Our sampler as a mistral.rs logits processor: every token but the chosen one is ruled out.
/// The repetition penalty over its window, DRY, then our sampler's choice (none when greedy:
/// then mistral.rs's argmax picks from the penalised logits).
struct Pick {
    penalty: f32,
    window: usize,
    dry: f32,
    breakers: Arc<Breakers>,
    sampler: Option<SeededSampler>,
}

impl Pick {
    fn new(s: &Sampling, breakers: Arc<Breakers>) -> Pick {
        Pick {
            penalty: s.repetition_penalty.max(1.0) as f32,
            window: s.repetition_window,
            dry: s.dry_multiplier as f32,
            breakers,
            sampler: (!s.is_greedy()).then(|| SeededSampler::new(s)),
        }
    }
}

impl CustomLogitsProcessor for Pick {
    fn apply(&self, logits: &Tensor, context: &[u32]) -> mistralrs::Result<Tensor> {
        let mut v: Vec<f32> = logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        super::sampling::penalize(&mut v, context, self.penalty, self.window);
        super::dry::penalize(&mut v, context, self.dry, &self.breakers);
        let out = match &self.sampler {
            Some(sampler) => {
                let chosen = sampler.choose(&v);
                let mut only = vec![f32::NEG_INFINITY; v.len()];
                only[chosen] = 0.0;
                only
            }
            None => v,
        };
        Tensor::from_vec(out, logits.shape(), logits.device())?.to_dtype(logits.dtype())
    }
}

/// `breakers` with the tokens of `names` (as written alone and after a space), so DRY lets
/// the model write a name it has seen many times in full (a group's labels).
async fn with_names(model: &Model, breakers: Arc<Breakers>, names: &[String]) -> Arc<Breakers> {
    if names.is_empty() {
        return breakers;
    }
    let mut tokens = Vec::new();
    for name in names {
        for text in [name.clone(), format!(" {name}")] {
            if let Ok(t) = model
                .tokenize(Either::Right(text), None, false, false, None)
                .await
            {
                tokens.extend(t);
            }
        }
    }
    Arc::new(breakers.with(&tokens))
}

/// mistral.rs's finish reason in our terms: "length" ran out of tokens, anything else ended.
fn ended_by(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

/// The end-of-reply event. mistral.rs's usage counts the prompt time of a prefix-cache hit as if
/// the whole prompt were prefilled, so when it is missing or odd we fall back to our own clock.
fn finished(
    reason: FinishReason,
    usage: Option<mistralrs::core::Usage>,
    first_token: Option<f64>,
    n_chunks: usize,
    started: Instant,
) -> EngineEvent {
    let total = started.elapsed().as_secs_f64();
    let ttft = first_token.unwrap_or(total);
    let usage = Some(match usage {
        Some(u) => Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            prompt_seconds: ttft,
            completion_seconds: (total - ttft).max(0.0),
        },
        None => Usage {
            prompt_tokens: 0,
            completion_tokens: n_chunks,
            prompt_seconds: ttft,
            completion_seconds: (total - ttft).max(0.0),
        },
    });
    EngineEvent::Finished { reason, usage }
}

/// The file to run and its quantisation as shown: a Q8_0 copy of a slow file (`transcode`) from
/// the cache (made on first use; `TROUPE_NO_TRANSCODE` turns it off), else the file itself.
async fn runnable_copy(
    source: &Path,
    cache_dir: Option<&Path>,
    quantization: &str,
) -> (PathBuf, String) {
    let Some(dir) = cache_dir.filter(|_| std::env::var_os("TROUPE_NO_TRANSCODE").is_none()) else {
        return (source.to_path_buf(), quantization.to_string());
    };
    match fast_copy(source, dir).await {
        Ok(Some(copy)) => (copy, format!("{quantization} → Q8_0")),
        Ok(None) => (source.to_path_buf(), quantization.to_string()),
        Err(reason) => {
            // Slow is better than nothing: run the original file.
            tracing::warn!("could not transcode {}: {reason}", source.display());
            (source.to_path_buf(), quantization.to_string())
        }
    }
}
