//! `/v1/chat/completions` and `/v1/completions`: read the body, hand it to the core, answer as
//! one JSON object or as server-sent events (`data: {chunk}` … `data: [DONE]`).
//!
//! The reply is written by a task of its own, so a client that goes away stops it cleanly
//! rather than mid-write: the handler (or the event stream) holds a `CancelOnDrop`; when hyper
//! drops it, the core's `Cancel` is pressed and the task ends at the engine's next token (a
//! stored Session's reply is kept, `interrupted`, as with the window's Stop). A streamed answer
//! begins only once the first words exist, so every refusal (queue full, a Session that does
//! not exist, a prompt too long) still comes with its own HTTP status.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::wire::{self, Head, WireError};
use super::{error_response, guard, Shared};
use crate::app::{ApiError, ApiReply, Cancel};

/// What the writing task tells the handler.
enum Piece {
    Text(String),
    Done(Result<ApiReply, ApiError>),
}

/// Presses `Cancel` when dropped: the client is gone.
struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

pub async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let session = headers
        .get("x-troupe-session")
        .and_then(|h| h.to_str().ok());
    let request = match read(body)
        .await
        .and_then(|b| wire::chat_request(&b, session))
    {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    if let Err(e) = shared.troupe.api_check_model(&request.chat.model) {
        return error_response(&e.into());
    }
    let head = Owned::new(&shared, "chatcmpl", &request.chat.model);
    let (stream, include_usage) = (request.stream, request.include_usage);
    let (cancel, rx) = spawn_writer(&shared, move |troupe, settings, cancel, on_text| {
        Box::pin(async move {
            troupe
                .api_chat(&settings, request.chat, &cancel, on_text)
                .await
        })
    });
    if stream {
        return streamed(rx, cancel, head, Kind::Chat, include_usage).await;
    }
    whole(rx, cancel, |r| wire::chat_completion(&head.head(), r)).await
}

pub async fn completion(State(shared): State<Arc<Shared>>, body: Body) -> Response {
    let request = match read(body).await.and_then(|b| wire::completion_request(&b)) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    if let Err(e) = shared.troupe.api_check_model(&request.model) {
        return error_response(&e.into());
    }
    let head = Owned::new(&shared, "cmpl", &request.model);
    let (stream, include_usage) = (request.stream, request.include_usage);
    let (cancel, rx) = spawn_writer(&shared, move |troupe, settings, cancel, on_text| {
        Box::pin(async move {
            troupe
                .api_complete(
                    &settings,
                    &request.model,
                    request.prompt,
                    &request.sampling,
                    &cancel,
                    on_text,
                )
                .await
        })
    });
    if stream {
        return streamed(rx, cancel, head, Kind::Text, include_usage).await;
    }
    whole(rx, cancel, |r| {
        let h = head.head();
        wire::text_completion(
            &h,
            &r.text,
            Some(wire::finish_reason(r)),
            Some(wire::usage(r)),
        )
    })
    .await
}

/// The body, at most `guard::MAX_BODY` bytes.
async fn read(body: Body) -> Result<Bytes, WireError> {
    axum::body::to_bytes(body, guard::MAX_BODY)
        .await
        .map_err(|_| guard::too_large())
}

/// Starts the task that writes the reply; its pieces come through the receiver.
fn spawn_writer(
    shared: &Arc<Shared>,
    write: impl for<'a> FnOnce(
            crate::app::Troupe,
            crate::app::vocabulary::Settings,
            Cancel,
            &'a mut (dyn FnMut(&str) + Send),
        ) -> futures::future::BoxFuture<'a, Result<ApiReply, ApiError>>
        + Send
        + 'static,
) -> (CancelOnDrop, mpsc::UnboundedReceiver<Piece>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let cancel = Cancel::new();
    let (troupe, settings) = (shared.troupe.clone(), (shared.settings)());
    let task_cancel = cancel.clone();
    tokio::spawn(async move {
        let pieces = tx.clone();
        let mut on_text = move |t: &str| {
            let _ = pieces.send(Piece::Text(t.to_string()));
        };
        let result = write(troupe, settings, task_cancel, &mut on_text).await;
        let _ = tx.send(Piece::Done(result));
    });
    (CancelOnDrop(cancel), rx)
}

/// A reply sent whole, once written.
async fn whole(
    mut rx: mpsc::UnboundedReceiver<Piece>,
    _cancel: CancelOnDrop,
    body: impl FnOnce(&ApiReply) -> Value,
) -> Response {
    let result = loop {
        match rx.recv().await {
            Some(Piece::Text(_)) => continue,
            Some(Piece::Done(r)) => break r,
            None => break Err(ApiError::Internal("the reply was lost".into())),
        }
    };
    match result {
        Ok(r) => match &r.failure {
            None => super::json_response(StatusCode::OK, &body(&r)),
            Some(reason) => error_response(&failed(reason)),
        },
        Err(e) => error_response(&e.into()),
    }
}

fn failed(reason: &str) -> WireError {
    WireError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "engine_failed",
        format!("the engine failed while writing: {reason}"),
    )
}

#[derive(Clone, Copy)]
enum Kind {
    Chat,
    Text,
}

/// What every streamed chunk repeats, owned by the stream.
struct Owned {
    id: String,
    created: u64,
    model: String,
}

impl Owned {
    fn new(shared: &Shared, prefix: &str, model: &str) -> Owned {
        Owned {
            id: format!("{prefix}-{}", shared.next_id()),
            created: crate::app::now_ms() as u64 / 1000,
            model: model.to_string(),
        }
    }
    fn head(&self) -> Head<'_> {
        Head {
            id: &self.id,
            created: self.created,
            model: &self.model,
        }
    }
}

/// A reply as server-sent events. Waits for the first piece, so a refusal is an HTTP error.
async fn streamed(
    mut rx: mpsc::UnboundedReceiver<Piece>,
    cancel: CancelOnDrop,
    head: Owned,
    kind: Kind,
    include_usage: bool,
) -> Response {
    let first = match rx.recv().await {
        Some(Piece::Done(Err(e))) => return error_response(&e.into()),
        Some(p) => p,
        None => return error_response(&ApiError::Internal("the reply was lost".into()).into()),
    };
    let mut opening = Vec::new();
    if let Kind::Chat = kind {
        let role = json!({"role": "assistant", "content": ""});
        opening.push(event(&wire::chat_chunk(&head.head(), role, None)));
    }
    let state = (Some(first), rx, cancel, head, false);
    let rest = futures::stream::unfold(
        state,
        move |(mut next, mut rx, cancel, head, ended)| async move {
            if ended {
                return None;
            }
            let piece = match next.take() {
                Some(p) => Some(p),
                None => rx.recv().await,
            };
            let (bytes, ended) = match piece {
                Some(Piece::Text(t)) => (event(&chunk(&head, kind, &t, None)), false),
                Some(Piece::Done(r)) => (ending(&head, kind, include_usage, r), true),
                None => (Bytes::from_static(b"data: [DONE]\n\n"), true),
            };
            Some((
                Ok::<_, std::convert::Infallible>(bytes),
                (None, rx, cancel, head, ended),
            ))
        },
    );
    let opening = futures::stream::iter(opening.into_iter().map(Ok));
    let mut response = Body::from_stream(futures::StreamExt::chain(opening, rest)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn chunk(head: &Owned, kind: Kind, text: &str, finish: Option<&str>) -> Value {
    match kind {
        Kind::Chat => {
            let delta = if finish.is_some() {
                json!({})
            } else {
                json!({"content": text})
            };
            wire::chat_chunk(&head.head(), delta, finish)
        }
        Kind::Text => wire::text_completion(&head.head(), text, finish, None),
    }
}

/// The last events: the finish reason, the usage when asked, `[DONE]`; or the error.
fn ending(
    head: &Owned,
    kind: Kind,
    include_usage: bool,
    result: Result<ApiReply, ApiError>,
) -> Bytes {
    let mut out = Vec::new();
    match result {
        Ok(r) => {
            match &r.failure {
                None => {
                    let mut last = chunk(head, kind, "", Some(wire::finish_reason(&r)));
                    last["troupe"] = wire::figures(&r);
                    out.push(event(&last))
                }
                Some(reason) => out.push(event(&failed(reason).body())),
            }
            if include_usage {
                let object = match kind {
                    Kind::Chat => "chat.completion.chunk",
                    Kind::Text => "text_completion",
                };
                out.push(event(&wire::usage_chunk(&head.head(), object, &r)));
            }
        }
        Err(ApiError::Gone) => {}
        Err(e) => out.push(event(&WireError::from(e).body())),
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out.concat().into()
}

fn event(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}
