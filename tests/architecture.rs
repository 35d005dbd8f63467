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

/// The module a source file is, as a path: `conversation/turn.rs` is `conversation::turn`,
/// `store/mod.rs` is `store`.
fn module_of(file: &str) -> String {
    let f = file.trim_end_matches(".rs");
    let f = f.strip_suffix("/mod").unwrap_or(f);
    f.replace('/', "::")
}

/// Every `crate::a::b` path a file's code names, resolved to the longest module that exists;
/// `super::x` is resolved against the file's module.
fn imports(file: &str, text: &str, modules: &[String]) -> Vec<String> {
    let me = module_of(file);
    let parent = me.rsplit_once("::").map(|(p, _)| p.to_string());
    let mut out = Vec::new();
    for line in code_lines(text) {
        let mut paths = Vec::new();
        for (i, _) in line.match_indices("crate::") {
            paths.push(line[i + "crate::".len()..].to_string());
        }
        if let Some(p) = &parent {
            for (i, _) in line.match_indices("super::") {
                if i > 0 && line[..i].ends_with("::") {
                    continue;
                }
                paths.push(format!("{p}::{}", &line[i + "super::".len()..]));
            }
        }
        for path in paths {
            let words: Vec<&str> = path
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .collect();
            // `use super::{a, b}`: each name in the braces may be a module.
            let brace = path
                .find('{')
                .filter(|&b| path[..b].split("::").count() == words.len());
            let mut candidates = vec![words.join("::")];
            if let Some(b) = brace {
                let prefix = path[..b].trim_end_matches("::");
                let inner = &path[b + 1..path[b..].find('}').map_or(path.len(), |e| b + e)];
                for name in inner.split(',') {
                    let name = name.trim().split([' ', ':']).next().unwrap_or("");
                    candidates.push(format!("{prefix}::{name}"));
                }
            }
            for c in candidates {
                let mut best = None;
                for m in modules {
                    if (c == *m || c.starts_with(&format!("{m}::")))
                        && best.as_ref().is_none_or(|b: &String| m.len() > b.len())
                    {
                        best = Some(m.clone());
                    }
                }
                if let Some(b) = best.filter(|b| *b != me) {
                    out.push(b);
                }
            }
        }
    }
    out
}

/// The first cycle in a graph of module names, if there is one.
fn cycle(
    edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = Default::default();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn modules_import_each_other_in_one_direction() {
    let sources = rust_sources();
    let modules: Vec<String> = sources
        .iter()
        .map(|(f, _)| module_of(f))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    // Two levels: the crate's top-level modules, and the siblings inside each folder (an edge
    // between two files of different folders counts at the level where their paths part).
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for (file, text) in &sources {
        let from = module_of(file);
        for to in imports(file, text, &modules) {
            let (a, b): (Vec<&str>, Vec<&str>) =
                (from.split("::").collect(), to.split("::").collect());
            let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            // A module naming its own parent or child is composition, not a dependency.
            if common == a.len() || common == b.len() {
                continue;
            }
            let (x, y) = (a[..=common].join("::"), b[..=common].join("::"));
            edges.entry(x).or_default().insert(y);
        }
    }
    assert!(
        edges
            .get("characters")
            .is_none_or(|e| !e.contains("conversation")),
        "characters imports conversation: {:?}",
        edges.get("characters")
    );
    if let Some(c) = cycle(&edges) {
        panic!("an import circle: {}", c.join(" -> "));
    }
}

#[test]
fn front_ends_go_through_the_app() {
    // The window, the CLI and the local API name no core module but `app`, and call its
    // operations rather than reaching into the store or the engine slot. `cli/bench/` measures
    // the engine itself and is the one exception (docs/ARCHITECTURE.md).
    for (file, text) in rust_sources() {
        let front =
            file.starts_with("desktop/") || file.starts_with("cli/") || file.starts_with("server/");
        if !front || file.starts_with("cli/bench/") {
            continue;
        }
        for line in code_lines(&text) {
            for core in [
                "crate::store",
                "crate::conversation",
                "crate::engine",
                "crate::characters",
                "crate::settings",
                ".store.",
                ".engine.",
            ] {
                assert!(
                    !line.contains(core),
                    "{file} goes around app::Troupe ({core}): {line}"
                );
            }
        }
    }
}

#[test]
fn rooms_stay_readable() {
    // A newcomer reads a file in one sitting and a function as a list of steps. The limits
    // (about 800 lines a file, 120 a function) hold for every source file; the exceptions are
    // named with the reason they read better whole.
    const LONG_FUNCTIONS_ALLOWED: &[(&str, &str)] = &[
        // One scripted chat checked section by section: split, it would hide the order.
        (
            "conversation/tests.rs",
            "the_prompt_is_built_in_order_and_the_record_says_what_went_in",
        ),
    ];
    for (file, text) in rust_sources() {
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() <= 800, "{file} has {} lines", lines.len());
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let indent = line.len() - t.len();
            let t = t
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub(super) ")
                .trim_start_matches("async ");
            let Some(name) = t.strip_prefix("fn ") else {
                continue;
            };
            if line.trim_end().ends_with(';') {
                continue;
            }
            let name = name.split(['(', '<']).next().unwrap_or("");
            let close = " ".repeat(indent) + "}";
            let len = lines[i..]
                .iter()
                .position(|l| *l == close)
                .map_or(0, |n| n + 1);
            let allowed = LONG_FUNCTIONS_ALLOWED.contains(&(file.as_str(), name));
            assert!(
                len <= 120 || allowed,
                "{file}: fn {name} is {len} lines; make it a list of named steps"
            );
        }
    }
}

#[test]
fn the_window_is_granted_only_the_plugins_the_ui_uses() {
    // A capability is what script in the webview may call. A plugin granted but never used by
    // the UI only widens what injected script could do (the store plugin's default set lets it
    // write JSON to any path), so every plugin permission must match an import in ui/src/api/.
    let mut api = String::new();
    let mut sources = Vec::new();
    files(&root().join("../ui/src/api"), "ts", &mut sources);
    for p in sources {
        api.push_str(&std::fs::read_to_string(p).unwrap());
    }
    let mut caps = Vec::new();
    files(&root().join("capabilities"), "json", &mut caps);
    assert!(!caps.is_empty(), "no capability files found");
    for cap in caps {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&cap).unwrap()).unwrap();
        for p in v["permissions"].as_array().unwrap() {
            let id = p.as_str().or_else(|| p["identifier"].as_str()).unwrap();
            let plugin = id.split(':').next().unwrap();
            if plugin == "core" {
                continue;
            }
            assert!(
                api.contains(&format!("@tauri-apps/plugin-{plugin}")),
                "{} grants {id}, but the UI never uses the {plugin} plugin",
                cap.display()
            );
        }
    }
}

#[test]
fn the_windows_heavy_commands_run_off_its_main_thread() {
    // Tauri runs a plain (non-async) command on the window's main thread: while it works the
    // window does not draw. Commands that decode pictures, read or write files or read model
    // headers are async, which Tauri runs on its async runtime instead.
    let dir = root().join("src/desktop/commands");
    let mut text = String::new();
    for area in ["backups", "characters", "conversation", "engine"] {
        text.push_str(&std::fs::read_to_string(dir.join(format!("{area}.rs"))).unwrap());
    }
    for heavy in [
        "save_character",
        "import_cards",
        "export_card",
        "list_models",
        "list_backups",
        "back_up_now",
        "restore_backup",
        "export_all",
        "import_all",
        "empty_trash",
    ] {
        assert!(
            text.contains(&format!("pub async fn {heavy}(")),
            "the command {heavy} blocks the window's main thread: make it async"
        );
    }
}
