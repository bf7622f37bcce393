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
use std::collections::HashMap;

use crate::events::Received;
use crate::service::Caller;
use crate::service::relay_hiding::{hide_in_value, relay_marks};

pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// Each target's relay address forms, for a stream whose reader must not see them;
/// read again when an event names a target not known yet.
struct RelayMarks {
    core: AppState,
    marks: HashMap<i64, Vec<String>>,
}

impl RelayMarks {
    fn new(core: AppState) -> RelayMarks {
        RelayMarks {
            core,
            marks: HashMap::new(),
        }
    }

    async fn hide(&mut self, data: &mut serde_json::Value) {
        let Some(id) = data["target_id"].as_i64() else {
            return;
        };
        if !self.marks.contains_key(&id)
            && let Ok(targets) = self.core.store.list_targets().await
        {
            self.marks = targets
                .iter()
                .map(|t| (t.id, relay_marks(&t.base_url)))
                .collect();
        }
        if let Some(m) = self.marks.get(&id) {
            hide_in_value(data, m);
        }
    }
}

pub async fn events(
    State(core): State<AppState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, AppError> {
    caller.require_reader()?;
    let sub = core.bus.subscribe();
    // Plain `ok`, not JSON: the Go program's pages and scripts compare the text.
    let connected = SseEvent::default().event("connected").data("ok");
    let first = futures_util::stream::once(async move { Ok(connected) });
    let hiding = core
        .hides_relays_from(&caller)
        .then(|| RelayMarks::new(core.clone()));
    let rest = futures_util::stream::unfold((sub, hiding), |(mut sub, mut hiding)| async move {
        let event = match sub.recv().await {
            Received::Event(e) => {
                let mut data = e.to_json();
                if let Some(h) = hiding.as_mut() {
                    h.hide(&mut data).await;
                }
                SseEvent::default().event(e.name()).data(data.to_string())
            }
            Received::Lagged(n) => SseEvent::default()
                .event("lagged")
                .data(json!({"type": "lagged", "missed": n}).to_string()),
            Received::Closed => return None,
        };
        Some((Ok(event), (sub, hiding)))
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
