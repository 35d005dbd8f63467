//! Where the remote server's API key is kept: in the OS keyring where there is one (the Secret
//! Service on Linux, the Keychain on macOS, the Credential Manager on Windows), else in
//! `settings.json`, which is private to its user (0600). The key never goes to the window
//! (`desktop::json` sends only whether one is set).
//!
//! `settings.json` then says `"key_in_keyring": true` under `remote`, and the key itself is the
//! keyring entry named after the settings file, so two data directories (a test's, a portable
//! install's) never share a key. A keyring that refuses (none running, locked and the person
//! said no) is not an error: the key stays in the file, as before keyrings.

use std::path::Path;

use serde_json::Value;

const SERVICE: &str = super::APP_ID;

/// `TROUPE_KEYRING=off` keeps keys in the file (for tests on a desktop with a keyring, so they
/// do not write into the person's own).
fn enabled() -> bool {
    std::env::var("TROUPE_KEYRING").map_or(true, |v| v != "off")
}

fn entry(settings_file: &Path) -> Option<keyring::Entry> {
    if !enabled() {
        return None;
    }
    keyring::Entry::new(
        SERVICE,
        &format!("remote-api-key:{}", settings_file.display()),
    )
    .ok()
}

/// Moves the key out of the settings' JSON into the keyring when the keyring takes it; with no
/// key, removes the one the keyring holds for this file (`was_in_keyring`: the file said so).
pub(super) fn store(settings_file: &Path, json: &mut Value, was_in_keyring: bool) {
    let remote = &mut json["remote"];
    let key = remote["api_key"].as_str().map(str::to_owned);
    // No key, and none in the keyring: nothing to ask of it (asking can start a keyring daemon,
    // or on a desktop a prompt to unlock one).
    if key.is_none() && !was_in_keyring {
        remote["key_in_keyring"] = Value::Bool(false);
        return;
    }
    let Some(entry) = entry(settings_file) else {
        remote["key_in_keyring"] = Value::Bool(false);
        return;
    };
    match key {
        Some(key) => match entry.set_password(&key) {
            Ok(()) => {
                remote["api_key"] = Value::Null;
                remote["key_in_keyring"] = Value::Bool(true);
            }
            Err(e) => {
                tracing::info!("no keyring ({e}): the API key stays in the private settings file");
                remote["key_in_keyring"] = Value::Bool(false);
            }
        },
        None => {
            if was_in_keyring {
                let _ = entry.delete_credential();
            }
            remote["key_in_keyring"] = Value::Bool(false);
        }
    }
}

/// The key the keyring holds for this settings file, when the file says it is there.
pub(super) fn load(settings_file: &Path, json: &Value) -> Option<String> {
    if json["remote"]["key_in_keyring"] != Value::Bool(true) {
        return None;
    }
    match entry(settings_file)?.get_password() {
        Ok(key) => Some(key),
        Err(e) => {
            tracing::warn!("the API key is in the keyring but cannot be read: {e}");
            None
        }
    }
}
