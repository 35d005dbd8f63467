//! Where Troupe keeps things, and the user's settings.
//!
//! `Paths` is the one place that decides the data directory: `$TROUPE_DATA_DIR` if set (tests,
//! portable installs), else `$XDG_DATA_HOME/app.troupe`, else `~/.local/share/app.troupe`; the
//! same folder Tauri gives the identifier `app.troupe`, so the window and the CLI share one
//! database, one settings file and one model.
//!
//! `Settings` are a JSON object in `settings.json` (`model_path`, `sampling`), the format
//! tauri-plugin-store reads and writes: the desktop app edits it through the plugin, the CLI
//! reads and writes it directly. Unknown keys are kept; missing keys take defaults; the first
//! release's flat sampling keys are read and then replaced, so old files keep working. The
//! remote API key goes to the OS keyring where there is one (`api_key`).

mod api_key;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::Sampling;

/// The identifier in tauri.conf.json; it names the data directory.
pub const APP_ID: &str = "app.troupe";
/// The default model's file name (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M), fetched by `.ci/start`
/// into `<data>/models/`.
pub const DEFAULT_MODEL_FILE: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
/// The small, fast model, also fetched by `.ci/start`: the default before 0.2, so a library set
/// up then still opens with it until the new default is there.
pub const SMALL_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

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
    pub fn backups(&self) -> PathBuf {
        self.data.join("backups")
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
        let default = self.models().join(DEFAULT_MODEL_FILE);
        let small = self.models().join(SMALL_MODEL_FILE);
        if !default.is_file() && small.is_file() {
            return small;
        }
        default
    }

    /// Derived files that can be rebuilt at will (transcoded models): `TROUPE_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/app.troupe`, else `~/.cache/app.troupe`. Not under the data directory,
    /// so test and scratch data directories share one copy instead of making a new one each.
    pub fn cache() -> PathBuf {
        if let Some(d) = std::env::var_os("TROUPE_CACHE_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(d);
        }
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join(APP_ID)
    }

    /// Transcoded copies of models (engine::transcode).
    pub fn model_cache() -> PathBuf {
        Paths::cache().join("models")
    }
}

/// What the user can set. Field names are the keys in settings.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Settings {
    /// The GGUF to load; `None` means the default model in the data directory.
    pub model_path: Option<PathBuf>,
    /// Sampling for every chat, unless a Character or Session sets its own.
    pub sampling: Sampling,
    /// GGUF files the user added from elsewhere on disk (the models folder is listed anyway).
    pub models: Vec<PathBuf>,
    /// Which engine answers: the local model or a remote server.
    pub engine: EngineChoice,
    /// The remote server, used when `engine` is `remote`.
    pub remote: RemoteSettings,
    /// How many automatic snapshots to keep.
    pub backups: BackupSettings,
    /// Light, dark, or as the system says.
    pub theme: Theme,
    /// Whether the welcome was shown (or skipped); Settings can show it again.
    pub welcomed: bool,
    /// The window's language: "en" or "zh-CN", or empty for the system's (Characters speak
    /// their own).
    pub language: String,
    /// The local API (`server`).
    pub api: ApiSettings,
    /// Memory the local engine may keep for prompts it has read, so the next turn of a chat
    /// starts at once (the prefix cache).
    pub prompt_cache_mb: PromptCacheMb,
}

/// The prefix cache's budget in MiB: the prompts (KV caches) of recent turns the local engine
/// keeps, so the next turn reads only its new tokens. Each is the model's KV per token times the
/// chat's length, kept in F16: 9 MB for the default Qwen2.5-0.5B at 750 tokens, ~130 KB per
/// token for an 8 B model (256 MB at 2,000 tokens). The default holds one long chat of an 8 B
/// model or four of a small one (four is the most kept either way); a chat too long for the
/// budget is read anew each turn. 0 turns the cache off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PromptCacheMb(pub u32);

impl Default for PromptCacheMb {
    fn default() -> Self {
        PromptCacheMb(1024)
    }
}

impl PromptCacheMb {
    /// The largest budget accepted (64 GiB).
    pub const MAX: u32 = 65_536;

    pub fn bytes(self) -> usize {
        self.0 as usize * 1024 * 1024
    }
}

/// The local API: off until the person turns it on. Its key lives here, in the settings file
/// that only its user can read (0600), because Settings shows it to be copied into clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiSettings {
    /// Start the API whenever the window opens.
    pub start_with_troupe: bool,
    pub port: u16,
    /// Listen on every network interface rather than this computer only.
    pub network: bool,
    /// The Bearer key; made on first use (`ApiSettings::new_key`).
    pub key: Option<String>,
    /// Browser origins allowed to call it (CORS); none by default.
    pub origins: Vec<String>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            start_with_troupe: false,
            port: 7337,
            network: false,
            key: None,
            origins: Vec::new(),
        }
    }
}

impl ApiSettings {
    /// Makes the key when there is none yet (the first time the API is turned on); true when
    /// it did, so the caller saves it.
    pub fn ensure_key(&mut self) -> bool {
        if self.key.as_deref().is_some_and(|k| !k.trim().is_empty()) {
            return false;
        }
        self.key = Some(ApiSettings::new_key());
        true
    }

    /// A fresh key: "troupe-" and 48 hex digits (192 bits) from the operating system's random
    /// source, drawn through the standard library's hasher keys (no extra dependency).
    pub fn new_key() -> String {
        // Three hashers: 64 random bits each.
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        let mut key = String::from("troupe-");
        for i in 0..3u8 {
            let mut h = RandomState::new().build_hasher();
            h.write_u8(i);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            key.push_str(&format!("{:016x}", h.finish()));
        }
        key
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

/// The automatic snapshots kept in `backups/`: the newest of each of the last `daily` days and
/// of each of the last `weekly` weeks. Snapshots taken by hand are never rotated away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupSettings {
    pub daily: u32,
    pub weekly: u32,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            daily: 7,
            weekly: 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    #[default]
    Local,
    Remote,
}

/// An OpenAI-compatible server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoteSettings {
    /// e.g. "http://gpu-box:1234/v1".
    pub base_url: String,
    pub api_key: Option<String>,
    /// Empty: the server's first model.
    pub model: String,
    pub context_length: usize,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            base_url: String::new(),
            api_key: None,
            model: String::new(),
            context_length: 4096,
        }
    }
}

impl RemoteSettings {
    pub fn config(&self) -> crate::engine::RemoteConfig {
        crate::engine::RemoteConfig {
            api_key: self.api_key.clone().filter(|k| !k.trim().is_empty()),
            model: self.model.trim().to_string(),
            context_length: self.context_length,
            ..crate::engine::RemoteConfig::new(&self.base_url)
        }
    }
}

/// Keys of the first release, now inside `sampling`; removed when settings are saved.
pub const OLD_KEYS: &[&str] = &["temperature", "top_p", "max_reply_tokens"];

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
            .map(|v| Settings::from_stored(v, path))
            .unwrap_or_default()
    }

    /// `from_json` of the JSON stored at `path`, with the API key from the keyring when it is
    /// kept there.
    pub fn from_stored(v: serde_json::Value, path: &Path) -> Settings {
        let mut s = Settings::from_json(v.clone());
        if s.remote.api_key.is_none() {
            s.remote.api_key = api_key::load(path, &v);
        }
        s
    }

    /// The JSON to store at `path` (whose current content is `previous`): these settings with
    /// the API key moved into the keyring when there is one.
    pub fn to_stored(&self, path: &Path, previous: &serde_json::Value) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("settings always serialise");
        let was = previous["remote"]["key_in_keyring"] == serde_json::Value::Bool(true);
        api_key::store(path, &mut v, was);
        v
    }

    /// From the store's JSON object; fields of the wrong type take their defaults. Reads the
    /// first release's flat `temperature` / `top_p` / `max_reply_tokens` keys too.
    pub fn from_json(v: serde_json::Value) -> Settings {
        let get = |k: &str| v.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let mut sampling = Sampling::default();
        if let Some(obj) = v.get("sampling").and_then(|s| s.as_object()) {
            // Field by field, so one bad value does not discard the rest.
            let mut merged = serde_json::to_value(&sampling).unwrap_or_default();
            for (k, val) in obj {
                let mut trial = merged.clone();
                trial[k] = val.clone();
                if serde_json::from_value::<Sampling>(trial.clone()).is_ok() {
                    merged = trial;
                }
            }
            sampling = serde_json::from_value(merged).unwrap_or_default();
        } else {
            let old = |k: &str| get(k).as_f64();
            if let Some(t) = old("temperature") {
                sampling.temperature = t;
            }
            if let Some(p) = old("top_p") {
                sampling.top_p = p;
            }
            if let Some(n) = get("max_reply_tokens").as_u64() {
                sampling.max_tokens = n as usize;
            }
        }
        Settings {
            model_path: serde_json::from_value(get("model_path")).unwrap_or_default(),
            sampling,
            models: serde_json::from_value(get("models")).unwrap_or_default(),
            engine: serde_json::from_value(get("engine")).unwrap_or_default(),
            remote: serde_json::from_value(get("remote")).unwrap_or_default(),
            backups: serde_json::from_value(get("backups")).unwrap_or_default(),
            theme: serde_json::from_value(get("theme")).unwrap_or_default(),
            welcomed: get("welcomed").as_bool().unwrap_or(false),
            api: serde_json::from_value(get("api")).unwrap_or_default(),
            prompt_cache_mb: serde_json::from_value(get("prompt_cache_mb")).unwrap_or_default(),
            language: match get("language").as_str() {
                Some(l @ ("en" | "zh-CN")) => l.to_string(),
                _ => String::new(),
            },
        }
    }

    /// Writes the settings into settings.json (the CLI's path; the window saves through the
    /// store plugin). Keys this build does not know are kept; the file is replaced atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut obj = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        for old in OLD_KEYS {
            obj.remove(*old);
        }
        let previous = serde_json::Value::Object(obj.clone());
        if let serde_json::Value::Object(ours) = self.to_stored(path, &previous) {
            obj.extend(ours);
        }
        let tmp = path.with_extension("json.part");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&obj)?)?;
        private_file(&tmp)?;
        std::fs::rename(tmp, path)
    }

    /// Checks ranges; the UI shows the message next to the field.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.sampling
            .validate()
            .map_err(|(field, problem)| InvalidSetting { field, problem })?;
        if self.prompt_cache_mb.0 > PromptCacheMb::MAX {
            return Err(InvalidSetting {
                field: "promptCacheMb",
                problem: format!("must be at most {} MB", PromptCacheMb::MAX),
            });
        }
        if self.engine == EngineChoice::Remote {
            let url = self.remote.base_url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(InvalidSetting {
                    field: "remoteUrl",
                    problem: "must start with http:// or https:// (e.g. http://gpu-box:1234/v1)"
                        .into(),
                });
            }
            if !(512..=1_048_576).contains(&self.remote.context_length) {
                return Err(InvalidSetting {
                    field: "remoteContext",
                    problem: "must be between 512 and 1048576 tokens".into(),
                });
            }
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
    fn the_default_model_leads_the_catalog() {
        assert_eq!(
            crate::engine::catalog::entries()[0].file,
            DEFAULT_MODEL_FILE
        );
        assert!(crate::engine::catalog::entries()
            .iter()
            .any(|e| e.file == SMALL_MODEL_FILE));
    }

    #[test]
    fn settings_tolerate_missing_and_wrong_keys() {
        let s = Settings::from_json(serde_json::json!({
            "sampling": {"temperature": 0.3, "topP": "high", "other": 1}
        }));
        assert_eq!(s.sampling.temperature, 0.3);
        assert_eq!(s.sampling.top_p, Sampling::default().top_p);
        assert_eq!(
            Settings::load(Path::new("/nonexistent/settings.json")),
            Settings::default()
        );
    }

    #[test]
    fn save_keeps_unknown_keys_and_drops_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(&path, r#"{"fromLater":"x","temperature":0.2}"#).unwrap();
        let s = Settings::default();
        s.save(&path).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["fromLater"], "x");
        assert!(v.get("temperature").is_none());
        assert_eq!(Settings::load(&path), s);
    }

    #[test]
    fn first_release_settings_still_read() {
        let s = Settings::from_json(
            serde_json::json!({"temperature": 1.1, "top_p": 0.5, "max_reply_tokens": 77}),
        );
        assert_eq!(
            (
                s.sampling.temperature,
                s.sampling.top_p,
                s.sampling.max_tokens
            ),
            (1.1, 0.5, 77)
        );
    }

    #[test]
    fn settings_round_trip_through_the_store_format() {
        let s = Settings {
            backups: BackupSettings {
                daily: 3,
                weekly: 2,
            },
            model_path: Some("/m/x.gguf".into()),
            sampling: Sampling {
                temperature: 1.1,
                top_k: 20,
                seed: Some(9),
                ..Sampling::default()
            },
            models: vec!["/elsewhere/big.gguf".into()],
            engine: EngineChoice::Remote,
            remote: RemoteSettings {
                base_url: "http://gpu:1234/v1".into(),
                model: "qwen".into(),
                ..RemoteSettings::default()
            },
            theme: Theme::Light,
            welcomed: true,
            language: "zh-CN".into(),
            api: ApiSettings {
                start_with_troupe: true,
                port: 7400,
                network: false,
                key: Some(ApiSettings::new_key()),
                origins: vec!["http://localhost:8000".into()],
            },
            prompt_cache_mb: PromptCacheMb(300),
        };
        assert_eq!(Settings::from_json(serde_json::to_value(&s).unwrap()), s);
        // A file from before the setting gets the default; a budget beyond 64 GiB is refused.
        assert_eq!(
            Settings::from_json(serde_json::json!({})).prompt_cache_mb,
            PromptCacheMb(1024)
        );
        let mut big = s.clone();
        big.prompt_cache_mb = PromptCacheMb(PromptCacheMb::MAX + 1);
        assert_eq!(big.validate().unwrap_err().field, "promptCacheMb");
    }

    #[test]
    fn validation_names_the_field() {
        let s = Settings {
            sampling: Sampling {
                temperature: 3.0,
                ..Sampling::default()
            },
            ..Settings::default()
        };
        assert_eq!(s.validate().unwrap_err().field, "temperature");
        assert!(Settings::default().validate().is_ok());
    }

    #[test]
    fn the_api_key_round_trips_through_the_keyring_or_the_private_file() {
        // With a keyring (a desktop) the file holds no key; without one (CI) it holds it, 0600.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        let mut s = Settings::default();
        s.remote.api_key = Some("sk-test-key".into());
        s.save(&path).unwrap();
        assert_eq!(
            Settings::load(&path).remote.api_key.as_deref(),
            Some("sk-test-key")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let in_keyring = text.contains("\"key_in_keyring\": true");
        assert_eq!(text.contains("sk-test-key"), !in_keyring, "{text}");
        // Removing the key removes it from wherever it was.
        s.remote.api_key = None;
        s.save(&path).unwrap();
        assert_eq!(Settings::load(&path).remote.api_key, None);
    }
}

/// Makes `path` readable and writable by its owner only (Unix; elsewhere the user's profile
/// folder already is private). The library is the user's conversations: nobody else on the
/// machine should read them.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates `dir` (and its parents) if needed and makes it its owner's only (Unix).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
