//! Where Troupe keeps things, and the user's settings.
//!
//! `Paths` is the one place that decides the data directory: `$TROUPE_DATA_DIR` if set (tests,
//! portable installs), else `$XDG_DATA_HOME/app.troupe`, else `~/.local/share/app.troupe`; the
//! same folder Tauri gives the identifier `app.troupe`, so the window and the CLI share one
//! database, one settings file and one model.
//!
//! `Settings` are a flat JSON object in `settings.json`, the format tauri-plugin-store reads and
//! writes: the desktop app edits it through the plugin, the CLI reads it directly. Unknown keys
//! are kept by the plugin; missing keys take defaults, so old files keep working.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The identifier in tauri.conf.json; it names the data directory.
pub const APP_ID: &str = "app.troupe";
/// The default model's file name, fetched by `.ci/start` into `<data>/models/`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Debug, Clone, PartialEq)]
pub struct Paths {
    pub data: PathBuf,
}

impl Paths {
    /// The data directory from the environment (see module doc).
    pub fn from_env() -> Paths {
        if let Some(d) = std::env::var_os("TROUPE_DATA_DIR").filter(|d| !d.is_empty()) {
            return Paths {
                data: PathBuf::from(d),
            };
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        Paths {
            data: base.join(APP_ID),
        }
    }

    pub fn at(data: impl Into<PathBuf>) -> Paths {
        Paths { data: data.into() }
    }
    pub fn database(&self) -> PathBuf {
        self.data.join("troupe.db")
    }
    pub fn avatars(&self) -> PathBuf {
        self.data.join("avatars")
    }
    pub fn models(&self) -> PathBuf {
        self.data.join("models")
    }
    pub fn settings(&self) -> PathBuf {
        self.data.join("settings.json")
    }
    pub fn default_model(&self) -> PathBuf {
        self.models().join(DEFAULT_MODEL_FILE)
    }
}

/// What the user can set. Field names are the keys in settings.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The GGUF to load; `None` means the default model in the data directory.
    pub model_path: Option<PathBuf>,
    pub temperature: f64,
    pub top_p: f64,
    pub max_reply_tokens: usize,
}

impl Default for Settings {
    fn default() -> Self {
        // Small models loop at temperature 0; 0.8 / 0.95 keeps them varied but coherent.
        Settings {
            model_path: None,
            temperature: 0.8,
            top_p: 0.95,
            max_reply_tokens: 200,
        }
    }
}

/// A setting out of range.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {problem}")]
pub struct InvalidSetting {
    pub field: &'static str,
    pub problem: String,
}

impl Settings {
    /// Reads settings.json; a missing or unreadable file gives the defaults (a damaged settings
    /// file must never keep the app from starting).
    pub fn load(path: &Path) -> Settings {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .map(Settings::from_json)
            .unwrap_or_default()
    }

    /// From the store's JSON object; fields of the wrong type take their defaults.
    pub fn from_json(v: serde_json::Value) -> Settings {
        let d = Settings::default();
        let get = |k: &str| v.get(k).cloned().unwrap_or(serde_json::Value::Null);
        Settings {
            model_path: serde_json::from_value(get("model_path")).unwrap_or(d.model_path),
            temperature: serde_json::from_value(get("temperature")).unwrap_or(d.temperature),
            top_p: serde_json::from_value(get("top_p")).unwrap_or(d.top_p),
            max_reply_tokens: serde_json::from_value(get("max_reply_tokens"))
                .unwrap_or(d.max_reply_tokens),
        }
    }

    /// Checks ranges; the UI shows the message next to the field.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(0.0..=2.0).contains(&self.temperature) {
            return Err(InvalidSetting {
                field: "temperature",
                problem: "must be between 0 and 2".into(),
            });
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(InvalidSetting {
                field: "top_p",
                problem: "must be above 0 and at most 1".into(),
            });
        }
        if !(1..=4096).contains(&self.max_reply_tokens) {
            return Err(InvalidSetting {
                field: "max_reply_tokens",
                problem: "must be between 1 and 4096".into(),
            });
        }
        Ok(())
    }

    /// The model file to load: `override_path` (the `--model` flag or `TROUPE_MODEL`) first,
    /// then the setting, then the default model.
    pub fn model_file(&self, paths: &Paths, override_path: Option<&Path>) -> PathBuf {
        override_path
            .map(Path::to_path_buf)
            .or_else(|| {
                std::env::var_os("TROUPE_MODEL")
                    .filter(|m| !m.is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| self.model_path.clone())
            .unwrap_or_else(|| paths.default_model())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_tolerate_missing_and_wrong_keys() {
        let s = Settings::from_json(
            serde_json::json!({"temperature": 0.3, "top_p": "high", "other": 1}),
        );
        assert_eq!(s.temperature, 0.3);
        assert_eq!(s.top_p, Settings::default().top_p);
        assert_eq!(
            Settings::load(Path::new("/nonexistent/settings.json")),
            Settings::default()
        );
    }

    #[test]
    fn settings_round_trip_through_the_store_format() {
        let s = Settings {
            model_path: Some("/m/x.gguf".into()),
            temperature: 1.1,
            top_p: 0.5,
            max_reply_tokens: 77,
        };
        assert_eq!(Settings::from_json(serde_json::to_value(&s).unwrap()), s);
    }

    #[test]
    fn validation_names_the_field() {
        let s = Settings {
            temperature: 3.0,
            ..Settings::default()
        };
        assert_eq!(s.validate().unwrap_err().field, "temperature");
        assert!(Settings::default().validate().is_ok());
    }
}
