//! The proxy benchmark's baseline for apimond's own cost: the same HTTP stack apimond
//! proxies with (axum and hyper serving, the `plain` profile's client sending: direct
//! pooled keep-alive connections, the body streamed back) and nothing else: no keys,
//! routing, limits, timeouts or usage. Served as apimond serves: two threads per CPU,
//! each running a single-threaded runtime. `bare-proxy UPSTREAM` forwards every
//! request's method, path, query, content type and body to `UPSTREAM`
//! (`http://host:port`), prints `listening http://127.0.0.1:PORT` once ready and
//! serves until killed.

use std::io::Write;
use std::process::ExitCode;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use futures_util::TryStreamExt;
use shared::probe::{
    CheckMode, ClientProfile, ProbeSettings, Prober, ProxyChoice, UpstreamClient, UpstreamUrl,
};

#[derive(Clone)]
struct Upstream {
    base: UpstreamUrl,
    client: UpstreamClient,
}

async fn forward(State(up): State<Upstream>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 32 * 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut url = up.base.clone();
    url.set_path(parts.uri.path());
    url.set_query(parts.uri.query());
    let mut headers = HeaderMap::new();
    if let Some(v) = parts.headers.get(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, v.clone());
    }
    match up.client.send(parts.method, url, headers, Some(body)).await {
        Ok(r) => {
            let mut resp = Response::builder().status(r.status);
            if let Some(h) = resp.headers_mut() {
                *h = r.headers;
            }
            resp.body(Body::from_stream(
                r.body.map_err(|e| std::io::Error::other(e.message)),
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
    let Ok(base) = UpstreamUrl::parse(&base) else {
        eprintln!("bare-proxy: {base} is not a URL");
        return ExitCode::from(2);
    };
    let settings = ProbeSettings {
        base_url: base.to_string(),
        api_key: shared::Secret::new("unused"),
        timeout: std::time::Duration::from_secs(30),
        verify_ssl: true,
        anthropic_version: "2023-06-01".into(),
        extra_headers: Default::default(),
        user_agent: None,
        max_tokens: None,
        check_mode: CheckMode::Prompt,
        prompt: String::new(),
        slow_ms: 10_000,
        route_overrides: Vec::new(),
        proxy: ProxyChoice::Direct,
        client_profile: ClientProfile::Plain,
    };
    let client = match Prober::new(Vec::new()).upstream_client(&settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bare-proxy: cannot build the HTTP client: {}", e.message);
            return ExitCode::from(1);
        }
    };
    let up = Upstream { base, client };
    // As apimond serves: two threads per CPU, each with a single-threaded runtime and the
    // connections it accepted (here from a listener of its own on the shared port).
    let threads = 2 * std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut serving = Vec::new();
    let mut port = 0;
    for n in 0..threads {
        let started = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|runtime| {
                let listener = {
                    let _in = runtime.enter();
                    reusable_listener(port)?
                };
                Ok((runtime, listener))
            });
        let (runtime, listener) = match started {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bare-proxy: cannot listen: {e}");
                return ExitCode::from(1);
            }
        };
        port = listener
            .local_addr()
            .expect("a bound listener has an address")
            .port();
        let up = up.clone();
        serving.push(std::thread::spawn(move || {
            shared::probe::pin_direct_pool_to_this_thread(n + 1);
            runtime.block_on(serve(listener, up))
        }));
    }
    println!("listening http://127.0.0.1:{port}");
    let _ = std::io::stdout().flush();
    for thread in serving {
        if let Ok(Err(e)) = thread.join() {
            eprintln!("bare-proxy: {e}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

fn reusable_listener(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.bind(([127, 0, 0, 1], port).into())?;
    socket.listen(1024)
}

async fn serve(listener: tokio::net::TcpListener, up: Upstream) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(forward).with_state(up);
    // As apimond does: small answers leave at once.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
