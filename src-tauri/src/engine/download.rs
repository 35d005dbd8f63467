//! Downloads a GGUF from a Hugging Face repository: progress, resume and checksum.
//!
//! `{endpoint}/{repo}/resolve/{revision}/{file}` (endpoint: `HF_ENDPOINT`, else
//! https://huggingface.co) answers a redirect to the file's storage carrying `X-Linked-Etag`
//! (the file's SHA-256) and `X-Linked-Size`. The bytes go to `<file>.part` beside the
//! destination; an interrupted download resumes from what that file holds (an HTTP range
//! request), the SHA-256 of the whole is checked, and only then is it renamed into place. A
//! file that fails the check is deleted, so the next try starts clean; a file whose GGUF header
//! names an architecture Troupe cannot run is refused before it is offered to the user.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Error as EngineError;

/// What to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// "owner/name".
    pub repo: String,
    /// A file in the repository, e.g. "qwen2.5-0.5b-instruct-q4_k_m.gguf".
    pub file: String,
    /// Branch, tag or commit; "main" by default.
    pub revision: String,
    /// How long the server may send nothing before the download stops with an error (what
    /// arrived is kept for a resume): 30 s by default.
    pub stall: Duration,
}

impl Request {
    pub fn new(repo: &str, file: &str) -> Request {
        Request {
            repo: repo.trim().trim_matches('/').to_string(),
            file: file.trim().trim_start_matches('/').to_string(),
            revision: "main".into(),
            stall: Duration::from_secs(30),
        }
    }
}

/// How far a download is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub done: u64,
    /// None when the server does not say.
    pub total: Option<u64>,
    /// Bytes that were already there from an earlier, interrupted try.
    pub resumed_from: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("'{0}' is not a repository name like owner/name")]
    BadRepo(String),
    #[error("'{0}' is not a GGUF file name")]
    BadFile(String),
    #[error("cannot reach {url}: {reason}")]
    Network { url: String, reason: String },
    #[error("{url} answered {status}{hint}")]
    Http {
        url: String,
        status: u16,
        hint: &'static str,
    },
    #[error(
        "the download was damaged (SHA-256 {got}, expected {want}); it was deleted, try again"
    )]
    Checksum { got: String, want: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("the download was cancelled; what arrived is kept and the next try resumes")]
    Cancelled,
    #[error("{url} does not say the file's SHA-256, so the download could not be checked; Troupe keeps only downloads it can check")]
    NoChecksum { url: String },
    #[error("no model '{0}' in the catalog")]
    NotInCatalog(String),
    #[error(transparent)]
    Model(#[from] EngineError),
}

/// The Hugging Face endpoint: `HF_ENDPOINT` or the public hub.
pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into())
        .trim_end_matches('/')
        .to_string()
}

/// Downloads `req` into `dir`, calling `progress` as bytes arrive, until done or until
/// `cancelled()` says stop. Returns the file's path. `token` (a Hugging Face token) is sent
/// for gated or private repositories.
pub async fn download(
    endpoint: &str,
    req: &Request,
    dir: &Path,
    token: Option<&str>,
    mut progress: impl FnMut(Progress),
    cancelled: impl Fn() -> bool,
) -> Result<PathBuf, Error> {
    let name = file_name(req)?;
    let dest = dir.join(&name);
    let part = dir.join(format!("{name}.part"));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| write_err(dir, e))?;
    let url = format!(
        "{endpoint}/{}/resolve/{}/{}",
        req.repo, req.revision, req.file
    );
    let fetch = Fetch::new(&url, token, req.stall)?;
    let found = fetch.resolve().await?;
    let (mut have, mut hasher) = resume_from(&part, found.size).await?;
    let mut response = None;
    if found.size != Some(have) || have == 0 {
        let mut r = fetch.get(&found.target, have).await?;
        if have > 0 && resumes_at(&r) != Some(have) {
            // The server ignored the range (200) or resumed somewhere else: start over.
            have = 0;
            hasher = Sha256::new();
            if r.status().as_u16() != 200 {
                r = fetch.get(&found.target, 0).await?;
            }
        }
        response = Some(r);
    }
    // After the server's answer: a download that had to start over resumed from nothing.
    let resumed_from = have;
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(have == 0)
        .append(have > 0)
        .open(&part)
        .await
        .map_err(|e| write_err(&part, e))?;
    let total = found.size.or_else(|| {
        response
            .as_ref()
            .and_then(|r| r.content_length())
            .map(|l| l + have)
    });
    let mut report = |done| {
        progress(Progress {
            done,
            total,
            resumed_from,
        })
    };
    report(have);
    if let Some(r) = response {
        let mut sink = Sink {
            file: &mut file,
            part: &part,
            hasher: &mut hasher,
            have: &mut have,
        };
        sink.take(r, &url, req.stall, &mut report, &cancelled)
            .await?;
    }
    file.flush().await.map_err(|e| write_err(&part, e))?;
    file.sync_all().await.map_err(|e| write_err(&part, e))?;
    drop(file);
    check_and_place(&url, &part, &dest, have, &found, hasher).await?;
    Ok(dest)
}

/// The file's name, after checking that the repository and the file name are plausible (no
/// path tricks, a `.gguf`), before any network.
fn file_name(req: &Request) -> Result<String, Error> {
    let repo_ok = req.repo.split('/').count() == 2
        && req
            .repo
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !req.repo.contains("..");
    if !repo_ok {
        return Err(Error::BadRepo(req.repo.clone()));
    }
    let name = Path::new(&req.file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.to_ascii_lowercase().ends_with(".gguf") || req.file.contains("..") {
        return Err(Error::BadFile(req.file.clone()));
    }
    Ok(name)
}

fn write_err(path: &Path, e: std::io::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn net(url: &str, e: reqwest::Error) -> Error {
    Error::Network {
        url: url.to_string(),
        reason: e.without_url().to_string(),
    }
}

/// The HTTP side: a client that follows no redirect by itself, the resolve URL, the token and
/// how long a server may keep quiet.
struct Fetch<'a> {
    client: reqwest::Client,
    url: &'a str,
    token: Option<&'a str>,
    stall: Duration,
}

/// What the resolve URL says: where the bytes are, their SHA-256 and size when it tells.
struct Found {
    target: String,
    sha: Option<String>,
    size: Option<u64>,
}

impl<'a> Fetch<'a> {
    fn new(url: &'a str, token: Option<&'a str>, stall: Duration) -> Result<Fetch<'a>, Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| net(url, e))?;
        Ok(Fetch {
            client,
            url,
            token,
            stall,
        })
    }

    /// A request to `target`, with the token only when `target` is the hub itself: the hub
    /// redirects downloads to its storage hosts, which must not receive the user's token.
    fn request(&self, method: reqwest::Method, target: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, target);
        let origin = |u: &str| reqwest::Url::parse(u).ok().map(|u| u.origin());
        match self.token {
            Some(t) if !t.is_empty() && origin(target) == origin(self.url) => r.bearer_auth(t),
            _ => r,
        }
    }

    /// Sends `r`, giving up when the server does not answer within the stall time.
    async fn send(
        &self,
        r: reqwest::RequestBuilder,
        target: &str,
    ) -> Result<reqwest::Response, Error> {
        match tokio::time::timeout(self.stall, r.send()).await {
            Ok(result) => result.map_err(|e| net(target, e)),
            Err(_) => Err(Error::Network {
                url: target.to_string(),
                reason: format!("no answer within {} s", self.stall.as_secs()),
            }),
        }
    }

    /// Asks the resolve URL (HEAD, up to a few redirects) for the checksum, the size and
    /// where the bytes are.
    async fn resolve(&self) -> Result<Found, Error> {
        let mut target = self.url.to_string();
        let mut sha = None;
        let mut size = None;
        for _ in 0..5 {
            let head = self
                .send(self.request(reqwest::Method::HEAD, &target), &target)
                .await?;
            let header = |k: &str| {
                head.headers()
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim_matches('"').to_string())
            };
            sha = sha.or_else(|| header("x-linked-etag").filter(|e| is_sha256(e)));
            size = size.or_else(|| header("x-linked-size").and_then(|s| s.parse::<u64>().ok()));
            if head.status().is_redirection() {
                let Some(loc) = header("location") else {
                    break;
                };
                target = head.url().join(&loc).map(|u| u.to_string()).unwrap_or(loc);
                continue;
            }
            if !head.status().is_success() {
                return Err(http_error(self.url, head.status().as_u16()));
            }
            sha = sha.or_else(|| header("etag").filter(|e| is_sha256(e)));
            size = size.or_else(|| head.content_length());
            break;
        }
        if sha.is_none() {
            return Err(Error::NoChecksum {
                url: self.url.to_string(),
            });
        }
        Ok(Found { target, sha, size })
    }

    /// GETs the bytes from `have` on (a range request when resuming): a 206, or a 200 when the
    /// server ignored the range.
    async fn get(&self, target: &str, have: u64) -> Result<reqwest::Response, Error> {
        let mut get = self.request(reqwest::Method::GET, target);
        if have > 0 {
            get = get.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let r = self.send(get, target).await?;
        match r.status().as_u16() {
            200 | 206 => Ok(r),
            s => Err(http_error(self.url, s)),
        }
    }
}

/// Where a partial answer (206) starts, from its `Content-Range: bytes START-END/TOTAL`; `None`
/// for a whole answer or one that does not say.
fn resumes_at(r: &reqwest::Response) -> Option<u64> {
    if r.status().as_u16() != 206 {
        return None;
    }
    let range = r
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    range
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// What an earlier try left in `part` (unless it is more than the whole), already hashed.
async fn resume_from(part: &Path, size: Option<u64>) -> Result<(u64, Sha256), Error> {
    let mut have = tokio::fs::metadata(part)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    if size.is_some_and(|s| have > s) {
        have = 0;
    }
    let mut hasher = Sha256::new();
    if have > 0 {
        let mut f = tokio::fs::File::open(part)
            .await
            .map_err(|e| write_err(part, e))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = have;
        while left > 0 {
            let n = f.read(&mut buf).await.map_err(|e| write_err(part, e))?;
            if n == 0 {
                break;
            }
            let n = n.min(left as usize);
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
    }
    Ok((have, hasher))
}

/// Where the body goes: the `.part` file, the running hash and the count.
struct Sink<'a> {
    file: &'a mut tokio::fs::File,
    part: &'a Path,
    hasher: &'a mut Sha256,
    have: &'a mut u64,
}

impl Sink<'_> {
    /// Writes the response's body as it arrives, reporting each piece, until it ends, breaks
    /// or is cancelled.
    async fn take(
        &mut self,
        r: reqwest::Response,
        url: &str,
        stall: Duration,
        report: &mut impl FnMut(u64),
        cancelled: &impl Fn() -> bool,
    ) -> Result<(), Error> {
        let mut body = r.bytes_stream();
        // Waits a second at a time, so Cancel works while the server is quiet, and gives up
        // after `stall` of quiet (a hung server used to hold the download, and every later
        // one, for ever).
        let tick = Duration::from_secs(1).min(stall);
        let mut quiet = Duration::ZERO;
        loop {
            let next = tokio::time::timeout(tick, body.next()).await;
            if cancelled() {
                let _ = self.file.flush().await;
                return Err(Error::Cancelled);
            }
            let chunk = match next {
                Err(_) => {
                    quiet += tick;
                    if quiet < stall {
                        continue;
                    }
                    let _ = self.file.flush().await;
                    return Err(Error::Network {
                        url: url.to_string(),
                        reason: format!(
                            "the server stopped sending after {:.1} MB (nothing for {} s); try again to resume",
                            *self.have as f64 / 1e6,
                            stall.as_secs()
                        ),
                    });
                }
                Ok(None) => break,
                Ok(Some(chunk)) => chunk,
            };
            quiet = Duration::ZERO;
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    // tokio's File finishes a write in the background: without this flush the
                    // last chunk could land after we return, so the next try's resume offset
                    // (the .part's length) would be read before it arrived.
                    let _ = self.file.flush().await;
                    return Err(Error::Network {
                        url: url.to_string(),
                        reason: format!(
                            "the connection broke after {:.1} MB ({}); try again to resume",
                            *self.have as f64 / 1e6,
                            e.without_url()
                        ),
                    });
                }
            };
            self.file
                .write_all(&chunk)
                .await
                .map_err(|e| write_err(self.part, e))?;
            self.hasher.update(&chunk);
            *self.have += chunk.len() as u64;
            report(*self.have);
        }
        Ok(())
    }
}

/// The whole file, checked (size, SHA-256, a GGUF Troupe can run), renamed into place; a file
/// that fails a check is deleted so the next try starts clean.
async fn check_and_place(
    url: &str,
    part: &Path,
    dest: &Path,
    have: u64,
    found: &Found,
    hasher: Sha256,
) -> Result<(), Error> {
    if let Some(want) = found.size.filter(|s| have < *s) {
        return Err(Error::Network {
            url: url.to_string(),
            reason: format!(
                "the connection ended after {have} of {want} bytes; try again to resume"
            ),
        });
    }
    let got = format!("{:x}", hasher.finalize());
    if let Some(want) = &found.sha {
        if got != want.to_ascii_lowercase() {
            let _ = tokio::fs::remove_file(part).await;
            return Err(Error::Checksum {
                got,
                want: want.clone(),
            });
        }
    }
    // A whole, checked file; refuse it now if Troupe could never run it.
    if let Err(e) = super::check_model_file(part) {
        let _ = tokio::fs::remove_file(part).await;
        return Err(Error::Model(match e {
            EngineError::ModelUnsupported {
                architecture,
                supported,
                ..
            } => EngineError::ModelUnsupported {
                path: dest.to_path_buf(),
                architecture,
                supported,
            },
            other => other,
        }));
    }
    tokio::fs::rename(part, dest)
        .await
        .map_err(|e| write_err(dest, e))
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn http_error(url: &str, status: u16) -> Error {
    Error::Http {
        url: url.to_string(),
        status,
        hint: match status {
            401 | 403 => ": the repository is gated or private; add a Hugging Face token",
            404 => ": no such repository or file (check the spelling and the file name)",
            416 => ": the partial download no longer matches; delete the .part file and retry",
            _ => "",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_before_any_network() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let run = |r: Request| {
            rt.block_on(download(
                "http://127.0.0.1:9",
                &r,
                dir.path(),
                None,
                |_| {},
                || false,
            ))
        };
        assert!(matches!(
            run(Request::new("no-slash", "a.gguf")),
            Err(Error::BadRepo(_))
        ));
        assert!(matches!(
            run(Request::new("a/b", "notes.txt")),
            Err(Error::BadFile(_))
        ));
        assert!(matches!(
            run(Request::new("a/b", "../../etc/x.gguf")),
            Err(Error::BadFile(_))
        ));
        // Nothing listens on port 9: a clear network error naming the URL.
        let e = run(Request::new("a/b", "m.gguf")).unwrap_err().to_string();
        assert!(
            e.contains("cannot reach http://127.0.0.1:9/a/b/resolve/main/m.gguf"),
            "{e}"
        );
    }
}
