//! An OpenAI-compatible server as the Engine: a mistralrs-server, vLLM or llama.cpp server on a
//! GPU machine, reached over HTTP, streamed with server-sent events.
//!
//! The same contract as the local engine: text streams as it comes, dropping the Generation
//! stops the reply (the connection is closed, which these servers take as a cancel), and
//! failures are `EngineEvent::Failed` with a sentence, never a hang: a server that accepts the
//! request but sends nothing for `stall` seconds, or sends something that is not a chat stream,
//! ends the reply with what arrived so far kept (the turn marks it interrupted).
//!
//! Token counts: a remote model's tokenizer is not here, so prompts are measured with a
//! deliberately high estimate (one token per three bytes), which keeps them inside the
//! server's context.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{
    ChatMessage, ChatRole, Engine, EngineEvent, Error, FinishReason, Generation, ModelInfo,
    Sampling, Usage,
};

/// Where the server is and which model to ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// e.g. "http://gpu-box:1234/v1".
    pub base_url: String,
    pub api_key: Option<String>,
    /// The server's name for the model; empty asks the server for its first model.
    pub model: String,
    /// Context length to plan prompts for (servers do not say).
    pub context_length: usize,
    /// Seconds without data after which a reply is given up.
    pub stall: Duration,
}

impl RemoteConfig {
    pub fn new(base_url: &str) -> RemoteConfig {
        RemoteConfig {
            base_url: base_url.trim().trim_end_matches('/').to_string(),
            api_key: None,
            model: String::new(),
            context_length: 4096,
            stall: Duration::from_secs(20),
        }
    }
}

pub struct RemoteEngine {
    config: RemoteConfig,
    client: reqwest::Client,
    info: ModelInfo,
}

impl RemoteEngine {
    /// Checks the server answers (`GET /models`, within 10 s) and settles the model name.
    pub async fn connect(mut config: RemoteConfig) -> Result<RemoteEngine, Error> {
        let url = config.base_url.clone();
        let failed = |reason: String| Error::LoadFailed {
            path: url.clone().into(),
            reason,
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(failed(
                "the server address must start with http:// or https://".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let mut req = client
            .get(format!("{url}/models"))
            .timeout(Duration::from_secs(10));
        if let Some(k) = config.api_key.as_deref().filter(|k| !k.is_empty()) {
            req = req.bearer_auth(k);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| failed(format!("the server does not answer: {}", e.without_url())))?;
        if resp.status().as_u16() == 401 || resp.status().as_u16() == 403 {
            return Err(failed("the server refused the API key".into()));
        }
        if !resp.status().is_success() {
            return Err(failed(format!(
                "the server answered {} to GET /models; is this an OpenAI-compatible address (ending in /v1)?",
                resp.status().as_u16()
            )));
        }
        let models: Value = resp.json().await.map_err(|_| {
            failed(
                "the server's model list is not JSON; is this an OpenAI-compatible address?".into(),
            )
        })?;
        let ids: Vec<String> = models["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if config.model.trim().is_empty() {
            config.model = ids
                .first()
                .cloned()
                .ok_or_else(|| failed("the server lists no models; name one in Settings".into()))?;
        }
        let info = ModelInfo {
            name: config.model.clone(),
            path: url.clone().into(),
            architecture: "remote".into(),
            parameters: 0,
            quantization: "remote".into(),
            context_length: config.context_length,
            device: format!("remote · {}", host(&url)),
            layers: None,
        };
        Ok(RemoteEngine {
            config,
            client,
            info,
        })
    }
}

fn host(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or(url)
        .to_string()
}

/// One token per three bytes, plus a few per message for the template: above what real
/// tokenizers give for prose, so a prompt planned with it fits.
fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(3)
}

impl Engine for RemoteEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn count_prompt_tokens<'a>(
        &'a self,
        messages: &'a [ChatMessage],
    ) -> BoxFuture<'a, Result<usize, Error>> {
        async move {
            Ok(messages
                .iter()
                .map(|m| estimate_tokens(&m.content) + 6)
                .sum::<usize>()
                + 3)
        }
        .boxed()
    }

    fn count_tokens<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<usize, Error>> {
        async move { Ok(estimate_tokens(text)) }.boxed()
    }

    fn generate(&self, messages: Vec<ChatMessage>, sampling: Sampling) -> Generation {
        let (tx, rx) = mpsc::channel(256);
        let config = self.config.clone();
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(reason) = stream(&client, &config, &messages, &sampling, &tx).await {
                let _ = tx.send(EngineEvent::Failed(reason)).await;
            }
        });
        rx
    }
}

/// The longest line of the event stream kept while waiting for its end.
const MAX_LINE: usize = 1 << 20;

/// Sends the request and forwards the reply's stream to `tx` until `[DONE]`. `Err` is why the
/// reply failed; `Ok` also when the receiver went away (Stop: dropping the stream closes the
/// connection).
async fn stream(
    client: &reqwest::Client,
    config: &RemoteConfig,
    messages: &[ChatMessage],
    sampling: &Sampling,
    tx: &mpsc::Sender<EngineEvent>,
) -> Result<(), String> {
    let mut reply = Reply::new();
    let Some(resp) = open(client, config, messages, sampling, tx).await? else {
        return Ok(());
    };
    let mut body = resp.bytes_stream();
    let mut lines = Lines::default();
    loop {
        let next = tokio::select! {
            _ = tx.closed() => return Ok(()),
            n = tokio::time::timeout(config.stall, body.next()) => n,
        };
        let chunk = match next {
            Err(_) => {
                return Err(format!(
                    "the server stopped sending (nothing for {} s)",
                    config.stall.as_secs()
                ))
            }
            Ok(None) => return Err("the server closed the stream before the end".into()),
            Ok(Some(Err(e))) => return Err(format!("the connection broke: {}", e.without_url())),
            Ok(Some(Ok(c))) => c,
        };
        for line in lines.push(&chunk)? {
            match reply.line(line.trim())? {
                Line::Nothing => {}
                Line::Text(text) => {
                    if tx.send(EngineEvent::Text(text)).await.is_err() {
                        return Ok(());
                    }
                }
                Line::Done(finished) => {
                    let _ = tx.send(finished).await;
                    return Ok(());
                }
            }
        }
    }
}

/// Posts the request; `None` when the receiver went away meanwhile, an error when the server
/// cannot be reached, does not answer in time or answers with an error status.
async fn open(
    client: &reqwest::Client,
    config: &RemoteConfig,
    messages: &[ChatMessage],
    sampling: &Sampling,
    tx: &mpsc::Sender<EngineEvent>,
) -> Result<Option<reqwest::Response>, String> {
    let body = request_body(&config.model, messages, sampling);
    let mut req = client
        .post(format!("{}/chat/completions", config.base_url))
        .json(&body);
    if let Some(k) = config.api_key.as_deref().filter(|k| !k.is_empty()) {
        req = req.bearer_auth(k);
    }
    let send = tokio::select! {
        _ = tx.closed() => return Ok(None),
        r = tokio::time::timeout(config.stall, req.send()) => r,
    };
    let resp = match send {
        Err(_) => {
            return Err(format!(
                "the server did not answer within {} s",
                config.stall.as_secs()
            ))
        }
        Ok(Err(e)) => return Err(format!("cannot reach the server: {}", e.without_url())),
        Ok(Ok(r)) => r,
    };
    if !resp.status().is_success() {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(String::from))
            .unwrap_or_else(|| text.chars().take(200).collect());
        return Err(format!("the server answered {status}: {detail}"));
    }
    Ok(Some(resp))
}

/// The event stream cut into lines as its bytes arrive.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// Adds a chunk; returns the lines it completed.
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, String> {
        self.buf.extend_from_slice(chunk);
        // A chat chunk is a few hundred bytes; a server that sends megabytes without a line
        // end is not streaming a chat, and must not fill the memory.
        if self.buf.len() > MAX_LINE && !self.buf.contains(&b'\n') {
            return Err(format!(
                "the server sent a line of over {} MB: that is not a chat stream",
                MAX_LINE >> 20
            ));
        }
        // Server-sent events: one `data: ...` line per event.
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            out.push(String::from_utf8_lossy(&line).into_owned());
        }
        Ok(out)
    }
}

/// Reads a whole recorded event stream, `chunk` bytes at a time, as `stream` reads a server's:
/// the events it gives, or why it is not a chat stream. For the fuzz target and tests.
pub fn read_event_stream(bytes: &[u8], chunk: usize) -> Result<Vec<EngineEvent>, String> {
    let mut reply = Reply::new();
    let mut lines = Lines::default();
    let mut events = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        for line in lines.push(piece)? {
            match reply.line(line.trim())? {
                Line::Nothing => {}
                Line::Text(text) => events.push(EngineEvent::Text(text)),
                Line::Done(finished) => {
                    events.push(finished);
                    return Ok(events);
                }
            }
        }
    }
    Err("the stream ended before [DONE]".into())
}

/// A streamed reply as it arrives: timing, counts, usage and why it ended.
struct Reply {
    started: std::time::Instant,
    first: Option<f64>,
    pieces: usize,
    usage_tokens: Option<(usize, usize)>,
    finish: FinishReason,
}

/// What one line of the stream means.
enum Line {
    Nothing,
    Text(String),
    Done(EngineEvent),
}

impl Reply {
    fn new() -> Reply {
        Reply {
            started: std::time::Instant::now(),
            first: None,
            pieces: 0,
            usage_tokens: None,
            finish: FinishReason::Stop,
        }
    }

    /// Reads one line of server-sent events; `Err` when it is not a chat stream or reports a
    /// failure.
    fn line(&mut self, line: &str) -> Result<Line, String> {
        // Blank lines end events; comments, `event:`, `id:` and `retry:` are legal SSE that a
        // chat stream does not need.
        let ignored = [":", "event:", "id:", "retry:"];
        if line.is_empty() || ignored.iter().any(|p| line.starts_with(p)) {
            return Ok(Line::Nothing);
        }
        let not_a_stream = |t: &str| {
            format!(
                "the server sent something that is not a chat stream: {:?}",
                t.chars().take(80).collect::<String>()
            )
        };
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            return Err(not_a_stream(line));
        };
        if data == "[DONE]" {
            return Ok(Line::Done(self.finished()));
        }
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            return Err(not_a_stream(data));
        };
        if let Some(msg) = event["error"]["message"].as_str() {
            return Err(format!("the server failed: {msg}"));
        }
        if let (Some(p), Some(c)) = (
            event["usage"]["prompt_tokens"].as_u64(),
            event["usage"]["completion_tokens"].as_u64(),
        ) {
            self.usage_tokens = Some((p as usize, c as usize));
        }
        let choice = &event["choices"][0];
        if choice["finish_reason"].as_str() == Some("length") {
            self.finish = FinishReason::Length;
        }
        match choice["delta"]["content"]
            .as_str()
            .filter(|t| !t.is_empty())
        {
            Some(text) => {
                self.first
                    .get_or_insert_with(|| self.started.elapsed().as_secs_f64());
                self.pieces += 1;
                Ok(Line::Text(text.to_string()))
            }
            None => Ok(Line::Nothing),
        }
    }

    /// The `Finished` event, with the server's usage when it sent one, else the pieces counted.
    fn finished(&self) -> EngineEvent {
        let total = self.started.elapsed().as_secs_f64();
        let ttft = self.first.unwrap_or(total);
        let (prompt, completion) = self.usage_tokens.unwrap_or((0, self.pieces));
        EngineEvent::Finished {
            reason: self.finish,
            usage: Some(Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                prompt_seconds: ttft,
                completion_seconds: (total - ttft).max(0.0),
            }),
        }
    }
}

/// The chat completion request. Fields beyond OpenAI's (`top_k`, `min_p`,
/// `repetition_penalty`, `dry_multiplier`) are sent only when set, since strict servers reject
/// unknown ones; vLLM, llama.cpp and mistral.rs servers honour the first three, llama.cpp and
/// KoboldCpp the last.
fn request_body(model: &str, messages: &[ChatMessage], s: &Sampling) -> Value {
    let role = |r: ChatRole| match r {
        ChatRole::System => "system",
        ChatRole::User => "user",
        ChatRole::Assistant => "assistant",
    };
    let mut body = json!({
        "model": model,
        "messages": messages
            .iter()
            .map(|m| json!({"role": role(m.role), "content": m.content}))
            .collect::<Vec<_>>(),
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": s.max_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
    });
    if !s.stop.is_empty() {
        // OpenAI takes at most four stop sequences.
        body["stop"] = json!(s.stop.iter().take(4).collect::<Vec<_>>());
    }
    if let Some(seed) = s.seed {
        body["seed"] = json!(seed);
    }
    if s.top_k > 0 {
        body["top_k"] = json!(s.top_k);
    }
    if s.min_p > 0.0 {
        body["min_p"] = json!(s.min_p);
    }
    if s.repetition_penalty > 1.0 {
        body["repetition_penalty"] = json!(s.repetition_penalty);
    }
    if s.dry_multiplier > 0.0 {
        body["dry_multiplier"] = json!(s.dry_multiplier);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_sampling() {
        let s = Sampling {
            seed: Some(7),
            top_k: 40,
            stop: vec!["\nUser:".into()],
            ..Sampling::default()
        };
        let b = request_body("m", &[ChatMessage::new(ChatRole::System, "be kind")], &s);
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(b["stream"], true);
        assert_eq!(b["seed"], 7);
        assert_eq!(b["top_k"], 40);
        assert_eq!(b["stop"][0], "\nUser:");
        let plain = request_body("m", &[], &Sampling::greedy(5));
        assert!(plain.get("top_k").is_none() && plain.get("seed").is_none());
        assert_eq!(plain["max_tokens"], 5);
    }

    #[test]
    fn estimates_err_high() {
        // "Hello there, how are you?" is 7 tokens for common tokenizers.
        assert!(estimate_tokens("Hello there, how are you?") >= 7);
    }

    #[test]
    fn a_recorded_stream_reads_the_same_however_it_is_cut() {
        // The fuzz seeds (src-tauri/fuzz/seeds/event_stream; the first byte is the target's
        // chunk size): what each gives does not depend on how the network cut it.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/event_stream");
        let mut texts = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap()[1..].to_vec();
            // Timings differ run to run; the words, the end and the counts may not.
            let read = |chunk: usize| {
                format!(
                    "{:?}",
                    read_event_stream(&bytes, chunk).map(|events| {
                        events
                            .into_iter()
                            .map(|e| match e {
                                EngineEvent::Finished { reason, usage } => format!(
                                    "end {reason:?} {:?}",
                                    usage.map(|u| (u.prompt_tokens, u.completion_tokens))
                                ),
                                other => format!("{other:?}"),
                            })
                            .collect::<Vec<_>>()
                    })
                )
            };
            let whole = read(bytes.len());
            for chunk in [1, 2, 7, 64] {
                let cut = read(chunk);
                assert_eq!(cut, whole, "{} in chunks of {chunk}", path.display());
            }
            texts.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                whole,
            ));
        }
        texts.sort();
        let get = |name: &str| &texts.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(get("plain.txt").contains("Hello") && get("plain.txt").contains(", world"));
        assert!(
            get("sse-fields.txt").starts_with("Ok("),
            "{}",
            get("sse-fields.txt")
        );
        assert!(get("crlf.txt").starts_with("Ok("), "{}", get("crlf.txt"));
        assert!(get("error.txt").contains("model not loaded"));
        assert!(
            get("length.txt").contains("Length"),
            "{}",
            get("length.txt")
        );
    }
}
