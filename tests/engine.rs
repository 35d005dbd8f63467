//! The real engine on the real default model: it loads from a local GGUF with no network,
//! streams a reply, stops within a second when the Generation is dropped and then serves the
//! next request; bad model files are clear errors before mistral.rs sees them.

mod common;

use std::time::{Duration, Instant};

use common::collect;

use troupe::engine::{
    self, ChatMessage, ChatRole, Engine, EngineEvent, EngineStatus, MistralEngine, Sampling, Slot,
};

fn sampling(max_tokens: usize) -> Sampling {
    Sampling::greedy(max_tokens)
}

fn chat(q: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(
            ChatRole::System,
            "You are Marisol, a warm baker. Reply in one or two sentences.",
        ),
        ChatMessage::new(ChatRole::User, q),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_model_streams_stops_and_serves_again() {
    let engine = MistralEngine::load(
        &common::small_model(),
        Some(&troupe::settings::Paths::model_cache()),
    )
    .await
    .expect("the default model loads");
    let info = engine.info();
    assert_eq!(info.architecture, "llama");
    assert!(info.context_length >= 2048, "{info:?}");

    // Streams: several pieces, then Finished.
    let mut gen = engine.generate(chat("What is your favourite bread?"), sampling(24));
    let mut pieces = Vec::new();
    let finish = loop {
        match gen.recv().await.expect("stream ended without Finished") {
            EngineEvent::Text(t) => pieces.push(t),
            EngineEvent::Finished { reason, usage } => break (reason, usage),
            EngineEvent::Failed(e) => panic!("engine failed: {e}"),
        }
    };
    assert!(
        pieces.len() >= 2,
        "expected a streamed reply, got {pieces:?}"
    );
    assert!(!pieces.concat().trim().is_empty());
    let usage = finish.1.expect("usage is reported");
    assert!(
        usage.prompt_tokens > 20 && usage.completion_tokens >= 2,
        "{usage:?}"
    );

    // Greedy is deterministic: the same prompt gives the same words. (The first request
    // prefilled the whole prompt; a repeat is served from the prefix cache, whose last token is
    // recomputed alone, and float sums in another order may tip a near-tie between two first
    // words. Repeats through the same path agree exactly.)
    let again = collect(engine.generate(chat("What is your favourite bread?"), sampling(24))).await;
    let third = collect(engine.generate(chat("What is your favourite bread?"), sampling(24))).await;
    assert_eq!(again, third);
    assert!(!again.trim().is_empty());

    // Stop: dropping the Generation ends it; the engine is free again within a second.
    let mut gen = engine.generate(
        chat("Tell me a very long story about your bakery."),
        sampling(400),
    );
    let mut n = 0;
    while let Some(EngineEvent::Text(_)) = gen.recv().await {
        n += 1;
        if n == 3 {
            break;
        }
    }
    let t = Instant::now();
    drop(gen);
    let next = tokio::time::timeout(
        Duration::from_secs(60),
        collect(engine.generate(chat("Say hello."), sampling(8))),
    )
    .await
    .expect("the next request is served");
    assert!(!next.trim().is_empty());
    println!("after stop, the next 8-token reply took {:?}", t.elapsed());

    // Token counting uses the real tokenizer and chat template.
    let plain = engine
        .count_tokens("Hello there, how are you?")
        .await
        .unwrap();
    let templated = engine
        .count_prompt_tokens(&chat("Hello there, how are you?"))
        .await
        .unwrap();
    assert!(plain >= 5 && plain <= 10, "{plain}");
    assert!(templated > plain + 10, "{templated} vs {plain}");
}

/// A prompt longer than a prefill chunk runs through the model in chunks (a vendored patch that
/// bounds the activations a forward pass holds) and gets the reply it gets run whole: the same
/// greedy tokens, from two engines on one file so that neither is served the other's prompt from
/// its prefix cache. The chunk length is one setting for the process: another test loading an
/// engine meanwhile sets the default (256), and then two chunkings are compared, which must
/// agree as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_run_in_chunks_gets_the_reply_it_gets_whole() {
    let whole = MistralEngine::load(&common::small_model(), None)
        .await
        .unwrap();
    let chunked = MistralEngine::load(&common::small_model(), None)
        .await
        .unwrap();
    let long = format!(
        "{}Which loaf sold out first today, and why?",
        "The bell over the shop door rang again and another neighbour came in from the rain. "
            .repeat(16)
    );
    let messages = chat(&long);
    let tokens = whole.count_prompt_tokens(&messages).await.unwrap();
    assert!(
        tokens > 4 * 64,
        "{tokens} tokens: too few for several chunks"
    );
    mistralrs_core::set_prefill_chunk(0);
    let as_whole = collect(whole.generate(messages.clone(), sampling(24))).await;
    mistralrs_core::set_prefill_chunk(64);
    let in_chunks = collect(chunked.generate(messages, sampling(24))).await;
    mistralrs_core::set_prefill_chunk(engine::prefill_chunk());
    assert!(!as_whole.trim().is_empty(), "an empty reply");
    assert_eq!(
        in_chunks, as_whole,
        "run in chunks of 64 tokens, then whole"
    );
}

/// DRY on the real model: a prompt that makes the greedy model loop loops without DRY and
/// does not with it; the breakers come from the model's own vocabulary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_ends_a_loop_the_greedy_model_falls_into() {
    let model = common::small_model();
    let vocab = engine::gguf::read_vocabulary(&model).expect("the vocabulary reads");
    assert!(vocab.tokens.len() > 10_000, "{}", vocab.tokens.len());
    assert_eq!(vocab.tokens.len(), vocab.types.len());
    let control = vocab.tokens.iter().position(|t| t == "<|im_start|>");
    assert_eq!(control.map(|i| vocab.types[i]), Some(3), "a control token");

    let engine = MistralEngine::load(&model, Some(&troupe::settings::Paths::model_cache()))
        .await
        .expect("the model loads");
    // SmolLM2 answers this by telling what it is designed for, again and again. (The prompt
    // is the model's, not the test's: "Say hello and goodbye over and over again, forever."
    // looped on the Q8_0 copy Troupe ran before, and ends after two rounds on the file's own
    // Q4_1 values.)
    let ask = vec![ChatMessage::new(
        ChatRole::User,
        "What are you designed for? Tell me again and again and again.",
    )];
    let reply = |dry: f64| {
        engine.generate(
            ask.clone(),
            Sampling {
                dry_multiplier: dry,
                ..sampling(160)
            },
        )
    };
    let without = collect(reply(0.0)).await;
    assert!(
        troupe::eval::metrics::loops(&without, &[]),
        "the greedy model should loop here: {without}"
    );
    let with = collect(reply(0.8)).await;
    eprintln!("without DRY: {without}\nwith DRY: {with}");
    assert!(
        !troupe::eval::metrics::loops(&with, &[]),
        "DRY should end the loop: {with}"
    );
}

/// Stop while a model loads: the status says so at once, the finished load is dropped, and the
/// next load works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_can_be_stopped_and_started_again() {
    let slot = Slot::new();
    assert!(!slot.stop_loading(), "nothing is loading yet");
    let loading = tokio::spawn({
        let slot = slot.clone();
        async move { slot.load(common::small_model()).await }
    });
    while !matches!(slot.status(), EngineStatus::Loading { .. }) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(slot.stop_loading());
    assert_eq!(slot.status(), EngineStatus::Failed(engine::Error::Stopped));
    assert_eq!(loading.await.unwrap(), Err(engine::Error::Stopped));
    assert!(slot.engine().is_err(), "the stopped load is not used");

    slot.load(common::small_model()).await.expect("loads again");
    assert!(matches!(slot.status(), EngineStatus::Ready(_)));
    assert!(!slot.stop_loading(), "a loaded model is not stopped");
    assert!(matches!(slot.status(), EngineStatus::Ready(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let slot = Slot::new();

    let missing = dir.path().join("missing.gguf");
    let err = slot.load(missing.clone()).await.unwrap_err();
    assert!(matches!(err, engine::Error::ModelMissing { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"));
    assert_eq!(slot.status(), EngineStatus::Failed(err.clone()));
    assert_eq!(slot.engine().err(), Some(err));

    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, vec![0x42u8; 4096]).unwrap();
    let err = slot.load(garbage).await.unwrap_err();
    assert!(matches!(err, engine::Error::ModelCorrupt { .. }), "{err}");

    // The real model, cut in half: the header check catches it before mistral.rs maps it.
    let real = std::fs::read(common::small_model()).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &real[..real.len() / 2]).unwrap();
    let err = slot.load(truncated).await.unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    // A GGUF of an architecture mistral.rs cannot run: its header with the arch renamed.
    let mut gemma = real.clone();
    let at = gemma
        .windows(5)
        .position(|w| w == b"llama")
        .expect("arch string in header");
    gemma[at..at + 5].copy_from_slice(b"gemma");
    let unsupported = dir.path().join("gemma.gguf");
    std::fs::write(&unsupported, &gemma).unwrap();
    let err = slot.load(unsupported).await.unwrap_err();
    assert!(
        matches!(err, engine::Error::ModelUnsupported { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("'gemma'"), "{err}");

    // A model larger than this machine's memory (a valid header over a sparse 64 GB file):
    // refused in a sentence, at once, instead of swapping or being killed.
    let huge = dir.path().join("huge.gguf");
    let header = huge_gguf_header();
    std::fs::write(&huge, &header).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&huge).unwrap();
    f.set_len(header.len() as u64 + (64 << 30)).unwrap();
    let t = Instant::now();
    let err = slot.load(huge).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, engine::Error::LoadFailed { .. }), "{err}");
    assert!(
        err.to_string().contains("too large for this machine"),
        "{err}"
    );
    assert!(err.to_string().contains("GB"), "{err}");
}

/// A llama GGUF header with one F32 tensor of 16 G values (64 GB), data not included.
fn huge_gguf_header() -> Vec<u8> {
    let mut b = Vec::new();
    let s = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes()); // tensors
    b.extend_from_slice(&1u64.to_le_bytes()); // key-values
    s(&mut b, "general.architecture");
    b.extend_from_slice(&8u32.to_le_bytes());
    s(&mut b, "llama");
    s(&mut b, "w");
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&(16u64 << 30).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes()); // F32
    b.extend_from_slice(&0u64.to_le_bytes());
    while b.len() % 32 != 0 {
        b.push(0);
    }
    b
}

/// The small model (Q4_1) transcoded to Q8_0, as the engine runs a Q4_1 file where candle has
/// no fast kernel for it (off x86-64): every Q4_1 tensor is converted, every value stays within
/// half a Q8_0 step of candle's own dequantisation of the original, the other tensors are
/// byte-identical, and the copy loads and answers. Where Q4_1 is fast, the app runs the file
/// as it is and removes a copy an older build made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcoded_model_matches_the_original_and_answers() {
    use candle_core::quantized::{gguf_file, GgmlDType};
    use candle_core::Device;
    use troupe::engine::transcode;

    let source = common::small_model();
    let slow = transcode::slow_tensor_types(&source).unwrap();
    assert_eq!(
        slow.iter().any(|(t, n)| t == "Q4_1" && *n > 100),
        !cfg!(target_arch = "x86_64"),
        "{slow:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = transcode::cached_path(&source, dir.path()).unwrap();
    let mut calls = 0;
    let done = transcode::transcode_all(&source, &dest, |_, _| calls += 1).unwrap();
    assert!(done.tensors_converted > 100 && calls > done.tensors_converted);
    assert!(transcode::slow_tensor_types(&dest).unwrap().is_empty());
    assert!(!dest.with_extension("gguf.part").exists());

    let open = |p: &std::path::Path| {
        let mut f = std::fs::File::open(p).unwrap();
        let c = gguf_file::Content::read(&mut f).unwrap();
        (f, c)
    };
    let (mut fa, a) = open(&source);
    let (mut fb, b) = open(&dest);
    assert_eq!(a.metadata.len() + 1, b.metadata.len());
    assert_eq!(
        a.metadata["tokenizer.chat_template"].to_string().unwrap(),
        b.metadata["tokenizer.chat_template"].to_string().unwrap()
    );
    assert_eq!(a.tensor_infos.len(), b.tensor_infos.len());
    let mut checked = 0;
    for (name, info) in &a.tensor_infos {
        let ta = a.tensor(&mut fa, name, &Device::Cpu).unwrap();
        let tb = b.tensor(&mut fb, name, &Device::Cpu).unwrap();
        assert_eq!(ta.shape(), tb.shape(), "{name}");
        let va: Vec<f32> = ta
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let vb: Vec<f32> = tb
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        if info.ggml_dtype == GgmlDType::Q4_1 {
            assert_eq!(b.tensor_infos[name].ggml_dtype, GgmlDType::Q8_0, "{name}");
            for (block_a, block_b) in va.chunks(32).zip(vb.chunks(32)) {
                let amax = block_a.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (x, y) in block_a.iter().zip(block_b) {
                    assert!(
                        (x - y).abs() <= amax / 254.0 + amax * 1e-3,
                        "{name}: {x} vs {y}"
                    );
                }
            }
            checked += 1;
        } else {
            assert_eq!(info.ggml_dtype, b.tensor_infos[name].ggml_dtype, "{name}");
            assert_eq!(va, vb, "{name}");
        }
    }
    assert!(checked > 100);

    let copy = MistralEngine::load(&dest, None)
        .await
        .expect("the transcoded copy loads");
    let reply = collect(copy.generate(chat("What is your favourite bread?"), sampling(16))).await;
    assert!(reply.split_whitespace().count() >= 3, "{reply:?}");
    drop(copy);

    let engine = MistralEngine::load(&source, Some(dir.path()))
        .await
        .expect("the model loads");
    if cfg!(target_arch = "x86_64") {
        assert_eq!(engine.info().quantization, "Q4_1");
        assert!(!dest.exists(), "a copy this build does not need is removed");
    } else {
        assert_eq!(engine.info().quantization, "Q4_1 → Q8_0");
    }
    assert_eq!(engine.info().path, source, "the user sees their own file");
    let reply = collect(engine.generate(chat("What is your favourite bread?"), sampling(16))).await;
    assert!(reply.split_whitespace().count() >= 3, "{reply:?}");
}

/// Issue 6's "quality unchanged": Troupe's engine, vendored patches and all, against the
/// unpatched upstream engine's output on the same model (`tests/engine-ab/upstream-reference.json`,
/// written by `bash .ci/engine-ab.sh --write-reference` from a build of mistral.rs 0.8.1 and
/// candle 0.10.2 as published, for x86-64-v3). The quantised matmuls give upstream's AVX2
/// results bit for bit, but attention sums in another order and the norms and element-wise
/// ops are compiled for another target, so logits differ in the last bits; through 8-bit
/// activations the default 135M model turns that into per-token differences of a few hundredths
/// of a nat, which tip greedy near-ties (most of these replies part from upstream's somewhere in
/// their 48 tokens). The measure for that case is the one asserted: the perplexity of a
/// fixed text within 0.5% of upstream's. The per-token log-likelihoods must also stay close
/// everywhere (a bug at some positions could hide in the mean), and the replies that differ are
/// printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_replies_and_perplexity_match_the_unpatched_engine() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/engine-ab");
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()
    };
    let prompts = read("prompts.json");
    let reference = read("upstream-reference.json");
    // The reference was recorded on the Q8_0 transcode of the small Q4_1 file, which Troupe ran
    // then; it now runs Q4_1 as it is on x86-64 (checked at the end), so the A/B runs that copy.
    let copies = tempfile::tempdir().unwrap();
    let copy = copies.path().join("small.q8_0.gguf");
    troupe::engine::transcode::transcode_all(&common::small_model(), &copy, |_, _| {}).unwrap();
    let engine = MistralEngine::load(&copy, None)
        .await
        .expect("the Q8_0 copy loads");

    let max_tokens = reference["max_tokens"].as_u64().unwrap() as usize;
    let mut differ = Vec::new();
    let prompts = prompts.as_array().unwrap();
    let replies = reference["replies"].as_array().unwrap();
    assert_eq!(
        prompts.len(),
        replies.len(),
        "one reference reply per prompt"
    );
    for (p, r) in prompts.iter().zip(replies) {
        assert_eq!(p["name"], r["name"]);
        let messages = p["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let role = match m["role"].as_str().unwrap() {
                    "system" => ChatRole::System,
                    "assistant" => ChatRole::Assistant,
                    _ => ChatRole::User,
                };
                ChatMessage::new(role, m["content"].as_str().unwrap())
            })
            .collect();
        let reply = collect(engine.generate(messages, sampling(max_tokens))).await;
        assert!(!reply.trim().is_empty(), "{}: an empty reply", p["name"]);
        if reply != r["reply"].as_str().unwrap() {
            differ.push(format!(
                "{}:\n  upstream {:?}\n  troupe   {reply:?}",
                p["name"], r["reply"]
            ));
        }
    }

    // The fixed text, built as tests/engine-ab/src/main.rs builds it.
    // RoleBench's text is third-party data, kept beside the repository (as in CI), not in it.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/eval/rolebench/role-generalization-role-specific-test.jsonl");
    let Ok(rolebench) = std::fs::read_to_string(&path) else {
        eprintln!(
            "NOTE: {} is not there: the perplexity half of the A/B did not run \
             ({} of {} greedy replies identical to upstream)",
            path.display(),
            prompts.len() - differ.len(),
            prompts.len()
        );
        return;
    };
    let mut text = String::new();
    for line in rolebench.lines().take(200) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        text.push_str(&format!(
            "{}\n{}\n\n",
            v["question"].as_str().unwrap(),
            v["generated"][0].as_str().unwrap()
        ));
    }
    let n = reference["text_tokens"].as_u64().unwrap() as usize;
    let window = reference["window"].as_u64().unwrap() as usize;
    let score = engine
        .score_text(&text, window, Some(n))
        .await
        .expect("the text scores");
    assert_eq!(score.nll.len(), n);
    let ours = score.perplexity();
    let theirs = reference["perplexity"].as_f64().unwrap();
    let max_diff = score
        .nll
        .iter()
        .zip(reference["nll"].as_array().unwrap())
        .map(|(a, b)| (a - b.as_f64().unwrap()).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "greedy replies identical to upstream: {} of {}; perplexity {ours:.4} vs upstream \
         {theirs:.4} ({:+.3}%); largest per-token difference {max_diff:.5} nats",
        prompts.len() - differ.len(),
        prompts.len(),
        100.0 * (ours - theirs) / theirs
    );
    for d in &differ {
        eprintln!("{d}");
    }
    assert!(
        ((ours - theirs) / theirs).abs() < 0.005,
        "perplexity {ours} is more than 0.5% from upstream's {theirs}"
    );
    let mean_diff = score
        .nll
        .iter()
        .zip(reference["nll"].as_array().unwrap())
        .map(|(a, b)| (a - b.as_f64().unwrap()).abs())
        .sum::<f64>()
        / n as f64;
    assert!(
        mean_diff < 0.1 && max_diff < 1.5,
        "per-token log-likelihoods drift from upstream's: mean {mean_diff}, largest {max_diff} nats"
    );

    // The file as the app runs it (Q4_1 repacked, its own values rather than the copy's
    // re-rounded ones): a looser check until upstream's reference is recorded on the file itself.
    drop(engine);
    let shipped = MistralEngine::load(
        &common::small_model(),
        Some(&troupe::settings::Paths::model_cache()),
    )
    .await
    .expect("the small model loads");
    let own = shipped
        .score_text(&text, window, Some(n))
        .await
        .expect("the text scores")
        .perplexity();
    eprintln!(
        "as the app runs it ({}): perplexity {own:.4} ({:+.3}% from upstream on the copy)",
        shipped.info().quantization,
        100.0 * (own - theirs) / theirs
    );
    assert!(
        ((own - theirs) / theirs).abs() < 0.005,
        "perplexity {own} as the app runs the file is more than 0.5% from upstream's {theirs}"
    );
}
