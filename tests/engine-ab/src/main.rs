//! One side of the engine A/B (issue 6, "quality unchanged"). `.ci/engine-ab.sh` builds this
//! program twice: against upstream mistral.rs 0.8.1 and candle 0.10.2 as published, and with
//! Troupe's vendored patches. Both builds load one GGUF the way Troupe does (F32 activations,
//! the GGUF's own tokenizer and chat template, no network) and print, as JSON:
//!
//! - the greedy reply (temperature 0, so mistral.rs's step is an argmax, as in Troupe) to each
//!   chat of `prompts.json`, Troupe's own prompts for its built-in Characters;
//! - the perplexity of a fixed text (RoleBench questions and reference answers, from the shared
//!   fixtures) and each token's negative log-likelihood, from the raw logits, one forward pass
//!   per window of 1,024 tokens.
//!
//! The upstream build's output is kept as `upstream-reference.json`; `tests/engine.rs` checks
//! Troupe's engine against it on every test run, and the patched build's output shows that this
//! program and that test agree.
//!
//! The prefix cache is off: this compares the engines' arithmetic, not their caches.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use either::Either;
use mistralrs::core::{
    AutoDeviceMapParams, DefaultSchedulerMethod, DeviceMapSetting, GGUFLoaderBuilder,
    GGUFSpecificConfig, MistralRsBuilder, ModelDType, SchedulerConfig, TokenSource,
};
use mistralrs::{
    Constraint, Device, Model, NormalRequest, Request, RequestBuilder, RequestMessage, ResponseOk,
    SamplingParams, TextMessageRole,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Prompt {
    name: String,
    messages: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: engine-ab --model FILE.gguf --prompts prompts.json --text rolebench.jsonl \
         [--max-tokens 48] [--text-tokens 4096] [--window 1024]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut model_path = None;
    let mut prompts_path = None;
    let mut text_path = None;
    let mut max_tokens = 48usize;
    let mut text_tokens = 4096usize;
    let mut window = 1024usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--model" => model_path = Some(PathBuf::from(value())),
            "--prompts" => prompts_path = Some(PathBuf::from(value())),
            "--text" => text_path = Some(PathBuf::from(value())),
            "--max-tokens" => max_tokens = value().parse()?,
            "--text-tokens" => text_tokens = value().parse()?,
            "--window" => window = value().parse()?,
            _ => usage(),
        }
    }
    let (Some(model_path), Some(prompts_path), Some(text_path)) =
        (model_path, prompts_path, text_path)
    else {
        usage()
    };
    let prompts: Vec<Prompt> = serde_json::from_str(
        &std::fs::read_to_string(&prompts_path)
            .with_context(|| format!("cannot read {}", prompts_path.display()))?,
    )?;
    let text = fixed_text(&std::fs::read_to_string(&text_path)?)?;

    let model = load(&model_path).await?;

    let mut replies = Vec::new();
    for p in &prompts {
        let mut params = SamplingParams::neutral();
        params.temperature = Some(0.0);
        params.max_len = Some(max_tokens);
        let request = p
            .messages
            .iter()
            .fold(RequestBuilder::new(), |r, m| {
                r.add_message(role(&m.role), &m.content)
            })
            .set_sampling(params);
        let response = model.send_chat_request(request).await?;
        let reply = response
            .choices
            .first()
            .and_then(|c| c.message.content.clone())
            .unwrap_or_default();
        eprintln!("{}: {reply:?}", p.name);
        replies.push(serde_json::json!({ "name": p.name, "reply": reply }));
    }

    let (tokens, nll) = negative_log_likelihoods(&model, &text, text_tokens, window).await?;
    let mean = nll.iter().sum::<f64>() / nll.len() as f64;
    let perplexity = mean.exp();
    eprintln!(
        "perplexity {perplexity:.4} over {} predicted tokens",
        nll.len()
    );
    let out = serde_json::json!({
        "model": model_path.file_name().map(|f| f.to_string_lossy().into_owned()),
        "max_tokens": max_tokens,
        "replies": replies,
        "text_tokens": tokens,
        "window": window,
        "perplexity": perplexity,
        // Rounded so the file stays small; 1e-5 is far below any difference that matters.
        "nll": nll.iter().map(|x| (x * 1e5).round() / 1e5).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// The fixed text: each RoleBench line's question and first reference answer, in file order,
/// for the first 200 lines. `tests/engine.rs` builds the same text the same way.
fn fixed_text(jsonl: &str) -> Result<String> {
    let mut text = String::new();
    for line in jsonl.lines().take(200) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let q = v["question"].as_str().context("a line without question")?;
        let a = v["generated"][0]
            .as_str()
            .context("a line without an answer")?;
        text.push_str(&format!("{q}\n{a}\n\n"));
    }
    Ok(text)
}

fn role(r: &str) -> TextMessageRole {
    match r {
        "system" => TextMessageRole::System,
        "assistant" => TextMessageRole::Assistant,
        _ => TextMessageRole::User,
    }
}

/// Loads as `src-tauri/src/engine/mistral.rs` does, prefix cache off.
async fn load(path: &std::path::Path) -> Result<Model> {
    let dir = path
        .parent()
        .context("no parent")?
        .to_string_lossy()
        .into_owned();
    let file = path
        .file_name()
        .context("no file name")?
        .to_string_lossy()
        .into_owned();
    let loader = GGUFLoaderBuilder::new(
        None,
        None,
        dir,
        vec![file],
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
            &Device::Cpu,
            true,
            DeviceMapSetting::Auto(AutoDeviceMapParams::default_text()),
            None,
            None,
        )
    })
    .await??;
    let scheduler = SchedulerConfig::DefaultScheduler {
        method: DefaultSchedulerMethod::Fixed(NonZeroUsize::new(4).expect("4 is not zero")),
    };
    let runner = MistralRsBuilder::new(pipeline, scheduler, false, None)
        .with_prefix_cache_n(0)
        .build()
        .await;
    Ok(Model::new(runner))
}

/// The first `n` tokens of `text`, in windows of `window` tokens each after a BOS, each window
/// through one forward pass with raw logits: every token's negative log-likelihood given those
/// before it in its window (log-softmax in f64). `MistralEngine::score_text` does the same.
async fn negative_log_likelihoods(
    model: &Model,
    text: &str,
    n: usize,
    window: usize,
) -> Result<(usize, Vec<f64>)> {
    let mut tokens = model
        .tokenize(Either::Right(text.to_string()), None, false, false, None)
        .await?;
    if tokens.len() < n {
        bail!("the text has {} tokens, fewer than {n}", tokens.len());
    }
    tokens.truncate(n);
    let bos = model
        .tokenize(Either::Right(" ".to_string()), None, true, false, None)
        .await?[0];
    let mut nll = Vec::with_capacity(n);
    for part in tokens.chunks(window) {
        let chunk = [&[bos], part].concat();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
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
        model.inner().get_sender(None)?.send(request).await?;
        let ResponseOk::Raw { logits_chunks, .. } = rx
            .recv()
            .await
            .context("the engine closed the channel")?
            .as_result()?
        else {
            bail!("the engine sent something other than raw logits")
        };
        let rows: Vec<Vec<f32>> = logits_chunks
            .iter()
            .map(|t| t.to_dtype(mistralrs::DType::F32)?.to_vec2::<f32>())
            .collect::<std::result::Result<Vec<_>, _>>()?
            .concat();
        if rows.len() != chunk.len() {
            bail!("{} rows of logits for {} tokens", rows.len(), chunk.len());
        }
        // Row i predicts token i + 1.
        nll.extend(
            rows[..rows.len() - 1]
                .iter()
                .zip(&chunk[1..])
                .map(|(row, &t)| {
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
                    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
                    max + sum.ln() - row[t as usize] as f64
                }),
        );
    }
    Ok((n, nll))
}
