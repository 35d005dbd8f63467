//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::path::PathBuf;

/// The small real model (SmolLM2-135M): `TROUPE_SMALL_MODEL`, else `TROUPE_MODEL`. For tests
/// where the words do not matter, only that a real model answers.
pub fn small_model() -> PathBuf {
    match std::env::var_os("TROUPE_SMALL_MODEL") {
        Some(p) => {
            let path = PathBuf::from(p);
            assert!(
                path.is_file(),
                "TROUPE_SMALL_MODEL: no file at {}",
                path.display()
            );
            path
        }
        None => model(),
    }
}

/// The real default model: `TROUPE_MODEL`, else the default location. These tests never skip:
/// `.ci/test` fetches the model first; run it, or set TROUPE_MODEL.
pub fn model() -> PathBuf {
    let path = std::env::var_os("TROUPE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| troupe::settings::Paths::from_env().default_model());
    assert!(
        path.is_file(),
        "the default model is not at {}: run `bash .ci/test` (it fetches it) or set TROUPE_MODEL",
        path.display()
    );
    path
}

/// The binary a command runs as: `troupe-cli` in the window's build (`troupe COMMAND` hands the
/// process over to it), `troupe` itself in the headless build.
pub fn command_bin() -> &'static str {
    option_env!("CARGO_BIN_EXE_troupe-cli").unwrap_or(env!("CARGO_BIN_EXE_troupe"))
}

/// The `troupe` binary cargo built for these tests.
pub fn troupe_bin() -> &'static str {
    env!("CARGO_BIN_EXE_troupe")
}

/// `troupe ARGS` on the library in `data`, with the small model and no keyring.
pub fn cli(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(troupe_bin())
        .args(args)
        .env("TROUPE_DATA_DIR", data)
        .env("TROUPE_MODEL", small_model())
        .env("TROUPE_KEYRING", "off")
        .output()
        .expect("troupe runs")
}

/// `cli` that must succeed: its stdout and stderr.
pub fn cli_ok(data: &std::path::Path, args: &[&str]) -> (String, String) {
    let out = cli(data, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {err}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), err)
}

/// `cli` that must be refused: its stderr.
pub fn cli_refused(data: &std::path::Path, args: &[&str]) -> String {
    let out = cli(data, args);
    assert!(!out.status.success(), "{args:?} should be refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A Generation's text, streamed to its end; an engine failure fails the test.
pub async fn collect(mut gen: troupe::engine::Generation) -> String {
    let mut text = String::new();
    while let Some(e) = gen.recv().await {
        match e {
            troupe::engine::EngineEvent::Text(t) => text.push_str(&t),
            troupe::engine::EngineEvent::Finished { .. } => break,
            troupe::engine::EngineEvent::Failed(e) => panic!("engine failed: {e}"),
        }
    }
    text
}
