//! OpenAI's protocol, as JSON: reading a request into the core's `ApiChat` (every field checked,
//! every problem a sentence naming the field), and the shapes of replies, stream chunks and
//! errors (`{"error": {"message", "type", "param", "code"}}` with the status OpenAI would use).
//! No I/O here: `reply` does the talking.

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use crate::app::vocabulary::{ChatMessage, ChatRole, Scenario};
use crate::app::{ApiChat, ApiError, ApiReply, ApiSampling, RETRY_AFTER_S};

/// Most messages one request may hold.
pub const MAX_MESSAGES: usize = 2000;
/// Most tokens a reply may be asked for.
pub const MAX_REPLY_TOKENS: usize = 4096;

/// A refusal or failure, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub code: &'static str,
    pub param: Option<&'static str>,
    /// Seconds, for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl WireError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> WireError {
        let kind = match status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => "server_busy",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        };
        WireError {
            status,
            message: message.into(),
            kind,
            code,
            param: None,
            retry_after: None,
        }
    }

    /// A request field that is wrong.
    pub fn field(param: &'static str, message: impl Into<String>) -> WireError {
        WireError {
            param: Some(param),
            ..WireError::new(StatusCode::BAD_REQUEST, "invalid_value", message)
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl From<ApiError> for WireError {
    fn from(e: ApiError) -> WireError {
        let message = e.to_string();
        match e {
            ApiError::UnknownModel(_) => WireError {
                param: Some("model"),
                ..WireError::new(StatusCode::NOT_FOUND, "model_not_found", message)
            },
            ApiError::Invalid(_) => {
                WireError::new(StatusCode::BAD_REQUEST, "invalid_value", message)
            }
            ApiError::ContextLength(_) => WireError {
                param: Some("messages"),
                ..WireError::new(StatusCode::BAD_REQUEST, "context_length_exceeded", message)
            },
            ApiError::Busy { .. } => WireError {
                retry_after: Some(RETRY_AFTER_S),
                ..WireError::new(StatusCode::SERVICE_UNAVAILABLE, "queue_full", message)
            },
            ApiError::NotReady(_) => WireError {
                retry_after: Some(RETRY_AFTER_S),
                ..WireError::new(StatusCode::SERVICE_UNAVAILABLE, "model_not_ready", message)
            },
            ApiError::SessionBusy(_) => {
                WireError::new(StatusCode::CONFLICT, "session_busy", message)
            }
            ApiError::NotFound(_) => WireError::new(StatusCode::NOT_FOUND, "not_found", message),
            ApiError::Internal(_) | ApiError::Gone => {
                WireError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
            }
        }
    }
}

/// A chat request's body, read.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub chat: ApiChat,
    pub stream: bool,
    pub include_usage: bool,
}

/// A completion request's body, read.
#[derive(Debug, Clone, Default)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: String,
    pub sampling: ApiSampling,
    pub stream: bool,
    pub include_usage: bool,
}

/// The body as a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, WireError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        WireError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    match value {
        Value::Object(o) => Ok(o),
        _ => Err(WireError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body must be a JSON object",
        )),
    }
}

/// Reads `/v1/chat/completions`' body. `session_header` is `X-Troupe-Session`, if sent.
pub fn chat_request(body: &[u8], session_header: Option<&str>) -> Result<ChatRequest, WireError> {
    let o = object(body)?;
    refuse_unsupported(&o)?;
    let messages = match o.get("messages") {
        Some(Value::Array(list)) => list,
        Some(_) => return Err(WireError::field("messages", "messages must be an array")),
        None => return Err(WireError::field("messages", "messages is required")),
    };
    if messages.len() > MAX_MESSAGES {
        return Err(WireError::field(
            "messages",
            format!(
                "{} messages is more than the {MAX_MESSAGES} one request may hold",
                messages.len()
            ),
        ));
    }
    let messages = messages
        .iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let troupe = troupe_fields(&o, session_header)?;
    Ok(ChatRequest {
        chat: ApiChat {
            model: model(&o)?,
            messages,
            scenario: troupe.scenario,
            persona: troupe.persona,
            session: troupe.session,
            sampling: sampling(&o)?,
        },
        stream: flag(&o, "stream")?,
        include_usage: include_usage(&o)?,
    })
}

/// Reads `/v1/completions`' body.
pub fn completion_request(body: &[u8]) -> Result<CompletionRequest, WireError> {
    let o = object(body)?;
    refuse_unsupported(&o)?;
    let prompt = match o.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or_default().to_string()
        }
        Some(Value::Array(_)) => {
            return Err(WireError::field(
                "prompt",
                "one prompt per request: send a string",
            ))
        }
        Some(_) => return Err(WireError::field("prompt", "prompt must be a string")),
        None => return Err(WireError::field("prompt", "prompt is required")),
    };
    if prompt.is_empty() {
        return Err(WireError::field("prompt", "prompt is empty"));
    }
    Ok(CompletionRequest {
        model: model(&o)?,
        prompt,
        sampling: sampling(&o)?,
        stream: flag(&o, "stream")?,
        include_usage: include_usage(&o)?,
    })
}

fn model(o: &Map<String, Value>) -> Result<String, WireError> {
    match o.get("model") {
        Some(Value::String(m)) if !m.is_empty() => Ok(m.clone()),
        _ => Err(WireError::field(
            "model",
            "model is required: the loaded model or troupe/<character id> (GET /v1/models lists them)",
        )),
    }
}

/// What this server cannot do, said rather than ignored: several choices, tools, audio.
fn refuse_unsupported(o: &Map<String, Value>) -> Result<(), WireError> {
    match o.get("n") {
        None | Some(Value::Null) => {}
        Some(n) if n.as_u64() == Some(1) => {}
        Some(_) => {
            return Err(WireError::field(
                "n",
                "n must be 1: one reply per request (send the request again for another)",
            ))
        }
    }
    if o.get("best_of")
        .and_then(Value::as_u64)
        .is_some_and(|b| b > 1)
    {
        return Err(WireError::field("best_of", "best_of must be 1"));
    }
    if o.get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
    {
        return Err(WireError::field("tools", "this server does not call tools"));
    }
    if o.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(WireError::field("logprobs", "logprobs are not available"));
    }
    Ok(())
}

/// One message: a role Troupe knows and text (a string, or text parts).
fn message(i: usize, m: &Value) -> Result<ChatMessage, WireError> {
    let role = match m.get("role").and_then(Value::as_str) {
        Some("user") => ChatRole::User,
        Some("assistant") => ChatRole::Assistant,
        // OpenAI's newer name for the system role.
        Some("system") | Some("developer") => ChatRole::System,
        Some(other) => {
            return Err(WireError::field(
                "messages",
                format!(
                    "messages[{i}].role '{other}' is not one of system, developer, user, assistant"
                ),
            ))
        }
        None => {
            return Err(WireError::field(
                "messages",
                format!("messages[{i}] has no role"),
            ))
        }
    };
    let content = match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None if role == ChatRole::Assistant => String::new(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for p in parts {
                match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => text.push_str(t),
                    (kind, _) => {
                        return Err(WireError::field(
                            "messages",
                            format!(
                                "messages[{i}] has a '{}' part: only text is understood",
                                kind.unwrap_or("?")
                            ),
                        ))
                    }
                }
            }
            text
        }
        _ => {
            return Err(WireError::field(
                "messages",
                format!("messages[{i}].content must be a string"),
            ))
        }
    };
    Ok(ChatMessage { role, content })
}

/// Troupe's own fields: the `troupe` object (`scenario`, `persona`, `session`) or the
/// `X-Troupe-Session` header.
/// What `troupe_fields` read.
struct TroupeFields {
    scenario: Option<Scenario>,
    persona: Option<String>,
    session: Option<i64>,
}

fn troupe_fields(
    o: &Map<String, Value>,
    session_header: Option<&str>,
) -> Result<TroupeFields, WireError> {
    let t = match o.get("troupe") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(t)) => t.clone(),
        Some(_) => return Err(WireError::field("troupe", "troupe must be an object")),
    };
    let scenario = match t.get("scenario") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(scenario(s).ok_or_else(|| {
            WireError::field(
                "troupe",
                format!("troupe.scenario '{s}' is not one of chit_chat, interview, companionship"),
            )
        })?),
        Some(_) => {
            return Err(WireError::field(
                "troupe",
                "troupe.scenario must be a string",
            ))
        }
    };
    let persona = match t.get("persona") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(WireError::field(
                "troupe",
                "troupe.persona must be a name or an id",
            ))
        }
    };
    let from_body = match t.get("session") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            WireError::field("troupe", "troupe.session must be a session id (a number)")
        })?),
    };
    let from_header = match session_header {
        None => None,
        Some(h) => Some(h.trim().parse::<i64>().map_err(|_| {
            WireError::new(
                StatusCode::BAD_REQUEST,
                "invalid_value",
                format!("the X-Troupe-Session header '{h}' is not a session id"),
            )
        })?),
    };
    Ok(TroupeFields {
        scenario,
        persona,
        session: from_body.or(from_header),
    })
}

fn scenario(s: &str) -> Option<Scenario> {
    match s.to_ascii_lowercase().replace('-', "_").as_str() {
        "chit_chat" | "chitchat" => Some(Scenario::ChitChat),
        "interview" => Some(Scenario::Interview),
        "companionship" => Some(Scenario::Companionship),
        _ => None,
    }
}

/// The sampling fields a client may set, each checked against OpenAI's ranges.
fn sampling(o: &Map<String, Value>) -> Result<ApiSampling, WireError> {
    let number = |name: &'static str, lo: f64, hi: f64| -> Result<Option<f64>, WireError> {
        match o.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if (lo..=hi).contains(&x) => Ok(Some(x)),
                _ => Err(WireError::field(
                    name,
                    format!("{name} must be a number from {lo} to {hi}"),
                )),
            },
        }
    };
    let max_tokens = match o.get("max_completion_tokens").or(o.get("max_tokens")) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n as usize <= MAX_REPLY_TOKENS => Some(n as usize),
            _ => {
                return Err(WireError::field(
                    "max_tokens",
                    format!("max_tokens must be a whole number from 1 to {MAX_REPLY_TOKENS}"),
                ))
            }
        },
    };
    // Accepted for compatibility; Troupe's own repetition penalty and DRY apply instead (they
    // are not the same measure, so a value is not translated).
    number("presence_penalty", -2.0, 2.0)?;
    number("frequency_penalty", -2.0, 2.0)?;
    let seed = match o.get("seed") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .map(|s| s as u64)
                .or(v.as_u64())
                .ok_or_else(|| WireError::field("seed", "seed must be a whole number"))?,
        ),
    };
    let stop = match o.get("stop") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.len() <= 4 && a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
        Some(_) => {
            return Err(WireError::field(
                "stop",
                "stop must be a string or up to 4 strings",
            ))
        }
    };
    if stop.iter().any(String::is_empty) {
        return Err(WireError::field("stop", "a stop string is empty"));
    }
    Ok(ApiSampling {
        max_tokens,
        temperature: number("temperature", 0.0, 2.0)?,
        top_p: number("top_p", 0.0, 1.0)?,
        seed,
        stop,
    })
}

fn flag(o: &Map<String, Value>, name: &'static str) -> Result<bool, WireError> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(WireError::field(
            name,
            format!("{name} must be true or false"),
        )),
    }
}

fn include_usage(o: &Map<String, Value>) -> Result<bool, WireError> {
    match o.get("stream_options") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Object(s)) => flag(s, "include_usage"),
        Some(_) => Err(WireError::field(
            "stream_options",
            "stream_options must be an object",
        )),
    }
}

/// What every reply object starts with.
pub struct Head<'a> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
}

pub fn usage(r: &ApiReply) -> Value {
    json!({
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": r.prompt_tokens + r.completion_tokens,
    })
}

pub fn finish_reason(r: &ApiReply) -> &'static str {
    if r.cut_off {
        "length"
    } else {
        "stop"
    }
}

/// A whole chat reply.
pub fn chat_completion(h: &Head, r: &ApiReply) -> Value {
    let mut v = json!({
        "id": h.id,
        "object": "chat.completion",
        "created": h.created,
        "model": h.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": r.text},
            "logprobs": null,
            "finish_reason": finish_reason(r),
        }],
        "usage": usage(r),
    });
    v["troupe"] = figures(r);
    v
}

/// Troupe's own figures of a reply, beside OpenAI's fields: the engine's time to the first
/// token (so a client can tell it from the network's), its speed, and the stored reply's id
/// when the request was bound to a Session.
pub fn figures(r: &ApiReply) -> Value {
    json!({
        "first_token_ms": r.first_token_ms,
        "tokens_per_second": (r.tokens_per_second * 10.0).round() / 10.0,
        "message_id": r.message_id,
    })
}

/// One streamed piece of a chat reply: `delta` text, or the end (`finish`).
pub fn chat_chunk(h: &Head, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": h.id,
        "object": "chat.completion.chunk",
        "created": h.created,
        "model": h.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    })
}

/// The last chunk when the client asked for usage: no choices, the counts.
pub fn usage_chunk(h: &Head, object: &str, r: &ApiReply) -> Value {
    json!({
        "id": h.id,
        "object": object,
        "created": h.created,
        "model": h.model,
        "choices": [],
        "usage": usage(r),
    })
}

/// A whole completion, or (with `streamed`) one piece of one.
pub fn text_completion(h: &Head, text: &str, finish: Option<&str>, usage: Option<Value>) -> Value {
    let mut v = json!({
        "id": h.id,
        "object": "text_completion",
        "created": h.created,
        "model": h.model,
        "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}],
    });
    if let Some(u) = usage {
        v["usage"] = u;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_request_reads_every_field() {
        let body = br#"{"model":"troupe/ada-lovelace","messages":[
            {"role":"developer","content":"Be brief."},
            {"role":"user","content":[{"type":"text","text":"Hello"}]}],
            "max_completion_tokens":32,"temperature":0.5,"top_p":0.9,"seed":-1,"stop":"\n\n",
            "stream":true,"stream_options":{"include_usage":true},"n":1,
            "troupe":{"scenario":"interview","persona":"Sam"}}"#;
        let r = chat_request(body, Some("12")).unwrap();
        assert_eq!(r.chat.model, "troupe/ada-lovelace");
        assert_eq!(r.chat.messages[0].role, ChatRole::System);
        assert_eq!(r.chat.messages[1].content, "Hello");
        assert_eq!(r.chat.sampling.max_tokens, Some(32));
        assert_eq!(r.chat.sampling.seed, Some(u64::MAX));
        assert_eq!(r.chat.sampling.stop, vec!["\n\n".to_string()]);
        assert_eq!(r.chat.scenario, Some(Scenario::Interview));
        assert_eq!(r.chat.persona.as_deref(), Some("Sam"));
        assert_eq!(r.chat.session, Some(12));
        assert!(r.stream && r.include_usage);
    }

    #[test]
    fn bad_requests_name_the_field() {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "not valid JSON"),
            (b"[1]", "JSON object"),
            (br#"{"model":"m"}"#, "messages is required"),
            (
                br#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
                "'wizard'",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#,
                "n must be 1",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":9}"#,
                "temperature",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                "max_tokens",
            ),
            (
                br#"{"messages":[{"role":"user","content":"x"}]}"#,
                "model is required",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
                "only text",
            ),
            (
                br#"{"model":"m","messages":[],"troupe":{"scenario":"war"}}"#,
                "troupe.scenario",
            ),
        ];
        for (body, says) in cases {
            let e = chat_request(body, None).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{says}");
            assert!(e.message.contains(says), "{} lacks {says}", e.message);
        }
        assert!(chat_request(br#"{"model":"m","messages":[]}"#, Some("x1")).is_err());
    }
}
