//! Group Sessions as every front end uses them: starting one, members joining, leaving and
//! being muted, a round of replies (the members the strategy chooses, or the one asked for),
//! "let them talk", and the prompt a member would get. One round per Session at a time, like
//! one reply (`TurnError::Busy`); what the people chose to say is never lost: the person's
//! message is stored even when nobody can answer.

use super::{now_ms, sampling_for_session, Troupe};
use crate::characters::Scenario;
use crate::conversation::group::{self, Spoken};
use crate::conversation::prompt::PromptRecord;
use crate::conversation::{assemble, TurnError, TurnEvent};
use crate::settings::Settings;
use crate::store::{self, CharacterSummary, Group, Member, Strategy};

/// A member of a group with their Character: `None` when it was deleted for good; a
/// Character in the trash has `deleted_at` set.
#[derive(Debug, Clone)]
pub struct CastMember {
    pub member: Member,
    pub character: Option<CharacterSummary>,
}

/// Why a group cannot be started or changed.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("a group needs two or more different characters")]
    TooFew,
    #[error("'{0}' is not a member of this group")]
    NotAMember(String),
    #[error("session {0} is a conversation with one character, not a group")]
    NotAGroup(i64),
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Troupe {
    /// Starts a group of `members` (two or more; the first is the host) in `scenario`, named
    /// `name` or after its members; the first member with a greeting for the Scenario opens it.
    pub fn start_group(
        &self,
        members: &[String],
        scenario: Scenario,
        strategy: Strategy,
        name: Option<&str>,
    ) -> Result<store::Session, GroupError> {
        let mut ids: Vec<String> = Vec::new();
        for m in members.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
            if !ids.iter().any(|x| x == m) {
                ids.push(m.to_string());
            }
        }
        if ids.len() < 2 {
            return Err(GroupError::TooFew);
        }
        let mut names = Vec::new();
        let mut greeting = None;
        for id in &ids {
            let c = self.store.get_character(id)?;
            if greeting.is_none() {
                greeting = c.greeting(scenario).map(|g| (id.clone(), g));
            }
            names.push(c.name);
        }
        let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => listed(&names),
        };
        let greeting = greeting.as_ref().map(|(id, g)| (id.as_str(), g.as_str()));
        Ok(self
            .store
            .create_group(&ids, scenario, &name, strategy, greeting, now_ms())?)
    }

    /// The group part of a Session; `None` for a one-Character Session.
    pub fn group(&self, session_id: i64) -> Result<Option<Group>, store::Error> {
        self.store.group(session_id)
    }

    /// The group part of a Session with each member's Character, for showing it (`None` for
    /// a one-Character Session).
    pub fn group_cast(
        &self,
        session_id: i64,
    ) -> Result<Option<(Group, Vec<CastMember>)>, store::Error> {
        let Some(group) = self.store.group(session_id)? else {
            return Ok(None);
        };
        let mut known = self.store.list_characters()?;
        known.extend(self.store.list_trash()?);
        let cast = group
            .members
            .iter()
            .map(|m| CastMember {
                member: m.clone(),
                character: known.iter().find(|c| c.id == m.character_id).cloned(),
            })
            .collect();
        Ok(Some((group, cast)))
    }

    /// How the group's next speaker is chosen from now on.
    pub fn set_group_strategy(
        &self,
        session_id: i64,
        strategy: Strategy,
    ) -> Result<(), GroupError> {
        self.group_of(session_id)?;
        Ok(self.store.set_strategy(session_id, strategy)?)
    }

    /// A Character joins the group (a new member, or one who left coming back) or leaves it;
    /// a member's prompt holds only what was said while they were there.
    pub fn set_member_present(
        &self,
        session_id: i64,
        character_id: &str,
        present: bool,
    ) -> Result<(), GroupError> {
        let group = self.group_of(session_id)?;
        if present {
            self.store.get_character(character_id)?;
        } else if !group.members.iter().any(|m| m.character_id == character_id) {
            return Err(GroupError::NotAMember(character_id.into()));
        }
        Ok(self
            .store
            .set_member_present(session_id, character_id, present)?)
    }

    /// A muted member is never chosen to speak; asked by name, they still answer.
    pub fn set_member_muted(
        &self,
        session_id: i64,
        character_id: &str,
        muted: bool,
    ) -> Result<(), GroupError> {
        let group = self.group_of(session_id)?;
        if !group.members.iter().any(|m| m.character_id == character_id) {
            return Err(GroupError::NotAMember(character_id.into()));
        }
        Ok(self
            .store
            .set_member_muted(session_id, character_id, muted)?)
    }

    /// A round: the person's `text` (if any) stored, then the reply of `asked` (a member's id),
    /// or of the members the group's strategy chooses. Nobody able to answer is
    /// `TurnError::NoSpeaker`, with the message kept.
    pub async fn group_send(
        &self,
        settings: &Settings,
        session_id: i64,
        text: Option<&str>,
        asked: Option<&str>,
        on_event: &mut (dyn FnMut(TurnEvent) + Send),
    ) -> Result<Vec<Spoken>, TurnError> {
        let engine = self.engine.engine()?;
        let sampling = sampling_for_session(&self.store, settings, session_id)?;
        let (cancel, _running) = self.activity.start_reply(session_id)?;
        self.activity.cancel_summary(session_id);
        // The member asked is checked first: a refused request stores nothing.
        let asked = asked
            .map(|a| self.asked_member(session_id, a))
            .transpose()?;
        let (store, e) = (&self.store, engine.as_ref());
        if text.is_some() {
            // Stored before the speakers are chosen, so its mentions count.
            group::send(
                store,
                e,
                session_id,
                text,
                &[],
                &sampling,
                &cancel,
                &now_ms,
                on_event,
            )
            .await?;
        }
        let speakers = match asked {
            Some(id) => vec![id],
            None => group::choose(store, session_id, &mut || fastrand::f64())?,
        };
        if speakers.is_empty() {
            return Err(TurnError::NoSpeaker);
        }
        group::send(
            store, e, session_id, None, &speakers, &sampling, &cancel, &now_ms, on_event,
        )
        .await
    }

    /// "Let them talk": `rounds` rounds with no message from the person, each speaker chosen
    /// by the natural strategy's rules from what was just said.
    pub async fn let_them_talk(
        &self,
        settings: &Settings,
        session_id: i64,
        rounds: usize,
        on_event: &mut (dyn FnMut(TurnEvent) + Send),
    ) -> Result<Vec<Spoken>, TurnError> {
        let mut all = Vec::new();
        for _ in 0..rounds {
            match self
                .group_send(settings, session_id, None, None, on_event)
                .await
            {
                Ok(spoken) => all.extend(spoken),
                Err(TurnError::NoSpeaker) if !all.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(all)
    }

    /// The prompt `speaker` would get next in group `session_id`, for `message` (none: up to
    /// the history), with the engine that is running.
    pub async fn group_prompt(
        &self,
        settings: &Settings,
        session_id: i64,
        speaker: &str,
        message: Option<&str>,
    ) -> Result<PromptRecord, TurnError> {
        let engine = self.engine.engine()?;
        let sampling = sampling_for_session(&self.store, settings, session_id)?;
        let speaker = self.asked_member(session_id, speaker)?;
        let ctx = group::speaker_context(&self.store, session_id, &speaker)?;
        let budget = assemble::budget(engine.as_ref(), &sampling);
        Ok(assemble::assemble(engine.as_ref(), &ctx, message, budget)
            .await?
            .record)
    }

    /// Who wrote each reply of a group, by message id.
    pub fn group_speakers(
        &self,
        session_id: i64,
    ) -> Result<std::collections::HashMap<i64, String>, store::Error> {
        self.store.speakers(session_id)
    }

    fn group_of(&self, session_id: i64) -> Result<Group, GroupError> {
        self.store
            .group(session_id)?
            .ok_or(GroupError::NotAGroup(session_id))
    }

    /// The member asked for, by id or name (a muted or absent one too; not one in the trash).
    fn asked_member(&self, session_id: i64, asked: &str) -> Result<String, TurnError> {
        let group = self
            .store
            .group(session_id)?
            .ok_or_else(|| TurnError::NotAReply(format!("session {session_id} is not a group")))?;
        let candidates = group::candidates(&self.store, &group)?;
        let found = candidates
            .iter()
            .find(|c| c.id == asked || c.name.eq_ignore_ascii_case(asked.trim()));
        match found {
            Some(c) if !self.store.in_trash(&c.id).unwrap_or(true) => Ok(c.id.clone()),
            Some(c) => Err(TurnError::NotAReply(format!(
                "{} is in the trash; restore them to hear from them",
                c.name
            ))),
            None => Err(TurnError::NotAReply(format!(
                "'{asked}' is not a member of this group"
            ))),
        }
    }
}

/// "A", "A and B", "A, B and C".
fn listed(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
