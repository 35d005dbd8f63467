//! Downloading a model from a Hugging Face repository, against a local server standing in for
//! the hub (`HF_ENDPOINT`): the real default model arrives whole and checked, an interrupted
//! download resumes where it stopped, a damaged one is refused and removed, and a model of an
//! architecture Troupe cannot run is refused before anyone tries to load it.

mod common;
mod http_stub;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http_stub::{serve, Reply, Step};
use sha2::{Digest, Sha256};
use troupe::engine::download::{download, Error, Progress, Request};

/// A hub serving `bytes` as owner/repo's `file`, with `sha` as its checksum. The first
/// `cut_first` GETs stop after half the bytes; `corrupt` flips a byte in what is served.
async fn hub(
    file: &'static str,
    bytes: Arc<Vec<u8>>,
    sha: String,
    cut_first: usize,
    corrupt: bool,
) -> (http_stub::Stub, Arc<AtomicUsize>) {
    let gets = Arc::new(AtomicUsize::new(0));
    let g = gets.clone();
    let stub = serve(move |req| {
        let resolve = format!("/owner/repo/resolve/main/{file}");
        if req.path == resolve {
            // Like the hub: a redirect to the storage, with the LFS checksum and size.
            return Reply::new(302, "")
                .header("Location", &format!("/cdn/{file}"))
                .header("X-Linked-Etag", &format!("\"{sha}\""))
                .header("X-Linked-Size", &bytes.len().to_string());
        }
        if req.path != format!("/cdn/{file}") {
            return Reply::new(404, "Entry not found");
        }
        if req.method == "HEAD" {
            return Reply {
                status: 200,
                headers: vec![],
                body: vec![],
                length: Some(bytes.len()),
            };
        }
        let start: usize = req
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.trim_end_matches('-').parse().ok())
            .unwrap_or(0);
        let mut body = bytes[start..].to_vec();
        if corrupt {
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
        }
        let n = g.fetch_add(1, Ordering::SeqCst);
        let total_len = body.len();
        let steps = if n < cut_first {
            vec![Step::Bytes(body[..total_len / 2].to_vec()), Step::Close]
        } else {
            vec![Step::Bytes(body)]
        };
        let mut r = Reply {
            status: if start > 0 { 206 } else { 200 },
            headers: vec![],
            body: steps,
            length: Some(total_len),
        };
        if start > 0 {
            r = r.header(
                "Content-Range",
                &format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len()),
            );
        }
        r
    })
    .await;
    (stub, gets)
}

fn sha256(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_model_downloads_resumes_and_is_checked() {
    let bytes = Arc::new(std::fs::read(common::small_model()).unwrap());
    let sha = sha256(&bytes);
    let (stub, gets) = hub("smol.gguf", bytes.clone(), sha, 1, false).await;
    let dir = tempfile::tempdir().unwrap();
    let req = Request::new("owner/repo", "smol.gguf");

    // First try: the connection drops halfway. Clear error; the half stays as .part.
    let err = download(&stub.url, &req, dir.path(), None, |_| {}, || false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Network { .. }), "{err}");
    assert!(err.to_string().contains("try again"), "{err}");
    let part = dir.path().join("smol.gguf.part");
    let half = std::fs::metadata(&part).unwrap().len();
    assert_eq!(half as usize, bytes.len() / 2);
    assert!(!dir.path().join("smol.gguf").exists());

    // Second try resumes from the half (a Range request) and finishes, checked.
    let mut seen: Vec<Progress> = Vec::new();
    let path = download(
        &stub.url,
        &req,
        dir.path(),
        None,
        |p| seen.push(p),
        || false,
    )
    .await
    .unwrap();
    assert_eq!(path, dir.path().join("smol.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), *bytes);
    assert!(!part.exists());
    assert_eq!(gets.load(Ordering::SeqCst), 2);
    let ranged = stub
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.header("range") == Some(&format!("bytes={half}-")));
    assert!(ranged, "the second GET resumed with a Range header");
    assert_eq!(seen.first().unwrap().resumed_from, half);
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    let last = seen.last().unwrap();
    assert_eq!(
        (last.done, last.total),
        (bytes.len() as u64, Some(bytes.len() as u64))
    );

    // The downloaded file is a model Troupe can describe.
    let m = troupe::engine::models::describe(&path, &troupe::engine::models::machine_memory());
    assert_eq!(m.header.unwrap().architecture, "llama");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_download_is_refused_and_removed() {
    let bytes = Arc::new(std::fs::read(common::small_model()).unwrap());
    let sha = sha256(&bytes);
    let (stub, _) = hub("smol.gguf", bytes, sha, 0, true).await;
    let dir = tempfile::tempdir().unwrap();
    let err = download(
        &stub.url,
        &Request::new("owner/repo", "smol.gguf"),
        dir.path(),
        None,
        |_| {},
        || false,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_architecture_is_refused_before_loading() {
    // The real model with its architecture renamed to one mistral.rs cannot run (same length,
    // so the header stays valid).
    let mut bytes = std::fs::read(common::small_model()).unwrap();
    let at = bytes.windows(5).position(|w| w == b"llama").unwrap();
    bytes[at..at + 5].copy_from_slice(b"gemma");
    let sha = sha256(&bytes);
    let (stub, _) = hub("g.gguf", Arc::new(bytes), sha, 0, false).await;
    let dir = tempfile::tempdir().unwrap();
    let err = download(
        &stub.url,
        &Request::new("owner/repo", "g.gguf"),
        dir.path(),
        None,
        |_| {},
        || false,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("'gemma' model"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_missing_file_says_so() {
    let (stub, _) = hub("x.gguf", Arc::new(vec![0; 10]), "0".repeat(64), 0, false).await;
    let dir = tempfile::tempdir().unwrap();
    let err = download(
        &stub.url,
        &Request::new("owner/repo", "other.gguf"),
        dir.path(),
        None,
        |_| {},
        || false,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    assert!(
        err.to_string().contains("no such repository or file"),
        "{err}"
    );
}

/// A hub whose resolve URL answers with `headers` and whose storage (`/cdn/f.gguf`) answers
/// each GET with what `get` makes of it (the request, and how many GETs came before).
async fn custom_hub(
    headers: Vec<(&'static str, String)>,
    get: impl Fn(&http_stub::Req, usize) -> Reply + Send + Sync + 'static,
) -> http_stub::Stub {
    let gets = AtomicUsize::new(0);
    serve(move |req| match (req.method.as_str(), req.path.as_str()) {
        (_, "/owner/repo/resolve/main/f.gguf") => {
            let mut r = Reply::new(302, "").header("Location", "/cdn/f.gguf");
            for (k, v) in &headers {
                r = r.header(k, v);
            }
            r
        }
        ("HEAD", "/cdn/f.gguf") => Reply::new(200, ""),
        ("GET", "/cdn/f.gguf") => get(req, gets.fetch_add(1, Ordering::SeqCst)),
        _ => Reply::new(404, "Entry not found"),
    })
    .await
}

fn checksum_headers(bytes: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("X-Linked-Etag", format!("\"{}\"", sha256(bytes))),
        ("X-Linked-Size", bytes.len().to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_stops_the_download_and_cancel_works_while_it_hangs() {
    let bytes = Arc::new(std::fs::read(common::small_model()).unwrap());
    let b = bytes.clone();
    let stub = custom_hub(checksum_headers(&bytes), move |_, _| Reply {
        status: 200,
        headers: vec![],
        body: vec![Step::Bytes(b[..1 << 20].to_vec()), Step::Hang],
        length: Some(b.len()),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut req = Request::new("owner/repo", "f.gguf");
    req.stall = std::time::Duration::from_secs(2);

    // Nothing for 2 s: a clear error; the first megabyte is kept for a resume.
    let t = std::time::Instant::now();
    let err = download(&stub.url, &req, dir.path(), None, |_| {}, || false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stopped sending"), "{err}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(6),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("f.gguf.part"))
            .unwrap()
            .len(),
        1 << 20
    );

    // Cancel pressed while the server hangs: stops within about a second.
    req.stall = std::time::Duration::from_secs(60);
    let t = std::time::Instant::now();
    let err = download(
        &stub.url,
        &req,
        dir.path(),
        None,
        |_| {},
        || t.elapsed() > std::time::Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_file_without_a_checksum_is_not_downloaded() {
    let stub = custom_hub(vec![("X-Linked-Size", "10".into())], |_, _| {
        Reply::new(200, vec![0u8; 10])
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let err = download(
        &stub.url,
        &Request::new("owner/repo", "f.gguf"),
        dir.path(),
        None,
        |_| {},
        || false,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NoChecksum { .. }), "{err}");
    assert!(err.to_string().contains("SHA-256"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_answered_from_the_wrong_place_starts_over() {
    // The first GET breaks halfway; the resume is answered 206 but from byte 0 (a proxy that
    // ignores the range yet says "partial"): appended, the file would be damaged.
    let bytes = Arc::new(std::fs::read(common::small_model()).unwrap());
    let b = bytes.clone();
    let stub = custom_hub(checksum_headers(&bytes), move |req, n| {
        let len = b.len();
        match (n, req.header("range").is_some()) {
            (0, _) => Reply {
                status: 200,
                headers: vec![],
                body: vec![Step::Bytes(b[..len / 2].to_vec()), Step::Close],
                length: Some(len),
            },
            (_, true) => Reply::new(206, b.to_vec())
                .header("Content-Range", &format!("bytes 0-{}/{len}", len - 1)),
            (_, false) => Reply::new(200, b.to_vec()),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let req = Request::new("owner/repo", "f.gguf");
    let first = download(&stub.url, &req, dir.path(), None, |_| {}, || false).await;
    assert!(matches!(first, Err(Error::Network { .. })), "{first:?}");
    let path = download(&stub.url, &req, dir.path(), None, |_| {}, || false)
        .await
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), *bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_goes_to_the_hub_and_not_to_its_storage() {
    // The hub redirects the download to a storage host (here: another port); the user's
    // Hugging Face token must stay with the hub.
    let bytes = Arc::new(std::fs::read(common::small_model()).unwrap());
    let b = bytes.clone();
    let storage = serve(move |req| match req.method.as_str() {
        "HEAD" => Reply::new(200, ""),
        _ => Reply::new(200, b.to_vec()),
    })
    .await;
    let location = format!("{}/blob/f.gguf", storage.url);
    let sums = checksum_headers(&bytes);
    let hub = serve(move |req| {
        if req.path != "/owner/repo/resolve/main/f.gguf" {
            return Reply::new(404, "Entry not found");
        }
        let mut r = Reply::new(302, "").header("Location", &location);
        for (k, v) in &sums {
            r = r.header(k, v);
        }
        r
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = download(
        &hub.url,
        &Request::new("owner/repo", "f.gguf"),
        dir.path(),
        Some("hf_secret"),
        |_| {},
        || false,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), *bytes);
    let auth = |stub: &http_stub::Stub| -> Vec<Option<String>> {
        stub.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.header("authorization").map(String::from))
            .collect()
    };
    assert!(
        auth(&hub)
            .iter()
            .all(|a| a.as_deref() == Some("Bearer hf_secret")),
        "{:?}",
        auth(&hub)
    );
    let at_storage = auth(&storage);
    assert!(!at_storage.is_empty());
    assert!(at_storage.iter().all(Option::is_none), "{at_storage:?}");
}
