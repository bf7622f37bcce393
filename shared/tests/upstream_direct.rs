//! The proxy's way to a relay reached directly (`plain` profile, no outbound proxy):
//! connections kept alive and reused, a connection the relay closed while idle never
//! costs a request, redirects followed, the request head as reqwest would send it, and
//! TLS with `verify_ssl` honoured. Real HTTP over loopback, against a hand-written
//! HTTP/1.1 server that counts its connections, and the fake relay over HTTPS.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use shared::Secret;
use shared::probe::route::default_rules;
use shared::probe::{
    CheckMode, ClientProfile, ErrorClass, ProbeSettings, Prober, ProxyChoice, UpstreamClient,
    UpstreamResponse, UpstreamUrl,
};
use testkit::{FakeConfig, FakeUpstream};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const KEY: &str = "sk-fake-upstream-key-0123456789";

fn settings(base: &str) -> ProbeSettings {
    ProbeSettings {
        base_url: format!("{base}/v1/"),
        api_key: Secret::new(KEY),
        timeout: Duration::from_secs(5),
        verify_ssl: true,
        anthropic_version: "2023-06-01".into(),
        extra_headers: BTreeMap::new(),
        user_agent: None,
        max_tokens: None,
        check_mode: CheckMode::Prompt,
        prompt: "Say hi".into(),
        slow_ms: 10_000,
        route_overrides: Vec::new(),
        proxy: ProxyChoice::Direct,
        client_profile: ClientProfile::Plain,
    }
}

/// How the hand-written server treats a connection after each answer.
#[derive(Clone, Copy, PartialEq)]
enum After {
    /// Keeps it open for the next request.
    KeepAlive,
    /// Closes it without saying so first, as a relay whose idle limit ran out does.
    Close,
}

/// An HTTP/1.1 server answering every request with a small JSON body (a `307` to
/// `/new` for `/old`); it counts connections and keeps each request's head.
struct Raw {
    port: u16,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

async fn raw_server(after: After) -> Raw {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (count, kept) = (connections.clone(), heads.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut tcp = BufReader::new(tcp);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if tcp.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    tcp.read_exact(&mut body).await.unwrap();
                    let old = head.starts_with("POST /old ");
                    kept.lock().unwrap().push(head);
                    let answer = if old {
                        "HTTP/1.1 307 Temporary Redirect\r\nlocation: /new\r\ncontent-length: 0\r\n\r\n"
                            .to_string()
                    } else {
                        let body = format!("{{\"received\":{length}}}");
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    if tcp.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    if after == After::Close {
                        return;
                    }
                }
            });
        }
    });
    Raw {
        port,
        connections,
        heads,
    }
}

async fn client_for(base: &str, verify_ssl: bool) -> UpstreamClient {
    let mut s = settings(base);
    s.verify_ssl = verify_ssl;
    Prober::new(default_rules()).upstream_client(&s).unwrap()
}

/// The hand-written server, its base URL and a client for it.
async fn start(after: After) -> (Raw, String, UpstreamClient) {
    let server = raw_server(after).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    let client = client_for(&base, true).await;
    (server, base, client)
}

async fn post(client: &UpstreamClient, url: &str) -> (UpstreamResponse, String) {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let mut r = client
        .send(
            Method::POST,
            UpstreamUrl::parse(url).unwrap(),
            headers,
            Some(Bytes::from_static(b"{\"model\":\"m\"}")),
        )
        .await
        .unwrap_or_else(|e| panic!("{url}: {} ({:?})", e.message, e.class));
    let mut body = Vec::new();
    while let Some(chunk) = r.body.next().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    (r, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn requests_in_turn_reuse_one_kept_alive_connection() {
    let (server, base, client) = start(After::KeepAlive).await;
    for _ in 0..20 {
        let (r, body) = post(&client, &format!("{base}/v1/chat/completions?x=1")).await;
        assert_eq!(r.status, 200);
        assert_eq!(body, r#"{"received":13}"#);
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    // Concurrent requests each get a connection, and leave them for the next ones.
    let all: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{base}/v1/embeddings"));
            tokio::spawn(async move { post(&client, &url).await.1 })
        })
        .collect();
    for one in all {
        assert_eq!(one.await.unwrap(), r#"{"received":13}"#);
    }
    let after_burst = server.connections.load(Ordering::SeqCst);
    assert!((1..=8).contains(&after_burst), "{after_burst}");
    for _ in 0..8 {
        post(&client, &format!("{base}/v1/embeddings")).await;
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), after_burst);
}

#[tokio::test]
async fn the_head_carries_host_with_its_port_a_default_accept_and_the_query() {
    let (server, base, client) = start(After::KeepAlive).await;
    post(
        &client,
        &format!("{base}/v1beta/models/g:generateContent?alt=sse"),
    )
    .await;
    let head = server.heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        head.starts_with("post /v1beta/models/g:generatecontent?alt=sse http/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("\r\nhost: 127.0.0.1:{}\r\n", server.port)),
        "{head}"
    );
    assert!(head.contains("\r\naccept: */*\r\n"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/json\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\ncontent-length: 13\r\n"), "{head}");
}

#[tokio::test]
async fn a_connection_the_relay_closed_while_idle_never_fails_a_request() {
    let (server, base, client) = start(After::Close).await;
    for i in 0..10 {
        let (r, body) = post(&client, &format!("{base}/v1/chat/completions")).await;
        assert_eq!(
            (r.status, body.as_str()),
            (200, r#"{"received":13}"#),
            "request {i}"
        );
        // Time for the relay's close to arrive before the next request.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn a_redirect_is_followed_with_the_body() {
    let (server, base, client) = start(After::KeepAlive).await;
    let (r, body) = post(&client, &format!("{base}/old")).await;
    assert_eq!(r.status, 200);
    assert_eq!(body, r#"{"received":13}"#, "a 307 keeps method and body");
    let heads = server.heads.lock().unwrap();
    assert!(heads[0].starts_with("POST /old "), "{}", heads[0]);
    assert!(heads[1].starts_with("POST /new "), "{}", heads[1]);
}

#[tokio::test]
async fn a_refused_connection_is_a_network_failure_without_the_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = client_for(&base, true).await;
    let e = client
        .send(
            Method::POST,
            UpstreamUrl::parse(&format!("{base}/v1/chat/completions")).unwrap(),
            HeaderMap::new(),
            Some(Bytes::from_static(b"{}")),
        )
        .await
        .err()
        .expect("nobody listens there");
    assert_eq!(e.class, ErrorClass::Network, "{}", e.message);
    assert!(!e.message.contains(&port.to_string()), "{}", e.message);
}

#[tokio::test]
async fn https_checks_the_certificate_unless_verify_ssl_is_off() {
    let up = FakeUpstream::start_tls(FakeConfig {
        api_key: KEY.into(),
        ..FakeConfig::default()
    })
    .await;
    let url = format!("{}/v1/models", up.base_url());
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {KEY}")).unwrap(),
    );
    let checked = client_for(&up.base_url(), true).await;
    let e = checked
        .send(
            Method::GET,
            UpstreamUrl::parse(&url).unwrap(),
            headers.clone(),
            None,
        )
        .await
        .err()
        .expect("a self-signed certificate is refused");
    assert_eq!(e.class, ErrorClass::Tls, "{}", e.message);

    let trusting = client_for(&up.base_url(), false).await;
    for _ in 0..3 {
        let mut r = trusting
            .send(
                Method::GET,
                UpstreamUrl::parse(&url).unwrap(),
                headers.clone(),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(r.status, 200);
        let mut body = Vec::new();
        while let Some(chunk) = r.body.next().await {
            body.extend_from_slice(&chunk.unwrap());
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["data"].as_array().is_some_and(|d| !d.is_empty()), "{v}");
    }
}
