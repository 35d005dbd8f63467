//! Wire types of the engine area (`ui/src/api/engine.ts`): the model's status, sampling, the
//! settings and the model manager.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::ApiError;
use crate::app::vocabulary::{self as domain, Sampling};

/// The model's state, for the status bar (also sent as the `engine://status` event).
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EngineStatus {
    Loading {
        model: String,
    },
    #[serde(rename_all = "camelCase")]
    Ready {
        model: String,
        device: String,
        context_length: usize,
        architecture: String,
        /// e.g. "Q4_1 → Q8_0" when Troupe runs a transcoded copy.
        quantization: String,
        #[ts(type = "number")]
        parameters: u64,
        /// e.g. "all 30 layers on the CPU".
        layers: Option<String>,
    },
    Failed {
        error: ApiError,
    },
}

impl From<domain::EngineStatus> for EngineStatus {
    fn from(s: domain::EngineStatus) -> Self {
        let file = |p: &std::path::Path| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        match s {
            domain::EngineStatus::Loading { path } => EngineStatus::Loading { model: file(&path) },
            domain::EngineStatus::Ready(info) => EngineStatus::Ready {
                model: info.name,
                device: info.device,
                // What a conversation can actually use (Troupe caps long contexts on CPU).
                context_length: info.context_length.min(domain::CONTEXT_CAP),
                architecture: info.architecture,
                quantization: info.quantization,
                parameters: info.parameters,
                layers: info.layers,
            },
            domain::EngineStatus::Failed(e) => EngineStatus::Failed { error: e.into() },
        }
    }
}

/// How replies are sampled (engine::Sampling, less the per-reply stop strings).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Sampling")]
pub struct SamplingJson {
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: usize,
    pub min_p: f64,
    pub repetition_penalty: f64,
    /// Tokens the penalty looks back over (0 = the whole context).
    #[serde(default = "default_window")]
    pub repetition_window: usize,
    /// DRY's strength against copied phrases (0 = off).
    #[serde(default = "default_dry")]
    pub dry_multiplier: f64,
    pub max_tokens: usize,
    pub seed: Option<u64>,
}

fn default_window() -> usize {
    Sampling::default().repetition_window
}

fn default_dry() -> f64 {
    Sampling::default().dry_multiplier
}

impl From<Sampling> for SamplingJson {
    fn from(s: Sampling) -> Self {
        SamplingJson {
            temperature: s.temperature,
            top_p: s.top_p,
            top_k: s.top_k,
            min_p: s.min_p,
            repetition_penalty: s.repetition_penalty,
            repetition_window: s.repetition_window,
            dry_multiplier: s.dry_multiplier,
            max_tokens: s.max_tokens,
            seed: s.seed,
        }
    }
}

impl From<SamplingJson> for Sampling {
    fn from(s: SamplingJson) -> Self {
        Sampling {
            temperature: s.temperature,
            top_p: s.top_p,
            top_k: s.top_k,
            min_p: s.min_p,
            repetition_penalty: s.repetition_penalty,
            repetition_window: s.repetition_window,
            dry_multiplier: s.dry_multiplier,
            max_tokens: s.max_tokens,
            seed: s.seed,
            stop: vec![],
            dry_names: vec![],
        }
    }
}

/// A named sampling preset, for the preset menu.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(rename = "Preset")]
pub struct PresetJson {
    pub name: String,
    pub sampling: SamplingJson,
}

/// The Sampling at a Character or Session: its own (null = inherits) and what applies.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(rename = "SamplingLevel")]
pub struct SamplingLevelJson {
    pub own: Option<SamplingJson>,
    pub effective: SamplingJson,
    /// Where `effective` comes from: "session", "character" or "settings".
    pub source: String,
}

impl From<crate::app::SamplingLevel> for SamplingLevelJson {
    fn from(l: crate::app::SamplingLevel) -> Self {
        use crate::app::SamplingSource;
        SamplingLevelJson {
            own: l.own.map(Into::into),
            effective: l.effective.into(),
            source: match l.source {
                SamplingSource::Session => "session",
                SamplingSource::Character => "character",
                SamplingSource::Settings => "settings",
            }
            .into(),
        }
    }
}

/// The remote server's settings.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "RemoteSettings")]
pub struct RemoteSettingsJson {
    pub base_url: String,
    /// Never sent to the window (script in a webview must not read it): always null going
    /// out. Coming back, null keeps the key as it is, "" removes it, any other text replaces it.
    pub api_key: Option<String>,
    /// Whether a key is set.
    #[serde(default)]
    pub api_key_set: bool,
    pub model: String,
    pub context_length: usize,
}

/// The settings form.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Settings")]
pub struct SettingsJson {
    /// The GGUF file chosen by the user; null for the default model.
    pub model_path: Option<String>,
    pub sampling: SamplingJson,
    /// "local" or "remote".
    pub engine: String,
    pub remote: RemoteSettingsJson,
    /// The file actually used (the choice above, or an override from the command line).
    #[serde(default)]
    pub effective_model_path: String,
    /// "system", "light" or "dark".
    #[serde(default)]
    pub theme: String,
    /// Whether the welcome was shown.
    #[serde(default)]
    pub welcomed: bool,
    /// "system", "en" or "zh-CN".
    #[serde(default)]
    pub language: String,
    /// Where the library lives (read-only; shown in the welcome).
    #[serde(default)]
    pub data_dir: String,
    /// The prompt cache's budget in MB (0: off).
    #[serde(default = "default_prompt_cache_mb")]
    pub prompt_cache_mb: u32,
}

fn default_prompt_cache_mb() -> u32 {
    domain::PromptCacheMb::default().0
}

impl SettingsJson {
    pub fn from_settings(
        s: &domain::Settings,
        effective: &std::path::Path,
        data_dir: &std::path::Path,
    ) -> SettingsJson {
        SettingsJson {
            data_dir: data_dir.display().to_string(),
            model_path: s.model_path.as_ref().map(|p| p.display().to_string()),
            sampling: s.sampling.clone().into(),
            engine: match s.engine {
                domain::EngineChoice::Local => "local",
                domain::EngineChoice::Remote => "remote",
            }
            .into(),
            remote: RemoteSettingsJson {
                base_url: s.remote.base_url.clone(),
                api_key: None,
                api_key_set: s.remote.api_key.is_some(),
                model: s.remote.model.clone(),
                context_length: s.remote.context_length,
            },
            effective_model_path: effective.display().to_string(),
            theme: match s.theme {
                domain::Theme::System => "system",
                domain::Theme::Light => "light",
                domain::Theme::Dark => "dark",
            }
            .into(),
            welcomed: s.welcomed,
            prompt_cache_mb: s.prompt_cache_mb.0,
            language: if s.language.is_empty() {
                "system".into()
            } else {
                s.language.clone()
            },
        }
    }

    /// The settings this form describes; `models` (the added files) is not in the form and is
    /// taken from `current`.
    pub fn to_settings(&self, current: &domain::Settings) -> domain::Settings {
        domain::Settings {
            model_path: self
                .model_path
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(Into::into),
            sampling: self.sampling.clone().into(),
            models: current.models.clone(),
            backups: current.backups,
            engine: if self.engine == "remote" {
                domain::EngineChoice::Remote
            } else {
                domain::EngineChoice::Local
            },
            remote: domain::RemoteSettings {
                base_url: self.remote.base_url.trim().to_string(),
                api_key: match &self.remote.api_key {
                    None => current.remote.api_key.clone(),
                    Some(k) => Some(k.trim().to_string()).filter(|k| !k.is_empty()),
                },
                model: self.remote.model.trim().to_string(),
                context_length: self.remote.context_length,
            },
            theme: match self.theme.as_str() {
                "light" => domain::Theme::Light,
                "dark" => domain::Theme::Dark,
                _ => domain::Theme::System,
            },
            welcomed: self.welcomed,
            language: match self.language.as_str() {
                l @ ("en" | "zh-CN") => l.to_string(),
                _ => String::new(),
            },
            // Settings → Local API saves on its own (`commands::server`).
            api: current.api.clone(),
            prompt_cache_mb: domain::PromptCacheMb(self.prompt_cache_mb),
        }
    }
}

/// A model file in the model manager.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "ModelFile")]
pub struct ModelFileJson {
    pub path: String,
    pub file_name: String,
    pub size_bytes: u64,
    pub architecture: Option<String>,
    pub parameters: Option<u64>,
    pub quantization: Option<String>,
    pub context_length: Option<u64>,
    /// "fits", "may_slow", "wont_fit" or "unusable".
    pub fit: String,
    /// The reason behind `fit` (or the file's problem, when unusable).
    pub fit_reason: String,
    /// The model the local engine uses (or would, when the remote one is chosen).
    pub in_use: bool,
    /// Added from elsewhere (can be removed from the list); false for files in the models folder.
    pub added: bool,
}

/// A Fit as the window names it.
fn fit_name(fit: crate::app::vocabulary::Fit) -> &'static str {
    use crate::app::vocabulary::Fit;
    match fit {
        Fit::Fits => "fits",
        Fit::MaySlow => "may_slow",
        Fit::WontFit => "wont_fit",
        Fit::Unusable => "unusable",
    }
}

impl ModelFileJson {
    pub fn new(m: domain::ModelFile, in_use: bool, added: bool) -> ModelFileJson {
        let h = m.header.as_ref().ok();
        ModelFileJson {
            path: m.path.display().to_string(),
            file_name: m
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size_bytes: m.size_bytes,
            architecture: h.map(|h| h.architecture.clone()),
            parameters: h.map(|h| h.n_params),
            quantization: h.map(|h| h.quantization.clone()),
            context_length: h.and_then(|h| h.context_length),
            fit: fit_name(m.fit).into(),
            fit_reason: m.fit_reason,
            in_use,
            added,
        }
    }
}

/// Progress of a model download, streamed to the UI.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DownloadEvent {
    #[serde(rename_all = "camelCase")]
    Progress {
        done: u64,
        total: Option<u64>,
        resumed_from: u64,
    },
}

/// A catalog model as this machine sees it (app::CatalogModel).
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "CatalogModel")]
pub struct CatalogModelJson {
    pub id: String,
    pub name: String,
    pub repo: String,
    pub file: String,
    pub parameters: u64,
    pub size_bytes: u64,
    pub context_length: u64,
    /// Memory it needs with the context Troupe uses, in bytes.
    pub need_bytes: u64,
    /// An SPDX identifier: Apache-2.0 or MIT.
    pub licence: String,
    pub good_at: String,
    pub languages: String,
    /// "fits", "may_slow" or "wont_fit", for this machine.
    pub fit: String,
    pub fit_reason: String,
    /// Its path when it is already here.
    pub installed: Option<String>,
    pub in_use: bool,
}

impl From<crate::app::CatalogModel> for CatalogModelJson {
    fn from(m: crate::app::CatalogModel) -> Self {
        let e = m.entry;
        CatalogModelJson {
            id: e.id.clone(),
            name: e.name.clone(),
            repo: e.repo.clone(),
            file: e.file.clone(),
            parameters: e.parameters,
            size_bytes: e.size_bytes,
            context_length: e.context_length,
            need_bytes: e.need(),
            licence: e.licence.clone(),
            good_at: e.good_at.clone(),
            languages: e.languages.clone(),
            fit: fit_name(m.fit).into(),
            fit_reason: m.fit_reason,
            installed: m.installed.map(|p| p.display().to_string()),
            in_use: m.in_use,
        }
    }
}
