//! A tiny HTTP/1.1 server for tests that stand in for a remote service (the Hugging Face hub,
//! an OpenAI-compatible server): each request goes to a handler that answers with a status,
//! headers and a body made of steps, so a test can send bytes slowly, stop mid-body, or hang.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the server saw.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One step of a body.
pub enum Step {
    Bytes(Vec<u8>),
    Sleep(Duration),
    /// Close the connection here (a dropped download).
    Close,
    /// Never send anything more (a hung server).
    Hang,
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<Step>,
    /// Content-Length to announce (for bodies that are cut short); None: the body's length.
    pub length: Option<usize>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: vec![Step::Bytes(body.into())],
            length: None,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// A running stub; `url` is its base, `requests` what it received.
pub struct Stub {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Req>>>,
}

pub async fn serve(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Stub {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handler: Handler = Arc::new(handler);
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                // Headers, then the body by Content-Length.
                let head_end = loop {
                    let Ok(n) = sock.read(&mut tmp).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.split("\r\n");
                let first: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let Ok(n) = sock.read(&mut tmp).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                let req = Req {
                    method: first.first().unwrap_or(&"").to_string(),
                    path: first.get(1).unwrap_or(&"").to_string(),
                    headers,
                    body: String::from_utf8_lossy(&buf[head_end..]).to_string(),
                };
                seen.lock().unwrap().push(req.clone());
                let reply = handler(&req);
                let body_len: usize = reply
                    .body
                    .iter()
                    .map(|s| match s {
                        Step::Bytes(b) => b.len(),
                        _ => 0,
                    })
                    .sum();
                let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
                let chunked_stream = reply.headers.iter().any(|(k, v)| {
                    k.eq_ignore_ascii_case("content-type") && v.contains("event-stream")
                });
                for (k, v) in &reply.headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                if !chunked_stream {
                    out.push_str(&format!(
                        "Content-Length: {}\r\n",
                        reply.length.unwrap_or(body_len)
                    ));
                }
                out.push_str("\r\n");
                if sock.write_all(out.as_bytes()).await.is_err() {
                    return;
                }
                if req.method == "HEAD" {
                    return;
                }
                for step in reply.body {
                    match step {
                        Step::Bytes(b) => {
                            if sock.write_all(&b).await.is_err() {
                                return;
                            }
                            let _ = sock.flush().await;
                        }
                        Step::Sleep(d) => tokio::time::sleep(d).await,
                        Step::Close => return,
                        Step::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return;
                        }
                    }
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    Stub { url, requests }
}
