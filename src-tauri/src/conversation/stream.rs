//! Streaming a reply into its row: every piece committed before it is shown, the row closed
//! `complete` or `interrupted`, and the reply's figures. Shared by a new turn, a rewrite and a
//! continuation (`turn`).

use std::time::Instant;

use crate::engine::{ChatMessage, Engine, EngineEvent, FinishReason, Generation, Sampling, Usage};
use crate::store::{Message, MessageStatus, Store};

use super::tidy::{strip_label, trim_incomplete_sentence, StopFilter};
use super::{Cancel, TurnError};

/// What a turn reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEvent {
    /// The user's Message is stored and the reply row exists; `dropped` older messages did not
    /// fit the context and were left out of the prompt.
    Started {
        user: Message,
        reply: Message,
        dropped: usize,
    },
    /// An existing reply is being written again or continued: `reply` as it now stands (empty
    /// for a rewrite, its text so far for a continuation); the pieces that follow go into it.
    Rewriting { reply: Message },
    /// The next piece of the reply, already committed to the store.
    Text(String),
    /// In a group: the person's Message is stored (the replies follow).
    Said { user: Message },
    /// In a group: `speaker` (a Character id) begins `reply`; the pieces that follow go into it.
    Speaking { reply: Message, speaker: String },
}

/// Figures of one reply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplyStats {
    pub prompt_tokens: usize,
    pub reply_tokens: usize,
    /// From the request to the first piece of text.
    pub first_token_ms: u64,
    /// Decode speed after the first token.
    pub tokens_per_second: f64,
}

/// Streams a generation into `reply` (a `streaming` row holding `prefix`, the text a
/// continuation goes on from), committing every piece before `on_event` shows it, and closes
/// the row `complete` or `interrupted`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn stream_reply(
    store: &Store,
    engine: &dyn Engine,
    messages: Vec<ChatMessage>,
    reply: Message,
    prefix: &str,
    sampling: &Sampling,
    cancel: &Cancel,
    character: &str,
    on_event: &mut (dyn FnMut(TurnEvent) + Send),
) -> Result<(Message, ReplyStats), TurnError> {
    let started = Instant::now();
    let generation = engine.generate(messages, sampling.clone());
    let mut text = ReplyText::new(sampling.stop.clone(), character, prefix);
    // Each piece is committed, then shown.
    let mut sink = |shown: &str| -> Result<(), TurnError> {
        append(store, &reply, shown)?;
        on_event(TurnEvent::Text(shown.to_string()));
        Ok(())
    };
    let ended = pump(generation, cancel, &mut text, started, &mut sink).await?;
    text.flush_held(&mut sink)?;
    let cancelled = cancel.is_cancelled()
        && ended.failure.is_none()
        && ended.usage.is_none()
        && !text.filter.stopped();
    let rest = if cancelled {
        String::new()
    } else {
        text.filter.finish()
    };
    if !rest.is_empty() {
        on_event(TurnEvent::Text(rest));
    }
    let interrupted = cancelled || ended.failure.is_some();
    let reply = close(
        store,
        reply,
        prefix,
        &text.filter,
        ended.cut_off,
        interrupted,
    )?;
    if let Some(reason) = ended.failure {
        return Err(TurnError::Failed { reply, reason });
    }
    let stats = ended.stats(started);
    Ok((reply, stats))
}

/// A reply nobody stores (the local API's stateless requests): streamed through the same
/// tidying as a stored one (label, stop strings, leading space), each piece handed to
/// `on_text`.
pub(super) async fn stream_detached(
    engine: &dyn Engine,
    messages: Vec<ChatMessage>,
    sampling: &Sampling,
    cancel: &Cancel,
    character: &str,
    on_text: &mut (dyn FnMut(&str) + Send),
) -> Result<Detached, TurnError> {
    let started = Instant::now();
    let generation = engine.generate(messages, sampling.clone());
    let mut text = ReplyText::new(sampling.stop.clone(), character, "");
    let mut sink = |shown: &str| -> Result<(), TurnError> {
        on_text(shown);
        Ok(())
    };
    let ended = pump(generation, cancel, &mut text, started, &mut sink).await?;
    text.flush_held(&mut sink)?;
    let rest = text.filter.finish();
    if !rest.is_empty() {
        on_text(&rest);
    }
    Ok(Detached {
        text: text.filter.shown().trim_end().to_string(),
        cut_off: ended.cut_off,
        stopped: cancel.is_cancelled() && ended.usage.is_none(),
        failure: ended.failure.clone(),
        stats: ended.stats(started),
    })
}

/// A reply `stream_detached` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Detached {
    /// Everything shown, as shown.
    pub text: String,
    /// It ran out of tokens (`max_tokens`) rather than ending by itself.
    pub cut_off: bool,
    /// It was stopped (the client went away).
    pub stopped: bool,
    /// The engine failed after `text`.
    pub failure: Option<String>,
    pub stats: ReplyStats,
}

/// How the engine's stream ended, and what was counted on the way.
struct Ended {
    first_token_ms: Option<u64>,
    n_pieces: usize,
    usage: Option<Usage>,
    failure: Option<String>,
    /// The reply ran out of tokens (`max_tokens`) rather than ending by itself.
    cut_off: bool,
}

/// Reads the generation until it ends, Stop is pressed or a stop string appears; hands each
/// piece that is clear to show to `sink` (which commits it, then shows it).
async fn pump(
    mut generation: Generation,
    cancel: &Cancel,
    text: &mut ReplyText,
    started: Instant,
    sink: &mut (dyn FnMut(&str) -> Result<(), TurnError> + Send),
) -> Result<Ended, TurnError> {
    let mut ended = Ended {
        first_token_ms: None,
        n_pieces: 0,
        usage: None,
        failure: None,
        cut_off: false,
    };
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => None,
            e = generation.recv() => Some(e),
        };
        let Some(event) = event else {
            break; // Stop pressed; dropping `generation` on return cancels the engine.
        };
        match event {
            Some(EngineEvent::Text(piece)) => {
                ended.n_pieces += 1;
                ended
                    .first_token_ms
                    .get_or_insert_with(|| started.elapsed().as_millis() as u64);
                if let Some(shown) = text.take(&piece) {
                    sink(&shown)?;
                }
                if text.filter.stopped() {
                    break;
                }
            }
            Some(EngineEvent::Finished { usage, reason }) => {
                ended.usage = usage;
                ended.cut_off = reason == FinishReason::Length;
                break;
            }
            Some(EngineEvent::Failed(reason)) => {
                ended.failure = Some(reason);
                break;
            }
            None => {
                ended.failure = Some("the engine stopped without finishing the reply".into());
                break;
            }
        }
    }
    Ok(ended)
}

/// The reply's text as it streams: the opening held until it is clearly not the Character's
/// name label, leading space dropped, stop strings cut, and a space before a continuation.
struct ReplyText {
    filter: StopFilter,
    /// Small models often open with their own name as a label ("Marisol Vega: Hello"): the
    /// opening is held (`lead`) until it is clearly not that label, and the label is dropped.
    label: String,
    lead: Option<String>,
    at_start: bool,
    /// A continuation goes on after a space, unless the text ends with one already.
    separator: &'static str,
}

impl ReplyText {
    fn new(stops: Vec<String>, character: &str, prefix: &str) -> ReplyText {
        ReplyText {
            filter: StopFilter::new(stops),
            label: format!("{character}:"),
            lead: Some(String::new()),
            at_start: true,
            separator: if prefix.is_empty() || prefix.ends_with(char::is_whitespace) {
                ""
            } else {
                " "
            },
        }
    }

    /// The text a streamed piece makes safe to show, if any.
    fn take(&mut self, piece: &str) -> Option<String> {
        // Models often open with a space or newline; the reply starts at its first word. Only
        // before the first word: the spaces inside a held opening ("Leonardo da Vinci is…",
        // which might have been a label) are the reply's.
        let nothing_yet = self.lead.as_ref().is_none_or(|held| held.is_empty());
        let piece = if self.at_start && nothing_yet {
            piece.trim_start()
        } else {
            piece
        };
        let piece = match self.lead.as_mut() {
            Some(held) => {
                held.push_str(piece);
                let rest = strip_label(held, &self.label)?;
                self.lead = None;
                rest
            }
            None => piece.to_string(),
        };
        let shown = self.filter.push(&piece);
        if shown.is_empty() {
            return None;
        }
        self.at_start = false;
        let shown = format!("{}{shown}", self.separator);
        self.separator = "";
        Some(shown)
    }

    /// The reply ended while its opening still looked like the label's start: it was the reply.
    fn flush_held(
        &mut self,
        sink: &mut (dyn FnMut(&str) -> Result<(), TurnError> + Send),
    ) -> Result<(), TurnError> {
        if let Some(held) = self.lead.take().filter(|h| !h.is_empty()) {
            let shown = self.filter.push(&held);
            if !shown.is_empty() {
                sink(&shown)?;
            }
        }
        Ok(())
    }
}

/// Commits the next piece of the reply. When the database refuses it (disk full, I/O error),
/// the row is closed `interrupted` with what it holds, which is what was shown, rather than
/// left `streaming`, locked against edit, delete, continue and regenerate until a restart.
fn append(store: &Store, reply: &Message, piece: &str) -> Result<(), TurnError> {
    let Err(e) = store.append_to_message(reply.id, piece) else {
        return Ok(());
    };
    let kept = store
        .get_message(reply.id)
        .ok()
        .flatten()
        .map(|m| m.content)
        .unwrap_or_default();
    if let Err(close) = store.finish_message(reply.id, kept.trim_end(), MessageStatus::Interrupted)
    {
        tracing::warn!(
            "cannot close reply {} after a failed write: {close}",
            reply.id
        );
    }
    Err(e.into())
}

/// Writes the reply's final text and status and reads the row back.
fn close(
    store: &Store,
    reply: Message,
    prefix: &str,
    filter: &StopFilter,
    cut_off: bool,
    interrupted: bool,
) -> Result<Message, TurnError> {
    // A reply that ran out of tokens ends mid-sentence; like SillyTavern's "trim incomplete
    // sentences", keep it up to its last full sentence (when it has one).
    let content = if cut_off {
        trim_incomplete_sentence(filter.shown())
    } else {
        filter.shown()
    };
    let content = if prefix.is_empty() {
        content.trim_end().to_string()
    } else if content.trim().is_empty() {
        prefix.to_string()
    } else {
        let sep = if prefix.ends_with(char::is_whitespace) {
            ""
        } else {
            " "
        };
        format!("{prefix}{sep}{}", content.trim_end())
    };
    let status = if interrupted {
        MessageStatus::Interrupted
    } else {
        MessageStatus::Complete
    };
    store.finish_message(reply.id, &content, status)?;
    Ok(store.get_message(reply.id)?.unwrap_or(Message {
        content,
        status,
        ..reply
    }))
}

impl Ended {
    fn stats(&self, started: Instant) -> ReplyStats {
        let elapsed = started.elapsed().as_secs_f64();
        let first = self.first_token_ms.unwrap_or((elapsed * 1000.0) as u64);
        let decode_secs = elapsed - first as f64 / 1000.0;
        ReplyStats {
            prompt_tokens: self.usage.map(|u| u.prompt_tokens).unwrap_or(0),
            reply_tokens: self
                .usage
                .map(|u| u.completion_tokens)
                .unwrap_or(self.n_pieces),
            first_token_ms: first,
            tokens_per_second: if decode_secs > 0.0 && self.n_pieces > 1 {
                (self.n_pieces - 1) as f64 / decode_secs
            } else {
                0.0
            },
        }
    }
}
