//! The headless CLI, run as a user would: the real binary, a fresh data directory, the real
//! model. It lists characters id first, streams a reply into the same database the window uses,
//! continues the session, and answers bad input with a clear message and no crash.

mod common;

use std::process::{Command, Output};

fn troupe(data: &std::path::Path, args: &[&str]) -> Output {
    troupe_env(data, args, &[])
}

/// `troupe` with extra environment variables.
fn troupe_env(data: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(common::troupe_bin())
        .args(args)
        .env("TROUPE_DATA_DIR", data)
        .env("TROUPE_MODEL", common::small_model())
        .envs(env.iter().copied())
        .output()
        .expect("troupe runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn characters_are_listed_id_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = troupe(dir.path(), &["characters"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let ids: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    for id in ["ada-lovelace", "marisol-vega", "sherlock-holmes"] {
        assert!(ids.contains(&id), "{stdout}");
    }
    assert!(
        stdout.contains("sherlock-holmes\tfictional\tSherlock Holmes"),
        "{stdout}"
    );
}

#[test]
fn chat_streams_a_reply_stores_it_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.json"),
        r#"{"max_reply_tokens": 32}"#,
    )
    .unwrap();
    let out = troupe(
        dir.path(),
        &[
            "chat",
            "--character",
            "marisol-vega",
            "Good morning! What smells so good?",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reply = text(&out.stdout);
    assert!(
        !reply.trim().is_empty(),
        "no reply; stderr: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("[session 1 · Marisol Vega · Chit-chat]"),
        "{}",
        text(&out.stderr)
    );

    // The same session goes on, and the history holds both turns.
    let out = troupe(
        dir.path(),
        &["chat", "--character", "marisol-vega", "And how is Dolores?"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let history = text(&troupe(dir.path(), &["history", "--session", "1"]).stdout);
    assert!(
        history.starts_with("Marisol Vega: *dusts flour"),
        "{history}"
    );
    assert!(
        history.contains("You: Good morning! What smells so good?\nMarisol Vega: "),
        "{history}"
    );
    // What was stored is what was printed (up to its last full sentence when the reply ran out
    // of tokens mid-sentence).
    let stored = history
        .split("You: Good morning! What smells so good?\nMarisol Vega: ")
        .nth(1)
        .and_then(|rest| rest.split("\nYou: ").next())
        .expect("the stored reply");
    assert!(!stored.trim().is_empty());
    assert!(
        reply.trim().starts_with(stored.trim()),
        "stored reply differs from the printed one:\n{stored}\n---\n{reply}"
    );
    assert!(history.contains("You: And how is Dolores?"), "{history}");
    let sessions = text(&troupe(dir.path(), &["sessions", "--character", "marisol-vega"]).stdout);
    assert!(sessions.starts_with("1\tchit_chat\t5\t"), "{sessions}");

    // --new starts another session in the chosen scenario, opening with that scenario's greeting.
    let out = troupe(
        dir.path(),
        &[
            "chat",
            "--character",
            "marisol-vega",
            "--new",
            "--scenario",
            "interview",
            "Hi",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let history = text(&troupe(dir.path(), &["history", "--session", "2"]).stdout);
    assert!(
        history.starts_with("Marisol Vega: An interview? With me?"),
        "{history}"
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();

    let out = troupe(dir.path(), &["chat", "--character", "marisol-vega", "   "]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the message is empty"),
        "{}",
        text(&out.stderr)
    );

    let out = troupe(dir.path(), &["chat", "--character", "nobody", "hi"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no character with id 'nobody'"),
        "{}",
        text(&out.stderr)
    );

    // A 100,000-character message: refused with the reason, nothing stored, no crash.
    let huge = "tell me more about bread ".repeat(4000);
    let out = troupe(dir.path(), &["chat", "--character", "marisol-vega", &huge]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("the message is too long"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let history = text(&troupe(dir.path(), &["history", "--session", "1"]).stdout);
    assert_eq!(history.lines().count(), 1, "only the greeting: {history}");

    // A model file that is garbage: a clear error naming the file and the fix.
    let garbage = dir.path().join("model.gguf");
    std::fs::write(&garbage, b"not a model").unwrap();
    let out = Command::new(common::troupe_bin())
        .args(["chat", "--character", "marisol-vega", "--model"])
        .arg(&garbage)
        .arg("hello")
        .env("TROUPE_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("model.gguf is not a usable GGUF model"),
        "{err}"
    );
    assert!(err.contains("choose another file"), "{err}");
}

#[test]
fn sampling_is_set_per_character_and_a_seed_reproduces_a_reply() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.json"),
        r#"{"max_reply_tokens": 24}"#,
    )
    .unwrap();
    let set = troupe(
        dir.path(),
        &[
            "sampling",
            "--character",
            "marisol-vega",
            "--preset",
            "creative",
            "--set",
            "seed=7",
            "--set",
            "maxTokens=24",
        ],
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&set.stdout).unwrap();
    assert_eq!(
        (shown["seed"].as_u64(), shown["temperature"].as_f64()),
        (Some(7), Some(1.1))
    );

    let ask = |extra: &[&str]| {
        let mut args = vec!["chat", "--character", "marisol-vega", "--new"];
        args.extend_from_slice(extra);
        args.push("Tell me something surprising about bread.");
        let out = troupe(dir.path(), &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    // Sessions 1 and 2 inherit the character's seed: the same prompt gives the same reply.
    let first = ask(&[]);
    let second = ask(&[]);
    assert!(!first.trim().is_empty());
    assert_eq!(first, second, "the same seed must reproduce the reply");

    // Session 3 overrides the seed for itself only.
    let third_session = troupe(
        dir.path(),
        &["chat", "--character", "marisol-vega", "--new", "Hello."],
    );
    assert!(third_session.status.success());
    let own = troupe(
        dir.path(),
        &["sampling", "--session", "3", "--set", "seed=8"],
    );
    assert!(own.status.success(), "{}", text(&own.stderr));
    let inherited: serde_json::Value =
        serde_json::from_slice(&troupe(dir.path(), &["sampling", "--session", "1"]).stdout)
            .unwrap();
    assert_eq!(
        inherited["seed"], 7,
        "session 1 still follows the character"
    );

    // Clearing the character's setting falls back to the settings file.
    let cleared = troupe(
        dir.path(),
        &["sampling", "--character", "marisol-vega", "--clear"],
    );
    let back: serde_json::Value = serde_json::from_slice(&cleared.stdout).unwrap();
    assert_eq!(back["maxTokens"], 24);
    assert_eq!(back["seed"], serde_json::Value::Null);

    // Out of range: a clear error naming the field, nothing changed.
    let bad = troupe(
        dir.path(),
        &[
            "sampling",
            "--character",
            "marisol-vega",
            "--set",
            "temperature=5",
        ],
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("temperature"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn models_are_listed_with_their_fit_and_bad_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let models_dir = dir.path().join("models");
    std::fs::create_dir_all(&models_dir).unwrap();
    std::os::unix::fs::symlink(common::small_model(), models_dir.join("smol.gguf")).unwrap();
    std::os::unix::fs::symlink(common::model(), models_dir.join("default.gguf")).unwrap();
    let out = troupe(dir.path(), &["models"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    assert!(list.contains("this machine:"), "{list}");
    let line = list.lines().find(|l| l.contains("smol.gguf")).expect(&list);
    assert!(
        line.contains("llama") && line.contains("135 M params") && line.contains("Q4_1"),
        "{line}"
    );
    assert!(line.contains("fits: needs about"), "{line}");
    // The default model is a Q4_K_M file, named so (its most common tensor type is Q5_0).
    let line = list
        .lines()
        .find(|l| l.contains("default.gguf"))
        .expect(&list);
    assert!(line.contains("Q4_K_M"), "{line}");

    let bogus = dir.path().join("notes.gguf");
    std::fs::write(&bogus, "not a model").unwrap();
    let out = troupe(dir.path(), &["models", "add", bogus.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a usable GGUF model"),
        "{}",
        text(&out.stderr)
    );
    let settings = std::fs::read_to_string(dir.path().join("settings.json")).unwrap_or_default();
    assert!(
        !settings.contains("notes.gguf"),
        "nothing was added: {settings}"
    );

    let out = troupe(
        dir.path(),
        &["models", "add", common::small_model().to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("added "),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn the_catalog_lists_models_with_licence_and_fit_and_names_an_unknown_id() {
    let dir = tempfile::tempdir().unwrap();
    let out = troupe(dir.path(), &["models", "catalog"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    let first = list.lines().next().expect("a catalog");
    assert!(
        first.starts_with("qwen2.5-coder-0.5b"),
        "the default first: {list}"
    );
    // TROUPE_MODEL's entry is the one in use (the small model, unless only the default is set).
    let file = common::small_model();
    let used = if file.to_string_lossy().contains("SmolLM2") {
        "smollm2-135m"
    } else {
        "qwen2.5-coder-0.5b"
    };
    let line = list.lines().find(|l| l.starts_with(used)).expect(&list);
    assert!(
        line.contains("Apache-2.0") && line.contains("in use"),
        "{line}"
    );
    assert_eq!(list.matches("in use").count(), 1, "{list}");
    assert!(list.contains("Mistral Nemo 12B"), "{list}");
    for line in list.lines().filter(|l| !l.starts_with(' ')) {
        assert!(
            ["fits", "may be slow", "won't fit"]
                .iter()
                .any(|f| line.contains(f)),
            "{line}"
        );
    }

    let out = troupe(dir.path(), &["models", "get", "gpt-5"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no model 'gpt-5' in the catalog"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !dir.path().join("settings.json").exists(),
        "nothing changed"
    );
}

#[test]
fn personas_memories_prompt_and_search_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.json"),
        r#"{"max_reply_tokens": 16}"#,
    )
    .unwrap();
    let ok = |args: &[&str]| {
        let out = troupe(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    let (out, _) = ok(&[
        "personas",
        "--add",
        "Sam",
        "--description",
        "A night-shift nurse.",
    ]);
    assert!(out.ends_with("\tSam\n"), "{out}");
    let (out, _) = ok(&["personas"]);
    assert!(
        out.contains("User (default)") && out.contains("Sam\tA night-shift nurse."),
        "{out}"
    );

    // A companionship session as Sam; a fact about Sam is kept.
    let (_, err) = ok(&[
        "chat",
        "--character",
        "walt-okafor",
        "--new",
        "--scenario",
        "companionship",
        "--persona",
        "Sam",
        "My dog's name is Biscuit.",
    ]);
    let session: String = err
        .split("[session ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .expect("the session is named on stderr")
        .to_string();
    let (out, _) = ok(&[
        "memories",
        "--session",
        &session,
        "--pin",
        "Sam works nights.",
    ]);
    assert!(
        out.contains("\tfact\tMy dog's name is Biscuit.")
            && out.contains("\tpinned\tSam works nights."),
        "{out}"
    );

    // The next reply's prompt, section by section.
    let (out, _) = ok(&["prompt", "--session", &session, "--message", "How are you?"]);
    for part in [
        "=== System prompt · ",
        "The user is Sam. A night-shift nurse.",
        "=== Notes · ",
        "Keep in mind: Sam works nights.",
        "Sam has told you: \u{201c}My dog's name is Biscuit.\u{201d}",
        "=== Message · ",
        "tokens · 0 older messages left out",
    ] {
        assert!(out.contains(part), "{part:?} missing from:\n{out}");
    }
    // Continue by session id; the title came from the first message.
    ok(&["chat", "--session", &session, "Do you like dogs?"]);
    let (out, _) = ok(&["sessions", "--character", "walt-okafor"]);
    assert!(
        out.contains(&format!(
            "{session}\tcompanionship\t5\tMy dog's name is Biscuit."
        )),
        "{out}"
    );
    let (out, _) = ok(&["search", "biscuit"]);
    assert!(
        out.starts_with(&format!("{session}\t"))
            && out.contains("you: My dog's name is [Biscuit]."),
        "{out}"
    );
    let (out, _) = ok(&["search", "\"unbalanced AND ("]);
    assert_eq!(out, "", "any text is a query; this one finds nothing");
    // A new companionship session picks up from the last one.
    ok(&[
        "chat",
        "--character",
        "walt-okafor",
        "--new",
        "--scenario",
        "companionship",
        "--persona",
        "Sam",
        "Hi again.",
    ]);
    let (out, _) = ok(&["sessions", "--character", "walt-okafor"]);
    let newest = out
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    let (out, _) = ok(&["history", "--session", &newest]);
    assert!(
        out.contains("Last time you told me: \u{201c}My dog's name is Biscuit.\u{201d}"),
        "{out}"
    );
}

/// An older CPU, for real: the same binaries on an emulated Westmere (2010: SSE4.2, no AVX, AVX2,
/// FMA or F16C), through qemu's user-mode emulator. The window's binary must start (its `--help`)
/// and the binary a command runs as (`troupe-cli` in the window's build: qemu's user mode runs
/// a process's `exec` natively, so the command is started under it directly) must load the
/// model, answer, and say it runs the scalar kernels. A binary built for x86-64-v3 (as Troupe
/// was until issue 6) dies here with an illegal instruction before printing anything. The reply
/// opens as the scalar kernels' reply on this machine does (`gemm`'s f32 matmuls, also chosen at
/// run time, may add in another order on the two CPUs). Emulation is slow (~25 s here), so the
/// Character is a one-line card and the reply three tokens.
#[test]
fn a_cpu_without_avx_runs_the_same_binary_and_says_so() {
    let qemu = "qemu-x86_64";
    let found = Command::new(qemu).arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "{qemu} is needed for this test: `bash .ci/test` installs it (Debian package qemu-user)"
    );
    let dir = tempfile::tempdir().unwrap();
    let card = dir.path().join("pip.json");
    std::fs::write(
        &card,
        serde_json::json!({
            "spec": "chara_card_v2",
            "spec_version": "2.0",
            "data": {"name": "Pip", "description": "A cheerful baker.", "first_mes": "Hello!"}
        })
        .to_string(),
    )
    .unwrap();
    let ok = |args: &[&str]| {
        let out = troupe(dir.path(), args);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    ok(&["import", card.to_str().unwrap()]);
    ok(&[
        "sampling",
        "--character",
        "pip",
        "--preset",
        "deterministic",
        "--set",
        "maxTokens=3",
    ]);
    let help = Command::new(qemu)
        .args(["-cpu", "Westmere", common::troupe_bin(), "--help"])
        .output()
        .expect("qemu runs");
    assert!(
        help.status.success() && text(&help.stdout).contains("Usage: troupe"),
        "the window's binary on an emulated CPU without AVX: {:?}\n{}",
        help.status,
        text(&help.stderr)
    );
    let ask = ["chat", "--character", "pip", "--new", "Hi"];
    let old_cpu = Command::new(qemu)
        .args(["-cpu", "Westmere", common::command_bin()])
        .args(ask)
        .env("TROUPE_DATA_DIR", dir.path())
        .env("TROUPE_MODEL", common::small_model())
        .output()
        .expect("qemu runs");
    assert!(
        old_cpu.status.success(),
        "on an emulated CPU without AVX: {:?}\n{}",
        old_cpu.status,
        text(&old_cpu.stderr)
    );
    let here = troupe_env(dir.path(), &ask, &[("TROUPE_CPU_KERNELS", "scalar")]);
    assert!(here.status.success(), "{}", text(&here.stderr));
    let reply = text(&old_cpu.stdout);
    let opening = |t: &str| t.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert!(!reply.trim().is_empty());
    assert_eq!(
        opening(&reply),
        opening(&text(&here.stdout)),
        "old CPU: {reply}"
    );
    assert!(
        text(&old_cpu.stderr).contains("tokens/s · CPU (scalar kernels: slow)]"),
        "{}",
        text(&old_cpu.stderr)
    );
}

/// A CPU without AVX2, simulated by forcing candle's scalar kernels: the reply is still right
/// (greedy, it opens with the same three words as the SIMD kernels' reply; the sums are added in
/// another order, so later tokens may part), and the model's device says which kernels ran.
/// On a CPU with AVX-512 VNNI the default kernels are its forms, whose results are the AVX2
/// kernels' bit for bit: there the whole greedy reply must match the AVX2 one.
#[test]
fn the_scalar_kernels_answer_like_the_simd_ones_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let set = troupe(
        dir.path(),
        &[
            "sampling",
            "--character",
            "ada-lovelace",
            "--preset",
            "deterministic",
            "--set",
            "maxTokens=24",
        ],
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    let run = |kernels: &str, args: &[&str]| {
        let out = troupe_env(dir.path(), args, &[("TROUPE_CPU_KERNELS", kernels)]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let ask = [
        "chat",
        "--character",
        "ada-lovelace",
        "--new",
        "What is the Analytical Engine?",
    ];
    let simd = run("best", &ask);
    let avx2 = run("avx2", &ask);
    let scalar = run("scalar", &ask);
    assert_eq!(
        avx2, simd,
        "the AVX2 and the default kernels answered differently"
    );
    let opening = |t: &str| t.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    assert!(!simd.trim().is_empty());
    assert_eq!(
        opening(&scalar),
        opening(&simd),
        "scalar: {scalar}\nsimd: {simd}"
    );

    let device = |kernels: &str| {
        let bench = ["bench", "--runs", "1", "--max-tokens", "4", "--json"];
        let v: serde_json::Value = serde_json::from_str(&run(kernels, &bench)).unwrap();
        v["device"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(device("scalar"), "CPU (scalar kernels: slow)");
    assert_eq!(device("avx2"), "CPU (AVX2)");
    let vnni = std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni");
    let best = if vnni {
        "CPU (AVX-512 VNNI)"
    } else {
        "CPU (AVX2)"
    };
    assert_eq!(device("best"), best);

    // A value it does not know is said, not silently ignored; the best kernels run.
    let bench = ["bench", "--runs", "1", "--max-tokens", "4", "--json"];
    let out = troupe_env(dir.path(), &bench, &[("TROUPE_CPU_KERNELS", "bogus")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("TROUPE_CPU_KERNELS=bogus is not one of best, avx2, scalar"),
        "{}",
        text(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["device"], best);
}

/// `troupe bench --perplexity`: English the model has read scores far lower than letter noise,
/// a text longer than one window is scored in several, and a missing file is a clear error.
#[test]
fn perplexity_tells_english_from_noise() {
    let dir = tempfile::tempdir().unwrap();
    // Natural English: every sentence of the built-in Characters (profiles, greetings, example
    // dialogue), several thousand tokens.
    fn strings(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::String(s) if s.contains(' ') => {
                out.push_str(s);
                out.push_str("\n\n");
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let mut english = String::new();
    let mut files: Vec<_> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../characters"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
    files.sort();
    for path in files {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        strings(&v, &mut english);
    }
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let noise: String = (0..3000)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let c = (b'a' + (seed % 26) as u8) as char;
            if i % 6 == 5 {
                ' '
            } else {
                c
            }
        })
        .collect();
    let score = |name: &str, body: &str| -> serde_json::Value {
        let file = dir.path().join(name);
        std::fs::write(&file, body).unwrap();
        let out = troupe(
            dir.path(),
            &["bench", "--perplexity", file.to_str().unwrap(), "--json"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let e = score("english.txt", &english);
    let n = score("noise.txt", &noise);
    let (pe, pn) = (
        e["perplexity"].as_f64().unwrap(),
        n["perplexity"].as_f64().unwrap(),
    );
    assert!(pe > 1.0 && pe.is_finite() && pn.is_finite(), "{e} {n}");
    assert!(
        pe * 5.0 < pn,
        "English {pe} should be far likelier than noise {pn}"
    );
    assert!(e["windows"].as_u64().unwrap() >= 2, "{e}");
    assert!(e["tokens"].as_u64().unwrap() > 1024, "{e}");
    // Scored as the engine runs the file: Q4_1 as it is on x86-64, its Q8_0 copy elsewhere.
    let runs_as = if cfg!(target_arch = "x86_64") {
        "Q4_1"
    } else {
        "Q4_1 → Q8_0"
    };
    assert_eq!(e["quantization"].as_str().unwrap(), runs_as, "{e}");

    let out = troupe(
        dir.path(),
        &["bench", "--perplexity", "/nonexistent/text.txt"],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("cannot read /nonexistent/text.txt"), "{err}");
}

/// In the window's build a command runs as `troupe-cli`, the binary beside `troupe` that links
/// no WebKit: the process `troupe serve` started maps none of the window's libraries (43 MB
/// resident before any model; docs/PERFORMANCE.md). Read from the running process's mappings.
#[cfg(all(feature = "desktop", target_os = "linux"))]
#[test]
fn a_command_runs_without_the_windows_libraries() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(common::troupe_bin())
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--key",
            "a-test-key-of-16+chars",
        ])
        .env("TROUPE_DATA_DIR", dir.path())
        .env("TROUPE_MODEL", common::small_model())
        .env("TROUPE_KEYRING", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("troupe runs");
    let proc = format!("/proc/{}", child.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    // Until the hand-over has happened and the dynamic loader has mapped the C library, after
    // which every library the binary links is mapped.
    let (mut exe, mut maps) = (std::path::PathBuf::new(), String::new());
    while Instant::now() < deadline && !(exe.ends_with("troupe-cli") && maps.contains("libc.so")) {
        std::thread::sleep(Duration::from_millis(20));
        exe = std::fs::read_link(format!("{proc}/exe")).unwrap_or_default();
        maps = std::fs::read_to_string(format!("{proc}/maps")).unwrap_or_default();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        exe.ends_with("troupe-cli"),
        "the command ran as {}",
        exe.display()
    );
    assert!(maps.contains("libc.so"), "its mappings were read: {maps}");
    for window_library in ["libwebkit2gtk", "libjavascriptcoregtk", "libgtk-3"] {
        assert!(
            !maps.contains(window_library),
            "troupe-cli maps {window_library}"
        );
    }
}
