//! A scratch library for one Character and one setup: the suites hold Sessions in it through
//! the real conversation code (`conversation::send_with`, the memory's `learn` and
//! `catch_up`), ask probe questions whose exchange is then removed, and insert scripted filler.
//! Nothing reaches the user's library. The clock is a counter, so a run is the same each time.

use anyhow::Context as _;

use crate::characters::{Character, Scenario};
use crate::conversation::{self, Cancel, Prompting, ReplyStats};
use crate::engine::{Engine, Sampling};
use crate::store::{self, MessageStatus, Role, Store};

use super::{Options, Setup};

/// A reply, with what its prompt carried besides the system prompt and the question.
pub(super) struct Reply {
    pub text: String,
    /// The summary, history and notes the reply was given.
    pub context: String,
}

pub(super) struct Bench<'a> {
    pub store: Store,
    pub engine: &'a dyn Engine,
    pub character: Character,
    pub prompting: Prompting,
    pub sampling: Sampling,
    pub cancel: &'a Cancel,
    /// Every reply's figures, for the speed suite.
    pub speed: Vec<ReplyStats>,
    /// Every reply's text in order, for the judge.
    pub transcript: Vec<(String, String)>,
    /// The long companionship Session, once `memory::long_session` has made it.
    pub long: Option<i64>,
    clock: std::sync::atomic::AtomicI64,
}

impl<'a> Bench<'a> {
    pub fn new(
        engine: &'a dyn Engine,
        character: &Character,
        setup: &Setup,
        opts: &Options,
        cancel: &'a Cancel,
    ) -> anyhow::Result<Bench<'a>> {
        let store = Store::open_in_memory().context("the scratch library")?;
        store.insert_character(character, 0)?;
        Ok(Bench {
            store,
            engine,
            character: character.clone(),
            prompting: if setup.naive {
                Prompting::Naive
            } else {
                Prompting::Troupe
            },
            sampling: Sampling {
                seed: Some(opts.seed),
                max_tokens: opts.max_tokens,
                ..setup.sampling.clone()
            },
            cancel,
            speed: Vec::new(),
            transcript: Vec::new(),
            long: None,
            clock: Default::default(),
        })
    }

    fn now(&self) -> i64 {
        self.clock
            .fetch_add(1000, std::sync::atomic::Ordering::Relaxed)
    }

    /// A new Session in `scenario`, opening with the Character's greeting.
    pub fn session(&self, scenario: Scenario) -> anyhow::Result<i64> {
        let greeting = self.character.greeting(scenario);
        Ok(self
            .store
            .create_session(
                &self.character.id,
                scenario,
                scenario.label(),
                greeting.as_deref(),
                self.now(),
            )?
            .id)
    }

    /// One turn, kept in the Session; then the memory work the app does after a reply.
    pub async fn say(&mut self, session: i64, text: &str) -> anyhow::Result<Reply> {
        let reply = self.turn(session, text).await?;
        self.remember(session).await?;
        Ok(reply)
    }

    /// A question whose exchange is removed afterwards, so the next probe sees the Session as
    /// this one did.
    pub async fn ask(&mut self, session: i64, text: &str) -> anyhow::Result<Reply> {
        let before = self.store.list_messages(session)?.len();
        let reply = self.turn(session, text).await;
        for m in self.store.list_messages(session)?.into_iter().skip(before) {
            self.store.delete_message(m.id, self.now())?;
        }
        reply
    }

    async fn turn(&mut self, session: i64, text: &str) -> anyhow::Result<Reply> {
        if self.cancel.is_cancelled() {
            anyhow::bail!("stopped");
        }
        let now = || {
            self.clock
                .fetch_add(1000, std::sync::atomic::Ordering::Relaxed)
        };
        let (message, stats) = conversation::send_with(
            self.prompting,
            &self.store,
            self.engine,
            session,
            text,
            &self.sampling,
            self.cancel,
            &now,
            &mut |_| {},
        )
        .await?;
        self.speed.push(stats);
        let record: conversation::prompt::PromptRecord =
            match self.store.prompt_record(message.id)? {
                Some(json) => serde_json::from_str(&json).unwrap_or_default(),
                None => Default::default(),
            };
        let context = record
            .sections
            .iter()
            .filter(|s| s.name != "System prompt" && s.name != "Message")
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        self.transcript
            .push((text.to_string(), message.content.clone()));
        Ok(Reply {
            text: message.content,
            context,
        })
    }

    /// What the app does in the background after a reply (Troupe's prompting only): the facts
    /// of the last message, then the rolling summary.
    pub async fn remember(&self, session: i64) -> anyhow::Result<()> {
        if self.prompting == Prompting::Naive {
            return Ok(());
        }
        let now = || {
            self.clock
                .fetch_add(1000, std::sync::atomic::Ordering::Relaxed)
        };
        conversation::memory::learn(&self.store, self.engine, session, self.cancel, &now).await?;
        conversation::memory::catch_up(
            &self.store,
            self.engine,
            session,
            &self.sampling,
            self.cancel,
            &now,
        )
        .await?;
        Ok(())
    }

    /// Scripted exchanges stored as if they had happened (the filler of a long conversation).
    pub fn insert(&self, session: i64, exchanges: &[(String, String)]) -> anyhow::Result<()> {
        let rows: Vec<(Role, String)> = exchanges
            .iter()
            .flat_map(|(u, c)| [(Role::User, u.clone()), (Role::Character, c.clone())])
            .collect();
        self.store
            .insert_messages_bulk(session, &rows, MessageStatus::Complete, self.now())?;
        Ok(())
    }

    /// Tokens of the Session's stored messages.
    pub async fn history_tokens(&self, session: i64) -> anyhow::Result<usize> {
        let mut n = 0;
        for m in self.store.list_messages(session)? {
            n += self.engine.count_tokens(&m.content).await? + 6;
        }
        Ok(n)
    }

    /// Prompt tokens a turn may use.
    pub fn budget(&self) -> usize {
        conversation::assemble::budget(self.engine, &self.sampling)
    }

    pub fn facts(&self, session: i64) -> anyhow::Result<Vec<String>> {
        Ok(self
            .store
            .memories_for_session(session)?
            .into_iter()
            .filter(|m| m.kind == store::MemoryKind::Fact)
            .map(|m| m.content)
            .collect())
    }
}
