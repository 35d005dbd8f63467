//! Talking with a Character, as every front end does it: one reply per Session at a time, Stop,
//! the background work around a reply (the rolling summary, warming the next prompt) and the
//! order between them. The window, the CLI and the local API call these; none of them keeps
//! its own bookkeeping of what runs.
//!
//! The rules, which used to live in the window's commands:
//! - a second reply in a Session that is writing one is refused (`TurnError::Busy`);
//! - a reply goes first: a summary being written for its Session is cancelled, and a warm-up of
//!   its Session still prefilling is waited for (at most 30 s), so the reply reuses its work
//!   instead of competing with it for the same cores;
//! - a Session is warmed once per state (an identical prompt gets nothing from the prefix cache),
//!   never while a reply runs in it, and after the Character's own warm-up.
//!
//! Background work is returned as a future for the front end to spawn on its runtime (the
//! window's commands run outside tokio), or `None` when there is nothing to do.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{now_ms, sampling_for_session, Troupe};
use crate::conversation::{self, Cancel, ReplyStats, TurnError, TurnEvent};
use crate::engine::Sampling;
use crate::settings::Settings;
use crate::store::{self, Message};

/// What runs in this process, per Session. Shared by every clone of a `Troupe`.
#[derive(Default)]
pub(crate) struct Activity {
    /// The Stop buttons of the replies being written, by Session.
    running: Mutex<HashMap<i64, Cancel>>,
    /// Sessions whose next prompt was prefilled, with their message count at the time.
    warmed: Mutex<HashMap<i64, i64>>,
    /// Per Session, held by a running warm-up; a reply waits on it.
    warming: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// The running summary catch-up of each Session: a reply cancels it.
    summarising: Mutex<HashMap<i64, Cancel>>,
    /// Held by a running Character warm-up.
    character_warming: Arc<tokio::sync::Mutex<()>>,
    /// Sessions another front end wrote to (the local API), for a window that shows them.
    pub(super) changed: Changed,
}

/// Announces a Session written by someone other than the window (`Troupe::watch_sessions`).
pub(crate) struct Changed(tokio::sync::broadcast::Sender<i64>);

impl Default for Changed {
    fn default() -> Self {
        Changed(tokio::sync::broadcast::channel(64).0)
    }
}

impl Changed {
    pub(super) fn announce(&self, session_id: i64) {
        let _ = self.0.send(session_id); // nobody listening is fine
    }
}

/// Which way an existing reply is written again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// The last reply written anew, kept as another swipe.
    Regenerate,
    /// The last reply continued where it stopped.
    Continue,
}

impl Troupe {
    /// Sends the user's `text` in `session_id` and streams the reply through `on_event` (each
    /// piece already stored). Returns the stored reply and its figures.
    pub async fn send(
        &self,
        settings: &Settings,
        session_id: i64,
        text: &str,
        on_event: &mut (dyn FnMut(TurnEvent) + Send),
    ) -> Result<(Message, ReplyStats), TurnError> {
        self.send_adjusted(settings, session_id, text, &|s| s, on_event)
            .await
    }

    /// `send`, with the Session's sampling changed by `adjust` for this reply (the local API's
    /// request fields).
    pub(super) async fn send_adjusted(
        &self,
        settings: &Settings,
        session_id: i64,
        text: &str,
        adjust: &(dyn Fn(Sampling) -> Sampling + Sync),
        on_event: &mut (dyn FnMut(TurnEvent) + Send),
    ) -> Result<(Message, ReplyStats), TurnError> {
        if self.store.group(session_id)?.is_some() {
            // A group answers by its strategy; the last reply stands for the round.
            let spoken = self
                .group_send(settings, session_id, Some(text), None, on_event)
                .await?;
            let last = spoken.into_iter().last().ok_or(TurnError::NoSpeaker)?;
            return Ok((last.reply, last.stats));
        }
        let engine = self.engine.engine()?;
        let sampling = adjust(sampling_for_session(&self.store, settings, session_id)?);
        let (cancel, _running) = self.activity.start_reply(session_id)?;
        self.activity.cancel_summary(session_id);
        self.activity.wait_for_warm_up(session_id).await;
        conversation::send(
            &self.store,
            engine.as_ref(),
            session_id,
            text,
            &sampling,
            &cancel,
            &now_ms,
            on_event,
        )
        .await
    }

    /// Writes the last reply of its Session again or continues it, streaming like `send`.
    pub async fn rewrite(
        &self,
        settings: &Settings,
        reply_id: i64,
        how: Rewrite,
        on_event: &mut (dyn FnMut(TurnEvent) + Send),
    ) -> Result<(Message, ReplyStats), TurnError> {
        let engine = self.engine.engine()?;
        let session_id = self
            .store
            .get_message(reply_id)?
            .ok_or(store::Error::MessageNotFound(reply_id))?
            .session_id;
        let sampling = sampling_for_session(&self.store, settings, session_id)?;
        let (cancel, _running) = self.activity.start_reply(session_id)?;
        self.activity.cancel_summary(session_id);
        let (store, engine) = (&self.store, engine.as_ref());
        match how {
            Rewrite::Continue => {
                conversation::continue_reply(store, engine, reply_id, &sampling, &cancel, on_event)
                    .await
            }
            Rewrite::Regenerate => {
                conversation::regenerate(store, engine, reply_id, &sampling, &cancel, on_event)
                    .await
            }
        }
    }

    /// The Sessions the local API writes to, as it writes (when its message is stored, and when
    /// the reply ends), for a window that shows one of them.
    pub fn watch_sessions(&self) -> tokio::sync::broadcast::Receiver<i64> {
        self.activity.changed.0.subscribe()
    }

    /// The Stop button: ends the reply being written in `session_id`, keeping what was said.
    /// False when none is.
    pub fn stop_reply(&self, session_id: i64) -> bool {
        self.activity.stop_reply(session_id)
    }

    /// Reads the facts the last message states, then writes the rolling summary of whatever the
    /// window has moved past, now (the CLI, after a reply); `cancel` stops it between chunks.
    /// Returns the summary chunks written.
    pub async fn summarise(
        &self,
        settings: &Settings,
        session_id: i64,
        cancel: &Cancel,
    ) -> Result<Vec<store::Memory>, TurnError> {
        let engine = self.engine.engine()?;
        let sampling = sampling_for_session(&self.store, settings, session_id)?;
        conversation::memory::learn(&self.store, engine.as_ref(), session_id, cancel, &now_ms)
            .await?;
        conversation::memory::catch_up(
            &self.store,
            engine.as_ref(),
            session_id,
            &sampling,
            cancel,
            &now_ms,
        )
        .await
    }

    /// The background work that gets `session_id` ready for its next message: the facts its
    /// last message states (companionship), the summary of what the window moved past, then a prefill of the next prompt (see
    /// `conversation::warm`). `None` when it was already warmed as it is now, a reply runs in
    /// it, or a warm-up is running.
    pub fn warm_session(
        &self,
        settings: &Settings,
        session_id: i64,
    ) -> Result<Option<impl Future<Output = ()> + Send + 'static>, TurnError> {
        let engine = self.engine.engine()?;
        if self.store.group(session_id)?.is_some() {
            return Ok(None); // each member's prompt differs; the speaker is not known yet
        }
        let n_messages = self.store.get_session(session_id)?.n_messages;
        if !self.activity.should_warm(session_id, n_messages) {
            return Ok(None);
        }
        let Ok(warming) = self.activity.warm_lock(session_id).try_lock_owned() else {
            return Ok(None); // One is running already.
        };
        let store = self.store.clone();
        let sampling = sampling_for_session(&store, settings, session_id)?;
        let activity = self.activity.clone();
        Ok(Some(async move {
            // Held until the prefill is done; a reply waits on it.
            let _warming = warming;
            // A Character warm-up still running: let it finish, then build on its prefix.
            drop(activity.character_warming.lock().await);
            // First memory (the next prompt includes it), unless a message comes meanwhile:
            // the facts the last message states, then the summary.
            let cancel = Cancel::new();
            activity.summarising(session_id, Some(cancel.clone()));
            let learned =
                conversation::memory::learn(&store, engine.as_ref(), session_id, &cancel, &now_ms)
                    .await;
            if let Err(e) = learned {
                tracing::warn!("reading facts in session {session_id} failed: {e}");
            }
            let summary = conversation::memory::catch_up(
                &store,
                engine.as_ref(),
                session_id,
                &sampling,
                &cancel,
                &now_ms,
            )
            .await;
            activity.summarising(session_id, None);
            if let Err(e) = summary {
                tracing::warn!("summarising session {session_id} failed: {e}");
            }
            if cancel.is_cancelled() {
                return; // A message is on its way; its turn prefills what it needs.
            }
            if let Err(e) = conversation::warm(&store, engine.as_ref(), session_id, &sampling).await
            {
                tracing::debug!("warming session {session_id} failed: {e}");
            }
        }))
    }

    /// The background work that prefills a Character's part of every prompt (see
    /// `conversation::warm_character`), when a person opens it; `None` while one runs.
    pub fn warm_character(
        &self,
        character_id: &str,
    ) -> Result<Option<impl Future<Output = ()> + Send + 'static>, TurnError> {
        let engine = self.engine.engine()?;
        let character = self.store.get_character(character_id)?;
        let Ok(warming) = self.activity.character_warming.clone().try_lock_owned() else {
            return Ok(None);
        };
        Ok(Some(async move {
            let _warming = warming;
            conversation::warm_character(engine.as_ref(), &character).await;
        }))
    }
}

/// A reply running in a Session. Dropping it frees the Session, however the reply ended:
/// done, failed, cancelled with its future, or a panic inside it (which would otherwise have
/// left the Session "busy" until the app restarted).
pub(super) struct Running<'a> {
    activity: &'a Activity,
    session_id: i64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(&self.activity.running).remove(&self.session_id);
    }
}

impl Activity {
    pub(super) fn start_reply(&self, session_id: i64) -> Result<(Cancel, Running<'_>), TurnError> {
        let mut running = lock(&self.running);
        if running.contains_key(&session_id) {
            return Err(TurnError::Busy);
        }
        let cancel = Cancel::new();
        running.insert(session_id, cancel.clone());
        let guard = Running {
            activity: self,
            session_id,
        };
        Ok((cancel, guard))
    }

    fn stop_reply(&self, session_id: i64) -> bool {
        match lock(&self.running).get(&session_id) {
            Some(c) => {
                c.cancel();
                true
            }
            None => false,
        }
    }

    /// Whether a reply is being written in this Session.
    pub(super) fn is_replying(&self, session_id: i64) -> bool {
        lock(&self.running).contains_key(&session_id)
    }

    /// Whether a reply is being written in any Session (a restore waits for none).
    pub(super) fn replying(&self) -> bool {
        !lock(&self.running).is_empty()
    }

    /// False when a reply is running in the Session or it was already warmed as it is now.
    fn should_warm(&self, session_id: i64, n_messages: i64) -> bool {
        if lock(&self.running).contains_key(&session_id) {
            return false;
        }
        lock(&self.warmed).insert(session_id, n_messages) != Some(n_messages)
    }

    /// The lock a Session's warm-up holds while it prefills.
    fn warm_lock(&self, session_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.warming).entry(session_id).or_default().clone()
    }

    /// Waits (at most 30 s) for the Character's and then the Session's warm-up to finish, one
    /// after the other, never both held (the Session's warm-up itself waits for the
    /// Character's).
    async fn wait_for_warm_up(&self, session_id: i64) {
        let warming = self.warm_lock(session_id);
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            drop(self.character_warming.lock().await);
            drop(warming.lock().await);
        })
        .await;
    }

    /// A summary being written for `session_id` goes second: a reply is what the user waits for.
    pub(super) fn cancel_summary(&self, session_id: i64) {
        if let Some(c) = lock(&self.summarising).get(&session_id) {
            c.cancel();
        }
    }

    /// Records (or, with `None`, forgets) the summary running for `session_id`.
    fn summarising(&self, session_id: i64, cancel: Option<Cancel>) {
        let mut map = lock(&self.summarising);
        match cancel {
            Some(c) => map.insert(session_id, c),
            None => map.remove(&session_id),
        };
    }
}

/// A poisoned lock still holds consistent maps: every update above is one insert or remove.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::panic::AssertUnwindSafe;
    use std::sync::Arc;
    use std::time::Duration;

    use futures::FutureExt;

    use crate::app::Troupe;
    use crate::characters::Scenario;
    use crate::engine::{ScriptedEngine, Slot};
    use crate::settings::{Paths, Settings};

    #[tokio::test]
    async fn a_panic_inside_a_reply_does_not_leave_the_session_busy() {
        let dir = tempfile::tempdir().unwrap();
        let mut troupe = Troupe::open(Paths::at(dir.path())).unwrap();
        troupe.engine = Slot::with_engine(Arc::new(ScriptedEngine::new(
            &["Hello."],
            Duration::from_millis(1),
        )));
        let s = troupe
            .start_session("ada-lovelace", Scenario::ChitChat, None)
            .unwrap();
        let mut settings = Settings::default();
        settings.sampling.max_tokens = 32; // the scripted engine's context is small
                                           // A front end's callback panics in the middle of the reply.
        let panicked = AssertUnwindSafe(troupe.send(&settings, s.id, "Hi", &mut |_| {
            panic!("the window went away badly")
        }))
        .catch_unwind()
        .await;
        assert!(panicked.is_err(), "{:?}", panicked.ok());
        // The Session is free again: the next message is answered, not refused as busy.
        let (reply, _) = troupe
            .send(&settings, s.id, "Hi again", &mut |_| {})
            .await
            .unwrap();
        assert_eq!(reply.content, "Hello.");
    }
}
