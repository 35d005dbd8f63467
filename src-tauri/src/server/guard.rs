//! What every request passes before it reaches a handler, in this order, each refusal a JSON
//! error that says what to do:
//!
//! 1. `Host` is `localhost` or an IP address (with any port): a web page cannot reach the
//!    server through a name it controls (DNS rebinding).
//! 2. A CORS preflight (`OPTIONS`) is answered only for an origin listed in Settings; no origin
//!    is listed unless the person adds one, so browsers keep other sites out.
//! 3. `Authorization: Bearer <key>`, compared in constant time.
//! 4. A `POST` says `Content-Type: application/json` (a cross-site form or `text/plain` post,
//!    which browsers send without asking, is refused) and its body is at most `MAX_BODY`.
//!
//! A listed origin gets `Access-Control-Allow-Origin` on every answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::wire::WireError;
use super::Shared;

/// The largest request body: a long conversation fits many times over; a runaway one does not.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

pub async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let origin = allowed_origin(&shared, request.headers());
    let answer = match check(&shared, &request) {
        Err(e) => super::error_response(&e),
        Ok(true) => preflight(),
        Ok(false) => next.run(request).await,
    };
    with_cors(answer, origin)
}

/// `Ok(true)`: an allowed preflight; `Ok(false)`: pass on.
fn check(shared: &Shared, request: &Request<Body>) -> Result<bool, WireError> {
    let headers = request.headers();
    check_host(headers)?;
    if request.method() == Method::OPTIONS {
        return match allowed_origin(shared, headers) {
            Some(_) => Ok(true),
            None => Err(WireError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "this origin may not call Troupe's API; add it under Settings → Local API → Allowed origins",
            )),
        };
    }
    check_key(&shared.key, headers)?;
    if request.method() == Method::POST {
        check_json(headers)?;
        check_length(headers)?;
    }
    Ok(false)
}

fn check_host(headers: &HeaderMap) -> Result<(), WireError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if host_allowed(host) {
        return Ok(());
    }
    Err(WireError::new(
        StatusCode::FORBIDDEN,
        "invalid_host",
        format!("the Host header '{host}' is not this computer's: call the API as localhost or by IP address"),
    ))
}

/// `localhost` or an IP literal, with or without a port.
pub fn host_allowed(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port_ok(port.trim_start_matches(':')) => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port_ok(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

fn port_ok(port: &str) -> bool {
    port.parse::<u16>().is_ok()
}

fn check_key(key: &str, headers: &HeaderMap) -> Result<(), WireError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer ").or(h.strip_prefix("bearer ")))
        .map(str::trim);
    match given {
        None => Err(WireError::new(
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "no API key: send 'Authorization: Bearer <key>' with the key from Settings → Local API (or `troupe serve`)",
        )),
        Some(g) if same(g.as_bytes(), key.as_bytes()) => Ok(()),
        Some(_) => Err(WireError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "the API key is wrong: copy it from Settings → Local API (or what `troupe serve` printed)",
        )),
    }
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_json(headers: &HeaderMap) -> Result<(), WireError> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let essence = kind.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(WireError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "the body must be JSON, sent as 'Content-Type: application/json' (it was '{}')",
            if kind.is_empty() { "none" } else { kind }
        ),
    ))
}

fn check_length(headers: &HeaderMap) -> Result<(), WireError> {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<usize>().ok());
    match length {
        Some(n) if n > MAX_BODY => Err(too_large()),
        _ => Ok(()),
    }
}

pub fn too_large() -> WireError {
    WireError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
        format!("the request is larger than {} MB", MAX_BODY / (1024 * 1024)),
    )
}

fn allowed_origin(shared: &Shared, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?.trim_end_matches('/');
    shared
        .origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(text))
        .then(|| origin.clone())
}

fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, x-troupe-session"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    // An https page calling localhost asks for this too (Chrome's Private Network Access).
    h.insert(
        "access-control-allow-private-network",
        HeaderValue::from_static("true"),
    );
    r
}

fn with_cors(mut r: Response, origin: Option<HeaderValue>) -> Response {
    if let Some(origin) = origin {
        r.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_names_and_addresses_are_hosts() {
        for ok in [
            "localhost",
            "localhost:7337",
            "LOCALHOST:1",
            "127.0.0.1:7337",
            "192.168.1.20:7337",
            "[::1]:7337",
            "[::1]",
        ] {
            assert!(host_allowed(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example:7337",
            "localhost.evil.example",
            "127.0.0.1.nip.io:7337",
            "[::1]x",
            "localhost:notaport",
            "[evil]:80",
        ] {
            assert!(!host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn keys_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
