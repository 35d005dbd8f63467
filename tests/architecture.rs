//! Architecture invariants from docs/ARCHITECTURE.md, checked on the source text so they cannot
//! erode silently: only `desktop/` imports Tauri, only `store/` touches SQLite, `engine/` knows
//! nothing of characters, the store or Tauri, and every source file opens with a `//!` doc that
//! states its contract. In the UI, only `ui/src/api/` imports `@tauri-apps`.

use std::path::{Path, PathBuf};

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("node_modules") && !path.ends_with("dist") {
                files(&path, ext, out);
            }
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn rust_sources() -> Vec<(String, String)> {
    let src = root().join("src");
    let mut out = Vec::new();
    files(&src, "rs", &mut out);
    out.into_iter()
        .map(|p| {
            (
                p.strip_prefix(&src).unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// Lines of code, without comments, so docs may name what the code must not use.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with("//"))
}

#[test]
fn only_desktop_imports_tauri() {
    for (file, text) in rust_sources() {
        if file.starts_with("desktop/") {
            continue;
        }
        for line in code_lines(&text) {
            assert!(
                !line.contains("tauri::") && !line.contains("tauri_plugin"),
                "{file} uses Tauri: {line}"
            );
        }
    }
}

#[test]
fn only_store_touches_sqlite() {
    for (file, text) in rust_sources() {
        if file.starts_with("store/") {
            continue;
        }
        for line in code_lines(&text) {
            assert!(!line.contains("rusqlite"), "{file} uses rusqlite: {line}");
        }
    }
}

#[test]
fn engine_knows_nothing_of_characters_store_or_conversation() {
    for (file, text) in rust_sources() {
        if !file.starts_with("engine/") {
            continue;
        }
        for line in code_lines(&text) {
            for forbidden in [
                "crate::characters",
                "crate::store",
                "crate::conversation",
                "crate::desktop",
            ] {
                assert!(
                    !line.contains(forbidden),
                    "{file} depends on {forbidden}: {line}"
                );
            }
        }
    }
}

#[test]
fn every_source_file_opens_with_its_contract() {
    for (file, text) in rust_sources() {
        assert!(
            text.starts_with("//!"),
            "{file} must start with a //! module doc"
        );
    }
}

#[test]
fn only_the_ui_api_layer_imports_tauri() {
    let ui = root().join("../ui/src");
    let mut out = Vec::new();
    files(&ui, "ts", &mut out);
    files(&ui, "svelte", &mut out);
    assert!(!out.is_empty(), "no UI sources found");
    for path in out {
        let rel = path
            .strip_prefix(&ui)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.starts_with("api/") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("@tauri-apps"),
            "ui/src/{rel} imports @tauri-apps; go through ui/src/api/"
        );
    }
}

#[test]
fn every_vendored_crate_is_documented_and_carries_marked_patches() {
    let vendor = root().join("vendor");
    let doc = std::fs::read_to_string(root().join("../docs/ARCHITECTURE.md")).unwrap();
    let cargo = std::fs::read_to_string(root().join("../Cargo.toml")).unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(&vendor).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        n += 1;
        assert!(
            doc.contains(&format!("- `{name}`")),
            "docs/ARCHITECTURE.md does not list vendored {name}"
        );
        assert!(
            cargo.contains(&format!(
                "{name} = {{ path = \"src-tauri/vendor/{name}\" }}"
            )),
            "the root Cargo.toml does not patch {name} with the vendored copy"
        );
        let mut sources = Vec::new();
        files(&dir, "rs", &mut sources);
        let marked = sources
            .iter()
            .filter(|p| std::fs::read_to_string(p).unwrap().contains("Troupe patch"))
            .count();
        assert!(marked > 0, "vendored {name} has no `Troupe patch` marks");
    }
    assert!(
        n >= 2,
        "expected the vendored mistralrs-core and candle-core"
    );
}
