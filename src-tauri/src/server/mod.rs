//! The local API: Troupe as an OpenAI-compatible server, where every Character is a model
//! (`troupe/<id>`) beside the loaded model itself. The third front end, beside the window and
//! the CLI: it translates HTTP into `app::Troupe`'s `api_*` operations and their answers back,
//! and holds no rule of its own but the protocol's (`wire`) and the door's (`guard`).
//!
//! `start` binds and serves in the background on the caller's runtime (`troupe serve`, or the
//! window's process, on the same engine and library) until `Server::stop`. Loopback only,
//! unless `Options::allow_network` says the person chose otherwise; a key is always required.
//! Routes: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/chat/completions`,
//! `POST /v1/completions` (`reply`). README "Local API" is the user's guide.

mod guard;
mod reply;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use serde_json::json;
use tokio::sync::oneshot;

use crate::app::vocabulary::Settings;
use crate::app::{ApiModel, Troupe};
use wire::WireError;

/// Where the API listens unless told otherwise: clear of Jan (1337), LM Studio (1234),
/// Ollama (11434), KoboldCpp (5001), llama.cpp (8080) and SillyTavern (8000).
pub const DEFAULT_PORT: u16 = 7337;

/// How to serve.
#[derive(Debug, Clone)]
pub struct Options {
    pub host: IpAddr,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// The Bearer key every request must carry.
    pub key: String,
    /// Browser origins allowed to call (CORS); none by default.
    pub origins: Vec<String>,
    /// The person chose to listen beyond this computer.
    pub allow_network: bool,
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to listen on {0}: other computers on the network could talk to your characters. Listen on 127.0.0.1, or choose this on purpose (`--allow-network`, or Settings → Local API → reachable from the network)")]
    NotLoopback(IpAddr),
    #[error("cannot listen on {address}: {reason}")]
    Bind { address: SocketAddr, reason: String },
    #[error("an API key is needed: at least 16 characters")]
    WeakKey,
}

/// What the handlers share.
pub(crate) struct Shared {
    troupe: Troupe,
    /// The settings now (the window's store, or settings.json).
    settings: Arc<dyn Fn() -> Settings + Send + Sync>,
    key: String,
    origins: Vec<String>,
    ids: AtomicU64,
}

impl Shared {
    fn next_id(&self) -> String {
        format!(
            "troupe-{:x}-{}",
            crate::app::now_ms(),
            self.ids.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// A running server.
pub struct Server {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops listening; requests under way finish first.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Serves until the process ends (`troupe serve`).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds and starts serving in the background.
pub async fn start(
    troupe: Troupe,
    settings: Arc<dyn Fn() -> Settings + Send + Sync>,
    options: Options,
) -> Result<Server, ServeError> {
    if !options.host.is_loopback() && !options.allow_network {
        return Err(ServeError::NotLoopback(options.host));
    }
    if options.key.trim().len() < 16 {
        return Err(ServeError::WeakKey);
    }
    let address = SocketAddr::new(options.host, options.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| ServeError::Bind {
            address,
            reason: e.to_string(),
        })?;
    let address = listener.local_addr().unwrap_or(address);
    let shared = Arc::new(Shared {
        troupe,
        settings,
        key: options.key.trim().to_string(),
        origins: options.origins,
        ids: AtomicU64::new(1),
    });
    let app = router(shared);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serving = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serving.await {
            tracing::warn!("the local API stopped: {e}");
        }
    });
    tracing::info!("local API on http://{address}/v1");
    Ok(Server {
        address,
        stop: Some(stop),
        task,
    })
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/v1/chat/completions", post(reply::chat))
        .route("/v1/completions", post(reply::completion))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), guard::guard))
        .with_state(shared)
}

fn model_json(m: &ApiModel) -> serde_json::Value {
    json!({
        "id": m.id,
        "object": "model",
        "created": m.created_ms / 1000,
        "owned_by": if m.character { "troupe" } else { "local" },
        "name": m.name,
    })
}

async fn models(State(shared): State<Arc<Shared>>) -> Response {
    match shared.troupe.api_models() {
        Ok(list) => {
            let data: Vec<_> = list.iter().map(model_json).collect();
            json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
        }
        Err(e) => error_response(&crate::app::ApiError::Internal(e.to_string()).into()),
    }
}

async fn model(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let found = shared
        .troupe
        .api_models()
        .ok()
        .and_then(|l| l.into_iter().find(|m| m.id == id));
    match found {
        Some(m) => json_response(StatusCode::OK, &model_json(&m)),
        None => error_response(&crate::app::ApiError::UnknownModel(id).into()),
    }
}

async fn not_found() -> Response {
    error_response(&WireError::new(
        StatusCode::NOT_FOUND,
        "unknown_url",
        "no such endpoint: this server has GET /v1/models, POST /v1/chat/completions and POST /v1/completions",
    ))
}

async fn not_allowed() -> Response {
    error_response(&WireError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method (models: GET; completions: POST)",
    ))
}

/// An error as OpenAI sends one, with `Retry-After` when it helps.
pub(crate) fn error_response(e: &WireError) -> Response {
    let mut r = json_response(e.status, &e.body());
    if let Some(s) = e.retry_after {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            r.headers_mut().insert("retry-after", v);
        }
    }
    r
}

/// A JSON answer (serde_json writes it; axum's own `Json` would add a crate for nothing).
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let headers = [(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    (status, headers, body.to_string()).into_response()
}
