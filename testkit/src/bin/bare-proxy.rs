//! The proxy benchmark's baseline for apimond's own cost: the same HTTP stack apimond
//! proxies with (axum and hyper serving, reqwest with rustls sending, pooled
//! keep-alive, the body streamed back) and nothing else: no keys, routing, limits,
//! timeouts or usage. `bare-proxy UPSTREAM` forwards every request's method, path,
//! query, content type and body to `UPSTREAM` (`http://host:port`), prints
//! `listening http://127.0.0.1:PORT` once ready and serves until killed.

use std::io::Write;
use std::process::ExitCode;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use futures_util::TryStreamExt;

#[derive(Clone)]
struct Upstream {
    base: String,
    client: reqwest::Client,
}

async fn forward(State(up): State<Upstream>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 32 * 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = up
        .client
        .request(parts.method, format!("{}{path}", up.base))
        .body(body);
    if let Some(v) = parts.headers.get(header::CONTENT_TYPE) {
        out = out.header(header::CONTENT_TYPE, v);
    }
    match out.send().await {
        Ok(mut r) => {
            let mut resp = Response::builder().status(r.status().as_u16());
            if let Some(h) = resp.headers_mut() {
                *h = std::mem::take(r.headers_mut());
            }
            resp.body(Body::from_stream(
                r.bytes_stream().map_err(std::io::Error::other),
            ))
            .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

fn main() -> ExitCode {
    let Some(base) = std::env::args().nth(1) else {
        eprintln!("usage: bare-proxy UPSTREAM (for example http://127.0.0.1:8080)");
        return ExitCode::from(2);
    };
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bare-proxy: cannot build the HTTP client: {e}");
            return ExitCode::from(1);
        }
    };
    let up = Upstream {
        base: base.trim_end_matches('/').to_string(),
        client,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bare-proxy: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", 0)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bare-proxy: cannot listen: {e}");
                return ExitCode::from(1);
            }
        };
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        println!("listening http://{addr}");
        let _ = std::io::stdout().flush();
        let app = axum::Router::new().fallback(forward).with_state(up);
        // As apimond does: small answers leave at once.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        match axum::serve(listener, app).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bare-proxy: {e}");
                ExitCode::from(1)
            }
        }
    })
}
