//! The remote engine against a local stand-in for an OpenAI-compatible server: it streams,
//! sends the sampling, stops, reads every legal SSE line, and turns a hung, garbage-sending or
//! endless-line server into a clear error within seconds, with the half-written reply kept in
//! SQLite and marked interrupted; in the arena, a server that drops mid-reply leaves the other
//! contender's reply and marks the turn.

mod common;
mod http_stub;

use std::time::{Duration, Instant};

use http_stub::{serve, Reply, Step};
use troupe::characters::Scenario;
use troupe::conversation::{self, Cancel, TurnError};
use troupe::engine::{
    ChatMessage, ChatRole, Engine, EngineEvent, Error, RemoteConfig, RemoteEngine, Sampling,
};
use troupe::store::{MessageStatus, Store};

fn sse(events: &[&str]) -> Vec<Step> {
    events
        .iter()
        .map(|e| Step::Bytes(format!("data: {e}\n\n").into_bytes()))
        .collect()
}

fn chunk(text: &str) -> String {
    serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
        .to_string()
}

/// A server whose chat stream is `body`.
async fn server(body: impl Fn() -> Vec<Step> + Send + Sync + 'static) -> http_stub::Stub {
    serve(move |req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v1/models") => Reply::new(200, r#"{"object":"list","data":[{"id":"stub-7b"}]}"#),
        ("POST", "/v1/chat/completions") => Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "text/event-stream".into())],
            body: body(),
            length: None,
        },
        _ => Reply::new(404, "no"),
    })
    .await
}

fn config(url: &str) -> RemoteConfig {
    RemoteConfig {
        stall: Duration::from_secs(2),
        ..RemoteConfig::new(&format!("{url}/v1"))
    }
}

fn chat() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(ChatRole::System, "You are a pirate."),
        ChatMessage::new(ChatRole::User, "Ahoy?"),
    ]
}

async fn collect(engine: &dyn Engine, sampling: Sampling) -> (String, EngineEvent) {
    let mut gen = engine.generate(chat(), sampling);
    let mut text = String::new();
    loop {
        match gen
            .recv()
            .await
            .expect("the stream ended without an end event")
        {
            EngineEvent::Text(t) => text.push_str(&t),
            end => return (text, end),
        }
    }
}

#[tokio::test]
async fn streams_a_reply_with_the_sampling_sent() {
    let stub = server(|| {
        let mut b = sse(&[&chunk("Arr,"), &chunk(" matey!")]);
        b.extend(sse(&[
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3}}"#,
            "[DONE]",
        ]));
        b
    })
    .await;
    let engine = RemoteEngine::connect(config(&stub.url)).await.unwrap();
    assert_eq!(engine.info().name, "stub-7b", "the server's first model");
    assert!(engine.info().device.contains("127.0.0.1"));
    let sampling = Sampling {
        seed: Some(42),
        top_k: 30,
        max_tokens: 50,
        stop: vec!["\nUser:".into()],
        ..Sampling::default()
    };
    let (text, end) = collect(&engine, sampling).await;
    assert_eq!(text, "Arr, matey!");
    match end {
        EngineEvent::Finished { usage: Some(u), .. } => {
            assert_eq!((u.prompt_tokens, u.completion_tokens), (12, 3))
        }
        other => panic!("{other:?}"),
    }
    let sent = stub.requests.lock().unwrap().clone();
    let post = sent.iter().find(|r| r.method == "POST").unwrap();
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(body["model"], "stub-7b");
    assert_eq!(body["stream"], true);
    assert_eq!(body["seed"], 42);
    assert_eq!(body["top_k"], 30);
    assert_eq!(body["max_tokens"], 50);
    assert_eq!(body["messages"][1]["content"], "Ahoy?");
}

#[tokio::test]
async fn a_hung_server_is_an_error_within_seconds() {
    let stub = server(|| {
        let mut b = sse(&[&chunk("I was saying")]);
        b.push(Step::Hang);
        b
    })
    .await;
    let engine = RemoteEngine::connect(config(&stub.url)).await.unwrap();
    let t = Instant::now();
    let (text, end) = collect(&engine, Sampling::greedy(20)).await;
    assert_eq!(text, "I was saying");
    match end {
        EngineEvent::Failed(m) => assert!(m.contains("stopped sending"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test]
async fn garbage_mid_stream_is_an_error() {
    let stub = server(|| {
        let mut b = sse(&[&chunk("Hello")]);
        b.push(Step::Bytes(b"<html>502 Bad Gateway</html>\n".to_vec()));
        b
    })
    .await;
    let engine = RemoteEngine::connect(config(&stub.url)).await.unwrap();
    let (text, end) = collect(&engine, Sampling::greedy(20)).await;
    assert_eq!(text, "Hello");
    match end {
        EngineEvent::Failed(m) => assert!(m.contains("not a chat stream"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn stop_ends_the_reply_and_the_next_one_works() {
    let stub = server(|| {
        let mut b = Vec::new();
        for i in 0..50 {
            b.extend(sse(&[&chunk(&format!(" w{i}"))]));
            b.push(Step::Sleep(Duration::from_millis(50)));
        }
        b.extend(sse(&["[DONE]"]));
        b
    })
    .await;
    let engine = RemoteEngine::connect(config(&stub.url)).await.unwrap();
    let mut gen = engine.generate(chat(), Sampling::greedy(100));
    assert!(matches!(gen.recv().await, Some(EngineEvent::Text(_))));
    let t = Instant::now();
    drop(gen); // Stop
    assert!(t.elapsed() < Duration::from_millis(100));
    // The engine is free: a whole reply follows.
    let (text, end) = collect(&engine, Sampling::greedy(100)).await;
    assert!(matches!(end, EngineEvent::Finished { .. }), "{end:?}");
    assert!(text.ends_with(" w49"), "{text}");
}

#[tokio::test]
async fn the_half_written_reply_is_kept_and_marked() {
    let stub = server(|| {
        let mut b = sse(&[&chunk("Well, the tide"), &chunk(" turned and")]);
        b.push(Step::Hang);
        b
    })
    .await;
    let engine = RemoteEngine::connect(config(&stub.url)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.db")).unwrap();
    let c = troupe::characters::builtin::all()
        .into_iter()
        .next()
        .unwrap();
    store.insert_character_if_absent(&c, true, 1).unwrap();
    let session = store
        .create_session(&c.id, Scenario::ChitChat, "t", None, 1)
        .unwrap();
    let result = conversation::send(
        &store,
        &engine,
        session.id,
        "Tell me about the sea.",
        &Sampling::greedy(40),
        &Cancel::new(),
        &|| 2,
        &mut |_| {},
    )
    .await;
    let Err(TurnError::Failed { reply, reason }) = result else {
        panic!("expected a failed turn, got {result:?}");
    };
    assert!(reason.contains("stopped sending"), "{reason}");
    let stored = store.get_message(reply.id).unwrap().unwrap();
    assert_eq!(stored.content.trim(), "Well, the tide turned and");
    assert_eq!(stored.status, MessageStatus::Interrupted);
}

#[tokio::test]
async fn unreachable_or_wrong_servers_are_clear_errors() {
    let t = Instant::now();
    let e = RemoteEngine::connect(RemoteConfig::new("http://127.0.0.1:9/v1"))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::LoadFailed { .. }));
    assert!(e.to_string().contains("does not answer"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(12));

    let stub = serve(|_| Reply::new(404, "not here")).await;
    let e = RemoteEngine::connect(RemoteConfig::new(&stub.url))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("OpenAI-compatible"), "{e}");

    let e = RemoteEngine::connect(RemoteConfig::new("gpu-box:1234"))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("http://"), "{e}");
}

#[tokio::test]
async fn legal_sse_fields_are_read_past() {
    // `id:`, `retry:`, `event:` and comments are legal server-sent events; vLLM and proxies
    // send some of them.
    let stub = server(|| {
        let mut b = vec![Step::Bytes(b": keep-alive\nretry: 3000\n\n".to_vec())];
        b.push(Step::Bytes(
            format!("id: 1\nevent: message\ndata: {}\n\n", chunk("Arr")).into_bytes(),
        ));
        b.push(Step::Bytes(
            format!("id: 2\ndata: {}\n\n", chunk(", matey")).into_bytes(),
        ));
        b.extend(sse(&["[DONE]"]));
        b
    })
    .await;
    let engine = RemoteEngine::connect(config(&stub.url)).await.unwrap();
    let (text, end) = collect(&engine, Sampling::greedy(20)).await;
    assert_eq!(text, "Arr, matey");
    assert!(matches!(end, EngineEvent::Finished { .. }), "{end:?}");
}

#[tokio::test]
async fn an_endless_line_is_an_error_not_a_memory_leak() {
    // 8 MB without a line end, in 64 KB pieces: refused once past 1 MB.
    let stub = server(|| {
        let mut b = sse(&[&chunk("Hello")]);
        b.push(Step::Bytes(b"data: ".to_vec()));
        for _ in 0..128 {
            b.push(Step::Bytes(vec![b'x'; 64 << 10]));
        }
        b
    })
    .await;
    let engine = RemoteEngine::connect(config(&stub.url)).await.unwrap();
    let (text, end) = collect(&engine, Sampling::greedy(20)).await;
    assert_eq!(text, "Hello");
    match end {
        EngineEvent::Failed(m) => assert!(m.contains("a line of over 1 MB"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arena_contender_that_fails_mid_reply_is_marked_and_the_other_stays() {
    use troupe::app::vocabulary::Settings;
    use troupe::app::{Contender, Troupe};
    let stub = server(|| {
        let mut b = sse(&[&chunk("Arr, the"), &chunk(" sea is")]);
        b.push(Step::Close);
        b
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let t = Troupe::open(troupe::settings::Paths::at(dir.path())).unwrap();
    let mut settings = Settings::default();
    settings.sampling.max_tokens = 16;
    settings.remote.base_url = format!("{}/v1", stub.url);
    t.start_engine(&settings, Some(&common::small_model()))
        .await
        .unwrap();
    let s = t
        .start_session("walt-okafor", Scenario::ChitChat, None)
        .unwrap();
    let c = t
        .arena_turn(
            &settings,
            s.id,
            "Evening!",
            &Contender::Current,
            &Contender::Remote,
            &mut |_, _| {},
        )
        .await
        .expect("the turn is kept although one side failed");
    // Whichever side the server was, it is marked and what it wrote is kept; the other side
    // wrote its reply.
    let remote_is_a = c.a_failed.is_some();
    assert!(
        remote_is_a != c.b_failed.is_some(),
        "exactly one side failed: {:?} / {:?}",
        c.a_failed,
        c.b_failed
    );
    let (remote, local) = if remote_is_a { (0, 1) } else { (1, 0) };
    assert_eq!(c.reply.swipes.len(), 2, "{:?}", c.reply.swipes);
    assert_eq!(c.reply.swipes[remote].trim(), "Arr, the sea is");
    assert!(!c.reply.swipes[local].trim().is_empty());
    t.arena_pick(s.id, if remote_is_a { "b" } else { "a" })
        .unwrap();
    let shown = t.messages(s.id).unwrap().pop().unwrap();
    assert_eq!(shown.content, c.reply.swipes[local]);
}

/// The local API with the remote engine behind it: a Character's prompt goes to the server and
/// its stream comes back through Troupe's own API, chunk by chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_answers_through_the_remote_engine() {
    use std::sync::{Arc, Mutex};
    use troupe::app::vocabulary::{EngineChoice, Settings};
    use troupe::app::Troupe;
    let seen = Arc::new(Mutex::new(String::new()));
    let keep = seen.clone();
    let stub = serve(move |req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v1/models") => Reply::new(200, r#"{"object":"list","data":[{"id":"stub-7b"}]}"#),
        ("POST", "/v1/chat/completions") => {
            *keep.lock().unwrap() = req.body.clone();
            let mut body = sse(&[&chunk("Arr,"), &chunk(" matey!")]);
            body.extend(sse(&["[DONE]"]));
            Reply {
                status: 200,
                headers: vec![("Content-Type".into(), "text/event-stream".into())],
                body,
                length: None,
            }
        }
        _ => Reply::new(404, "no"),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let t = Troupe::open(troupe::settings::Paths::at(dir.path())).unwrap();
    let mut settings = Settings::default();
    settings.engine = EngineChoice::Remote;
    settings.remote.base_url = format!("{}/v1", stub.url);
    t.start_engine(&settings, None).await.unwrap();
    let key = "a-key-of-sixteen-or-more".to_string();
    let s = settings.clone();
    let server = troupe::server::start(
        t.clone(),
        Arc::new(move || s.clone()),
        troupe::server::Options {
            host: "127.0.0.1".parse().unwrap(),
            port: 0,
            key: key.clone(),
            origins: vec![],
            allow_network: false,
        },
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let reply: serde_json::Value = client
        .post(format!("http://{}/v1/chat/completions", server.address))
        .bearer_auth(&key)
        .json(&serde_json::json!({
            "model": "troupe/ada-lovelace",
            "messages": [{"role": "user", "content": "Hello!"}],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reply["choices"][0]["message"]["content"], "Arr, matey!",
        "{reply}"
    );
    // The server got the Character's prompt, not just the client's message.
    let sent = seen.lock().unwrap().clone();
    assert!(
        sent.contains("Ada Lovelace") && sent.contains("Hello!"),
        "{sent}"
    );
    // Plain-text completion needs the local model: said, not attempted.
    let status = client
        .post(format!("http://{}/v1/completions", server.address))
        .bearer_auth(&key)
        .json(&serde_json::json!({"model": "stub-7b", "prompt": "Once"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
    server.stop().await;
}
