//! What a stop leaves behind: nothing open. Event streams over HTTP and the control
//! socket end before `shutdown` returns, and a run stuck on a hanging upstream is cut
//! short after the grace period and recorded as interrupted.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[tokio::test]
async fn shutdown_closes_socket_subscriptions_and_event_streams_before_it_returns() {
    let mut d = TestDaemon::start().await;
    let path = d.daemon.as_ref().unwrap().socket_path().to_path_buf();

    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut socket = BufReader::new(stream);
    socket
        .get_mut()
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}\n")
        .await
        .unwrap();
    let mut reply = String::new();
    socket.read_line(&mut reply).await.unwrap();
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["result"]["subscribed"], true, "{reply}");

    let mut sse = d.events(Some(ADMIN_TOKEN)).await;
    assert_eq!(sse.next(5).await.unwrap().0, "connected");

    d.stop().await;

    // Both ends see the close at once: no wait beyond a scheduling hiccup.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), socket.read_to_end(&mut rest))
        .await
        .expect("the socket connection is closed when shutdown returns");
    assert_eq!(read.unwrap(), 0, "no bytes after the subscription reply");
    let ended = tokio::time::timeout(Duration::from_secs(2), sse.resp.chunk())
        .await
        .expect("the event stream is closed when shutdown returns");
    assert!(
        matches!(ended, Ok(None) | Err(_)),
        "the event stream ended: {ended:?}"
    );
}

#[tokio::test]
async fn a_run_hanging_past_the_grace_period_is_cut_short_and_recorded_interrupted() {
    let up = fake_upstream(&["gpt-4o", "gpt-4o-hang"], 0).await;
    let mut d = TestDaemon::start().await;
    let id = d
        .create_on("stuck", &up.base_url(), json!({"timeout_s": 200.0}))
        .await;
    let mut sse = d.events(Some(ADMIN_TOKEN)).await;
    sse.next(5).await;
    d.trigger(id).await;
    // One model answered; the other hangs far longer than the grace period.
    sse.until("model_result", 10).await;

    let started = Instant::now();
    d.stop().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "shutdown is bounded by the grace period, not the probe timeout: {took:?}"
    );

    d.restart_with(STANDARD).await;
    let (_, runs) = d
        .admin(Method::GET, &format!("/api/targets/{id}/runs"), None)
        .await;
    let run = &runs["items"][0];
    assert_eq!(run["status"], "interrupted", "{run}");
    assert_eq!(run["error"], "apimond stopped before the run finished");
    assert_eq!(
        run["total"], 1,
        "recorded by the run itself, with the model that answered: {run}"
    );
}
