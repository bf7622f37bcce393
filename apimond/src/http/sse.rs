//! `GET /api/events`: the event bus as server-sent events. The first event is
//! `connected` with the data `ok`, as the Go program sends it; a heartbeat comment
//! goes out every 30 s; a reader that falls behind gets a `lagged` event with the
//! number of events it missed.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;

use super::error::AppError;
use super::extract::AppState;
use crate::events::Received;
use crate::service::Caller;

pub const HEARTBEAT: Duration = Duration::from_secs(30);

pub async fn events(
    State(core): State<AppState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, AppError> {
    caller.require_reader()?;
    let sub = core.bus.subscribe();
    // Plain `ok`, not JSON: the Go program's pages and scripts compare the text.
    let connected = SseEvent::default().event("connected").data("ok");
    let first = futures_util::stream::once(async move { Ok(connected) });
    let rest = futures_util::stream::unfold(sub, |mut sub| async move {
        let event = match sub.recv().await {
            Received::Event(e) => SseEvent::default()
                .event(e.name())
                .data(e.to_json().to_string()),
            Received::Lagged(n) => SseEvent::default()
                .event("lagged")
                .data(json!({"type": "lagged", "missed": n}).to_string()),
            Received::Closed => return None,
        };
        Some((Ok(event), sub))
    });
    let stop = core.streams_closed.clone();
    let mut settings = core.settings_changed.subscribe();
    let stream = futures_util::StreamExt::take_until(
        futures_util::StreamExt::chain(first, rest),
        async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = settings.changed() => {}
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat")))
}
