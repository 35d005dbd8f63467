//! The local API's operations: what `server` (the third front end, OpenAI's protocol over HTTP)
//! asks of the core. Every Character is a model, `troupe/<character id>`, beside the loaded
//! model itself (its file name, e.g. `qwen2.5-coder-0.5b-instruct-q4_k_m`).
//!
//! - A Character's reply is assembled exactly as the window's: its profile, the Scenario
//!   (chit-chat unless asked), the persona (the default unless named), lorebook, its own
//!   memories and the budgeted history. Stateless by default: the client's messages are the
//!   history and its `system` messages become notes (`conversation::detached`). Bound to a
//!   stored Session, only the client's newest message is sent, as the window sends it: stored,
//!   shown in the window, with memory and summary.
//! - The raw model answers the client's messages as they are, with its own chat template.
//!
//! The queue (`ApiQueue`), the policy the README states: API requests take turns, one writing at
//! a time, at most `API_QUEUE` in the building (writing or waiting; one more is refused as
//! `Busy`, which the server turns into 503 with Retry-After). A request about to start waits
//! while a reply is being written for the window or the CLI, so the person watching a reply is
//! never queued behind a script; one that starts later runs beside the API's (mistral.rs
//! interleaves them) instead of waiting for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{sampling_at, SamplingScope, Troupe};
use crate::characters::Scenario;
use crate::conversation::detached::{self, Conversation};
use crate::conversation::{prompt, Cancel, ReplyStats, TurnError, TurnEvent};
use crate::engine::{self, ChatMessage, ChatRole, Engine, EngineEvent, FinishReason, Sampling};
use crate::settings::Settings;
use crate::store::{self, MemoryKind};

/// How a Character is named as a model.
pub const CHARACTER_PREFIX: &str = "troupe/";
/// API requests in the building at once, writing or waiting; one more is refused.
pub const API_QUEUE: usize = 8;
/// What a refused request is told to wait, in seconds.
pub const RETRY_AFTER_S: u64 = 5;

/// A model the API offers.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiModel {
    pub id: String,
    /// The Character's name, or the model's file name.
    pub name: String,
    pub created_ms: i64,
    /// A Character (else the loaded model itself).
    pub character: bool,
}

/// What the client may set of the sampling; the rest comes from the Character (or the settings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiSampling {
    pub max_tokens: Option<usize>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
}

/// A chat request, as the server read it.
#[derive(Debug, Clone, Default)]
pub struct ApiChat {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    /// A Character's Scenario (chit-chat when `None`).
    pub scenario: Option<Scenario>,
    /// A persona's name or id (the default persona when `None`).
    pub persona: Option<String>,
    /// A stored Session of the Character to continue (stores the exchange).
    pub session: Option<i64>,
    pub sampling: ApiSampling,
}

/// A written reply and its counts (tokens by the engine's own tokenizer).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiReply {
    pub text: String,
    /// Ran out of `max_tokens` rather than ending by itself.
    pub cut_off: bool,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub first_token_ms: u64,
    pub tokens_per_second: f64,
    /// The engine failed after `text` (already streamed); the server reports it.
    pub failure: Option<String>,
    /// The stored reply, when the request was bound to a Session.
    pub message_id: Option<i64>,
}

/// Why the API refuses or fails a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the model '{0}' does not exist; GET /v1/models lists the loaded model and every character as troupe/<id>")]
    UnknownModel(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    ContextLength(String),
    #[error("{waiting} requests are already writing or waiting for the engine; try again in {RETRY_AFTER_S} s")]
    Busy { waiting: usize },
    #[error("{0}")]
    NotReady(String),
    #[error("a reply is already being written in session {0}")]
    SessionBusy(i64),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
    /// The client went away; nobody is told.
    #[error("the client went away")]
    Gone,
}

impl From<TurnError> for ApiError {
    fn from(e: TurnError) -> ApiError {
        match e {
            TurnError::EmptyMessage => {
                ApiError::Invalid("the last message must be a user message with text".into())
            }
            TurnError::MessageTooLong { .. } => ApiError::ContextLength(e.to_string()),
            TurnError::Engine(engine::Error::NotReady(m)) => ApiError::NotReady(m),
            TurnError::Store(store::Error::SessionNotFound(_)) => ApiError::NotFound(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<engine::Error> for ApiError {
    fn from(e: engine::Error) -> ApiError {
        match e {
            engine::Error::NotReady(m) => ApiError::NotReady(m),
            other => ApiError::NotReady(other.to_string()),
        }
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

/// The API's turns at the engine (see the module doc). Shared by every clone of a `Troupe`.
pub(crate) struct ApiQueue {
    inside: AtomicUsize,
    writing: tokio::sync::Semaphore,
}

impl Default for ApiQueue {
    fn default() -> Self {
        ApiQueue {
            inside: AtomicUsize::new(0),
            writing: tokio::sync::Semaphore::new(1),
        }
    }
}

/// A request's place in the building; leaving (done, failed, the client gone) frees it.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Troupe {
    /// Keeps the local API's settings in settings.json (the CLI's `serve`; the window saves
    /// through its store).
    pub fn save_api_settings(&self, api: &crate::settings::ApiSettings) -> std::io::Result<()> {
        let mut settings = self.settings();
        settings.api = api.clone();
        settings.save(&self.paths.settings())
    }

    /// The loaded model (when one is ready) and every Character in the gallery, as models.
    pub fn api_models(&self) -> Result<Vec<ApiModel>, store::Error> {
        let mut out = Vec::new();
        if let engine::EngineStatus::Ready(info) = self.engine_status() {
            out.push(ApiModel {
                id: raw_model_id(&info.name),
                name: info.name,
                created_ms: 0,
                character: false,
            });
        }
        for c in self.characters()? {
            out.push(ApiModel {
                id: format!("{CHARACTER_PREFIX}{}", c.id),
                name: c.name,
                created_ms: c.created_at,
                character: true,
            });
        }
        Ok(out)
    }

    /// Checks that `model` names the loaded model or a Character, before anything is queued.
    pub fn api_check_model(&self, model: &str) -> Result<(), ApiError> {
        self.api_target(model).map(|_| ())
    }

    /// A chat reply, streamed piece by piece to `on_text`; `cancel` (the client went away)
    /// stops it, waiting or writing. A Character's reply when `model` is `troupe/<id>`, else the
    /// raw model's.
    pub async fn api_chat(
        &self,
        settings: &Settings,
        request: ApiChat,
        cancel: &Cancel,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ApiReply, ApiError> {
        let target = self.api_target(&request.model)?;
        check_messages(&request.messages)?;
        let _place = self.api_enter()?;
        let _turn = self.api_turn(cancel).await?;
        match target {
            Some(character_id) => match request.session {
                Some(session_id) => {
                    let to = (character_id.as_str(), session_id);
                    self.api_session_reply(settings, to, request, cancel, on_text)
                        .await
                }
                None => {
                    self.api_detached_reply(settings, &character_id, request, cancel, on_text)
                        .await
                }
            },
            None => {
                // The raw model stops where its template or the client says, not at Troupe's
                // name labels.
                let raw = Sampling {
                    stop: Vec::new(),
                    ..settings.sampling.clone()
                };
                let sampling = adjusted(raw, &request.sampling);
                let engine = self.engine.engine()?;
                let prompt_tokens = fits(engine.as_ref(), &request.messages, &sampling).await?;
                let generation = engine.generate(request.messages, sampling);
                raw_reply(engine.as_ref(), generation, prompt_tokens, cancel, on_text).await
            }
        }
    }

    /// The raw model continuing `prompt` as plain text (`/v1/completions`).
    pub async fn api_complete(
        &self,
        settings: &Settings,
        model: &str,
        prompt: String,
        adjust: &ApiSampling,
        cancel: &Cancel,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ApiReply, ApiError> {
        if self.api_target(model)?.is_some() {
            return Err(ApiError::Invalid(format!(
                "{model} is a character: characters answer at /v1/chat/completions; \
                 /v1/completions continues plain text with the loaded model"
            )));
        }
        let engine = self.engine.engine()?;
        if !engine.completes_text() {
            return Err(ApiError::Invalid(
                "the engine in use (a server) continues chats only: use /v1/chat/completions"
                    .into(),
            ));
        }
        let _place = self.api_enter()?;
        let _turn = self.api_turn(cancel).await?;
        let raw = Sampling {
            stop: Vec::new(),
            ..settings.sampling.clone()
        };
        let sampling = adjusted(raw, adjust);
        let prompt_tokens = engine.count_tokens(&prompt).await?;
        let room = engine
            .info()
            .context_length
            .min(crate::conversation::assemble::CONTEXT_CAP);
        if prompt_tokens + sampling.max_tokens > room {
            return Err(ApiError::ContextLength(format!(
                "the prompt has {prompt_tokens} tokens and max_tokens is {}; the model has room for {room}",
                sampling.max_tokens
            )));
        }
        let generation = engine.complete(prompt, sampling);
        raw_reply(engine.as_ref(), generation, prompt_tokens, cancel, on_text).await
    }

    /// `Some(character id)` for `troupe/<id>`, `None` for the loaded model.
    fn api_target(&self, model: &str) -> Result<Option<String>, ApiError> {
        if let Some(id) = model.strip_prefix(CHARACTER_PREFIX) {
            return match self.character_summary(id) {
                Ok(c) if c.deleted_at.is_none() => Ok(Some(c.id)),
                _ => Err(ApiError::UnknownModel(model.to_string())),
            };
        }
        match self.engine_status() {
            engine::EngineStatus::Ready(info)
                if model == raw_model_id(&info.name) || model == info.name =>
            {
                Ok(None)
            }
            engine::EngineStatus::Loading { .. } => Err(ApiError::NotReady(
                "the model is still loading; try again in a moment".into(),
            )),
            _ => Err(ApiError::UnknownModel(model.to_string())),
        }
    }

    /// Takes a place in the building, or refuses when it is full.
    fn api_enter(&self) -> Result<Place<'_>, ApiError> {
        let before = self.api_queue.inside.fetch_add(1, Ordering::SeqCst);
        let place = Place(&self.api_queue.inside);
        if before >= API_QUEUE {
            return Err(ApiError::Busy { waiting: before });
        }
        Ok(place)
    }

    /// Waits for the API's turn at the engine, then for the window's and the CLI's replies to
    /// finish (the person first); `Gone` when `cancel` comes first.
    async fn api_turn(
        &self,
        cancel: &Cancel,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        let wait = async {
            let permit = self
                .api_queue
                .writing
                .acquire()
                .await
                .expect("the semaphore is never closed");
            while self.activity.replying() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            permit
        };
        tokio::select! {
            permit = wait => Ok(permit),
            _ = cancel.cancelled() => Err(ApiError::Gone),
        }
    }

    /// A Character's reply to the client's own history; nothing stored.
    async fn api_detached_reply(
        &self,
        settings: &Settings,
        character_id: &str,
        request: ApiChat,
        cancel: &Cancel,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ApiReply, ApiError> {
        let engine = self.engine.engine()?;
        let level = sampling_at(
            &self.store,
            settings,
            SamplingScope::Character(character_id),
        )?;
        let sampling = adjusted(
            Sampling {
                stop: prompt::stop_strings(),
                ..level.effective
            },
            &request.sampling,
        );
        let conversation = Conversation {
            character: self.character(character_id)?,
            scenario: request.scenario.unwrap_or(Scenario::ChitChat),
            user: self.api_user(request.persona.as_deref())?,
            memories: self
                .store
                .memories_for_character(character_id)?
                .into_iter()
                .filter(|m| m.session_id.is_none() && m.kind == MemoryKind::Pinned)
                .collect(),
            messages: request.messages,
        };
        let written =
            detached::reply(engine.as_ref(), conversation, &sampling, cancel, on_text).await?;
        let r = written.reply;
        Ok(ApiReply {
            completion_tokens: counted(engine.as_ref(), &r.text, r.stats.reply_tokens).await,
            text: r.text,
            cut_off: r.cut_off,
            prompt_tokens: written.prompt_tokens,
            first_token_ms: r.stats.first_token_ms,
            tokens_per_second: r.stats.tokens_per_second,
            failure: r.failure,
            message_id: None,
        })
    }

    /// The client's newest message sent in a stored Session of the Character (`to`), as the
    /// window sends it; `cancel` is the Stop button (what was written stays, `interrupted`).
    async fn api_session_reply(
        &self,
        settings: &Settings,
        (character_id, session_id): (&str, i64),
        request: ApiChat,
        cancel: &Cancel,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ApiReply, ApiError> {
        let session = self
            .session(session_id)
            .map_err(|_| ApiError::NotFound(format!("session {session_id} does not exist")))?;
        if session.character_id != character_id {
            return Err(ApiError::Invalid(format!(
                "session {session_id} is a conversation with {}, not {character_id}",
                session.character_id
            )));
        }
        let text = request
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let adjust = request.sampling;
        let stop = {
            let (troupe, cancel) = (self.clone(), cancel.clone());
            tokio::spawn(async move {
                cancel.cancelled().await;
                troupe.stop_reply(session_id);
            })
        };
        let sent = self
            .send_adjusted(
                settings,
                session_id,
                &text,
                &|s| adjusted(s, &adjust),
                &mut |e| match e {
                    TurnEvent::Text(t) => on_text(&t),
                    TurnEvent::Started { .. } => self.activity.changed.announce(session_id),
                    TurnEvent::Rewriting { .. }
                    | TurnEvent::Said { .. }
                    | TurnEvent::Speaking { .. } => {}
                },
            )
            .await;
        stop.abort();
        self.activity.changed.announce(session_id);
        let engine = self.engine.engine()?;
        let (reply, stats, failure) = match sent {
            Ok((reply, stats)) => (reply, stats, None),
            Err(TurnError::Failed { reply, reason }) => {
                let none = ReplyStats {
                    prompt_tokens: 0,
                    reply_tokens: 0,
                    first_token_ms: 0,
                    tokens_per_second: 0.0,
                };
                (reply, none, Some(reason))
            }
            Err(TurnError::Busy) => return Err(ApiError::SessionBusy(session_id)),
            Err(e) => return Err(e.into()),
        };
        let record = self.prompt_record(reply.id)?;
        Ok(ApiReply {
            completion_tokens: counted(engine.as_ref(), &reply.content, stats.reply_tokens).await,
            prompt_tokens: record.map(|r| r.tokens).unwrap_or(stats.prompt_tokens),
            cut_off: false,
            first_token_ms: stats.first_token_ms,
            tokens_per_second: stats.tokens_per_second,
            text: reply.content,
            failure,
            message_id: Some(reply.id),
        })
    }

    /// The persona named (by name or id), else the default one.
    fn api_user(&self, persona: Option<&str>) -> Result<prompt::User, ApiError> {
        let personas = self.personas()?;
        let chosen = match persona {
            Some(p) => Some(
                personas
                    .iter()
                    .find(|x| x.name == p || x.id.to_string() == p)
                    .ok_or_else(|| ApiError::Invalid(format!("no persona is named '{p}'")))?,
            ),
            None => personas.iter().find(|x| x.is_default),
        };
        Ok(match chosen {
            Some(p) => prompt::User {
                name: p.name.clone(),
                description: p.description.clone(),
            },
            None => prompt::User::default(),
        })
    }
}

/// The loaded model's id: its file name without `.gguf`.
fn raw_model_id(name: &str) -> String {
    name.strip_suffix(".gguf").unwrap_or(name).to_string()
}

/// A conversation must end with the user's turn, with something to answer.
fn check_messages(messages: &[ChatMessage]) -> Result<(), ApiError> {
    match messages.last() {
        None => Err(ApiError::Invalid("messages is empty".into())),
        Some(m) if m.role != ChatRole::User => Err(ApiError::Invalid(format!(
            "the last message must be the user's (it is {}): there is nothing to reply to",
            m.role.as_str()
        ))),
        Some(m) if m.content.trim().is_empty() => {
            Err(ApiError::Invalid("the last user message is empty".into()))
        }
        Some(_) => Ok(()),
    }
}

/// `base` with what the client set.
fn adjusted(mut base: Sampling, a: &ApiSampling) -> Sampling {
    if let Some(n) = a.max_tokens {
        base.max_tokens = n;
    }
    if let Some(t) = a.temperature {
        base.temperature = t;
    }
    if let Some(p) = a.top_p {
        base.top_p = p;
    }
    if a.seed.is_some() {
        base.seed = a.seed;
    }
    for s in &a.stop {
        if !base.stop.contains(s) {
            base.stop.push(s.clone());
        }
    }
    base
}

/// The raw model's prompt size, or why it does not fit.
async fn fits(
    engine: &dyn Engine,
    messages: &[ChatMessage],
    sampling: &Sampling,
) -> Result<usize, ApiError> {
    let tokens = engine.count_prompt_tokens(messages).await?;
    let room = crate::conversation::assemble::budget(engine, sampling);
    if tokens > room {
        return Err(ApiError::ContextLength(format!(
            "the messages take {tokens} tokens; with max_tokens {} the model has room for {room}",
            sampling.max_tokens
        )));
    }
    Ok(tokens)
}

/// Streams a raw generation to `on_text`.
async fn raw_reply(
    engine: &dyn Engine,
    mut generation: engine::Generation,
    prompt_tokens: usize,
    cancel: &Cancel,
    on_text: &mut (dyn FnMut(&str) + Send),
) -> Result<ApiReply, ApiError> {
    let started = std::time::Instant::now();
    let (mut text, mut first, mut pieces) = (String::new(), None, 0usize);
    let (mut cut_off, mut failure, mut usage) = (false, None, None);
    loop {
        let event = tokio::select! {
            e = generation.recv() => e,
            _ = cancel.cancelled() => return Err(ApiError::Gone), // dropping `generation` ends it
        };
        let Some(event) = event else {
            failure = Some("the engine stopped without finishing".into());
            break;
        };
        match event {
            EngineEvent::Text(t) => {
                first.get_or_insert_with(|| started.elapsed().as_millis() as u64);
                pieces += 1;
                on_text(&t);
                text.push_str(&t);
            }
            EngineEvent::Finished { reason, usage: u } => {
                cut_off = reason == FinishReason::Length;
                usage = u;
                break;
            }
            EngineEvent::Failed(reason) => {
                failure = Some(reason);
                break;
            }
        }
    }
    let first_token_ms = first.unwrap_or(0);
    let decode = started.elapsed().as_secs_f64() - first_token_ms as f64 / 1000.0;
    let generated = usage.map(|u| u.completion_tokens).unwrap_or(pieces);
    Ok(ApiReply {
        completion_tokens: counted(engine, &text, generated).await,
        text,
        cut_off,
        prompt_tokens,
        first_token_ms,
        tokens_per_second: if decode > 0.0 && pieces > 1 {
            (pieces - 1) as f64 / decode
        } else {
            0.0
        },
        failure,
        message_id: None,
    })
}

/// Tokens of a reply: the engine's own count of what it generated when it gave one, else the
/// tokenizer's count of the text.
async fn counted(engine: &dyn Engine, text: &str, generated: usize) -> usize {
    if generated > 0 {
        return generated;
    }
    engine.count_tokens(text).await.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    //! The queue's policy, with the scripted engine (the words do not matter here; the real
    //! model drives the same paths in tests/api/test_api.py).

    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::engine::{ScriptedEngine, Slot};
    use crate::settings::Paths;

    fn troupe(dir: &std::path::Path, pieces: usize) -> Troupe {
        let mut troupe = Troupe::open(Paths::at(dir)).unwrap();
        let script: Vec<&str> = std::iter::repeat_n(" word", pieces).collect();
        let engine =
            ScriptedEngine::new(&script, Duration::from_millis(10)).with_context_length(8192);
        troupe.engine = Slot::with_engine(Arc::new(engine));
        troupe
    }

    fn hello(model: &str) -> ApiChat {
        ApiChat {
            model: model.into(),
            messages: vec![ChatMessage::new(ChatRole::User, "Hello there")],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn the_person_in_the_window_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let troupe = troupe(dir.path(), 30);
        let settings = Settings::default();
        let session = troupe
            .start_session("ada-lovelace", Scenario::ChitChat, None)
            .unwrap();
        let window_done = Arc::new(Mutex::new(None::<Instant>));
        let (t, s, done) = (troupe.clone(), settings.clone(), window_done.clone());
        let window = tokio::spawn(async move {
            t.send(&s, session.id, "Hi", &mut |_| {}).await.unwrap();
            *done.lock().unwrap() = Some(Instant::now());
        });
        while !troupe.activity.replying() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut first_api_word = None;
        let reply = troupe
            .api_chat(
                &settings,
                hello("troupe/ada-lovelace"),
                &Cancel::new(),
                &mut |_| {
                    first_api_word.get_or_insert_with(Instant::now);
                },
            )
            .await
            .unwrap();
        window.await.unwrap();
        assert!(!reply.text.is_empty());
        let window_done = window_done.lock().unwrap().unwrap();
        assert!(
            first_api_word.unwrap() >= window_done,
            "the API wrote while the window's reply was still being written"
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_a_place_frees_when_its_client_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let troupe = troupe(dir.path(), 200);
        let settings = Settings::default();
        let mut waiting = Vec::new();
        for _ in 0..API_QUEUE {
            let (t, s, c) = (troupe.clone(), settings.clone(), Cancel::new());
            let cancel = c.clone();
            let task = tokio::spawn(async move {
                t.api_chat(&s, hello("troupe/ada-lovelace"), &c, &mut |_| {})
                    .await
            });
            waiting.push((cancel, task));
        }
        while troupe.api_queue.inside.load(Ordering::SeqCst) < API_QUEUE {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let refused = troupe
            .api_chat(
                &settings,
                hello("troupe/ada-lovelace"),
                &Cancel::new(),
                &mut |_| {},
            )
            .await;
        assert!(matches!(refused, Err(ApiError::Busy { .. })), "{refused:?}");
        // Every client leaves: the writing one stops, the waiting ones leave the queue.
        for (cancel, _) in &waiting {
            cancel.cancel();
        }
        for (_, task) in waiting {
            let _ = task.await.unwrap();
        }
        assert_eq!(troupe.api_queue.inside.load(Ordering::SeqCst), 0);
        let again = troupe
            .api_chat(
                &settings,
                hello("troupe/ada-lovelace"),
                &Cancel::new(),
                &mut |_| {},
            )
            .await;
        assert!(again.is_ok(), "{again:?}");
    }

    #[tokio::test]
    async fn a_request_names_a_model_that_exists() {
        let dir = tempfile::tempdir().unwrap();
        let troupe = troupe(dir.path(), 3);
        let settings = Settings::default();
        for model in ["troupe/nobody", "gpt-4o", "troupe/"] {
            let r = troupe
                .api_chat(&settings, hello(model), &Cancel::new(), &mut |_| {})
                .await;
            assert!(
                matches!(r, Err(ApiError::UnknownModel(_))),
                "{model}: {r:?}"
            );
        }
        let raw = troupe
            .api_chat(&settings, hello("scripted"), &Cancel::new(), &mut |_| {})
            .await
            .unwrap();
        assert_eq!(raw.text.split_whitespace().count(), 3);
        let ids: Vec<String> = troupe
            .api_models()
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids[0], "scripted");
        assert!(ids.contains(&"troupe/sherlock-holmes".to_string()));
    }
}
