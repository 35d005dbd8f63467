//! Sampling at its three levels: a Session's override, a Character's default, the settings'.
//! `sampling_at` resolves which applies; `set_sampling_at` validates and stores one.

use crate::engine::Sampling;
use crate::settings::Settings;
use crate::store::{self, Store};

/// Sampling for a reply, from the settings, with the chat's stop strings.
pub fn sampling(settings: &Settings) -> Sampling {
    Sampling {
        stop: crate::conversation::prompt::stop_strings(),
        ..settings.sampling.clone()
    }
}

/// Where a Sampling setting lives: a Character's default or a Session's override.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplingScope<'a> {
    Character(&'a str),
    Session(i64),
}

/// Which level a Session's or Character's effective Sampling comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplingSource {
    Session,
    Character,
    Settings,
}

/// The Sampling set at a scope (if any) and what applies there.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingLevel {
    pub own: Option<Sampling>,
    pub effective: Sampling,
    pub source: SamplingSource,
}

/// Session override → Character default → settings. A stored value that no longer parses is
/// skipped, not fatal.
pub fn sampling_at(
    store: &Store,
    settings: &Settings,
    scope: SamplingScope,
) -> Result<SamplingLevel, store::Error> {
    let parse = |j: Option<String>| j.and_then(|j| serde_json::from_str::<Sampling>(&j).ok());
    let (session, character) = match scope {
        SamplingScope::Character(id) => (None, parse(store.character_sampling(id)?)),
        SamplingScope::Session(id) => {
            let (s, c) = store.sampling_for_session(id)?;
            (parse(s), parse(c))
        }
    };
    let own = match scope {
        SamplingScope::Character(_) => character.clone(),
        SamplingScope::Session(_) => session.clone(),
    };
    let (effective, source) = match (session, character) {
        (Some(s), _) => (s, SamplingSource::Session),
        (None, Some(c)) => (c, SamplingSource::Character),
        (None, None) => (settings.sampling.clone(), SamplingSource::Settings),
    };
    Ok(SamplingLevel {
        own,
        effective,
        source,
    })
}

/// Why a Sampling could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SetSamplingError {
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Sets (or, with `None`, clears) the Sampling at `scope`, after validating it.
pub fn set_sampling_at(
    store: &Store,
    scope: SamplingScope,
    sampling: Option<&Sampling>,
) -> Result<(), SetSamplingError> {
    if let Some(s) = sampling {
        s.validate()
            .map_err(|(field, why)| SetSamplingError::Invalid(field, why))?;
    }
    let json = sampling.map(|s| serde_json::to_string(s).expect("Sampling serialises"));
    match scope {
        SamplingScope::Character(id) => store.set_character_sampling(id, json.as_deref())?,
        SamplingScope::Session(id) => store.set_session_sampling(id, json.as_deref())?,
    }
    Ok(())
}

/// Sampling for the next reply in a Session, with the chat's stop strings.
pub fn sampling_for_session(
    store: &Store,
    settings: &Settings,
    session_id: i64,
) -> Result<Sampling, store::Error> {
    let level = sampling_at(store, settings, SamplingScope::Session(session_id))?;
    Ok(Sampling {
        stop: crate::conversation::prompt::stop_strings(),
        ..level.effective
    })
}

impl super::Troupe {
    /// The Sampling set at `scope` (if any) and what applies there.
    pub fn sampling_at(
        &self,
        settings: &Settings,
        scope: SamplingScope,
    ) -> Result<SamplingLevel, store::Error> {
        sampling_at(&self.store, settings, scope)
    }

    /// Sets (or, with `None`, clears) the Sampling at `scope`, after validating it.
    pub fn set_sampling_at(
        &self,
        scope: SamplingScope,
        sampling: Option<&Sampling>,
    ) -> Result<(), SetSamplingError> {
        set_sampling_at(&self.store, scope, sampling)
    }
}
