//! Wire types of Settings → Local API (`ui/src/api/server.ts`): whether the API runs and where,
//! its key, and the person's choices.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::app::vocabulary as domain;

/// The local API as Settings shows it.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct LocalApi {
    /// Serving now.
    pub running: bool,
    /// Where clients call it, e.g. "http://127.0.0.1:7337/v1", while it runs.
    pub address: Option<String>,
    pub port: u16,
    /// The Bearer key clients send (empty until the API is first turned on).
    pub key: String,
    pub network: bool,
    pub start_with_troupe: bool,
    pub origins: Vec<String>,
    /// Why it is not running when it should (a port in use).
    pub error: Option<String>,
}

impl LocalApi {
    pub fn new(s: &domain::ApiSettings, address: Option<String>, error: Option<String>) -> Self {
        LocalApi {
            running: address.is_some(),
            address,
            port: s.port,
            key: s.key.clone().unwrap_or_default(),
            network: s.network,
            start_with_troupe: s.start_with_troupe,
            origins: s.origins.clone(),
            error,
        }
    }
}

/// What the person changed: on or off, and the choices.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct LocalApiChange {
    pub running: bool,
    pub port: u16,
    pub network: bool,
    pub start_with_troupe: bool,
    pub origins: Vec<String>,
}

impl LocalApiChange {
    /// The settings with this change (the key stays).
    pub fn apply(&self, s: &domain::ApiSettings) -> domain::ApiSettings {
        domain::ApiSettings {
            port: self.port,
            network: self.network,
            start_with_troupe: self.start_with_troupe,
            origins: self
                .origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect(),
            key: s.key.clone(),
        }
    }
}
