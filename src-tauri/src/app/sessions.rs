//! Sessions as a person starts and keeps them: a new Session with its greeting (in
//! companionship, picking up from the last one).

use super::{now_ms, Troupe};
use crate::characters::Scenario;
use crate::store;

impl Troupe {
    /// Starts a Session: its greeting is the Scenario's; in companionship, when the user has
    /// talked with this Character before, it picks up from the last conversation.
    pub fn start_session(
        &self,
        character_id: &str,
        scenario: Scenario,
        persona_id: Option<i64>,
    ) -> Result<store::Session, store::Error> {
        let c = self.store.get_character(character_id)?;
        let mut greeting = c.greeting(scenario).unwrap_or_default();
        if scenario == Scenario::Companionship {
            let last = self
                .store
                .list_sessions(character_id)?
                .into_iter()
                .find(|s| s.scenario == Scenario::Companionship);
            if let Some(last) = last {
                let facts: Vec<String> = self
                    .store
                    .memories_for_session(last.id)?
                    .into_iter()
                    .filter(|m| m.kind == store::MemoryKind::Fact && m.session_id == Some(last.id))
                    .map(|m| m.content)
                    .collect();
                let said = self
                    .store
                    .list_messages(last.id)?
                    .into_iter()
                    .rev()
                    .find(|m| m.role == store::Role::User)
                    .map(|m| m.content);
                if let Some(recall) = crate::conversation::memory::pick_up(&facts, said.as_deref())
                {
                    greeting = if greeting.trim().is_empty() {
                        format!("Welcome back! {recall}")
                    } else {
                        format!("{}\n\n{recall}", greeting.trim())
                    };
                }
            }
        }
        let s = self.store.create_session(
            character_id,
            scenario,
            scenario.label(),
            Some(greeting.as_str()),
            now_ms(),
        )?;
        if let Some(p) = persona_id {
            self.store.set_session_persona(s.id, p)?;
        }
        self.store.get_session(s.id)
    }
}
