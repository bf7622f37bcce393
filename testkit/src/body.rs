//! Response bodies: every generation response is written by a producer task into a
//! channel and read back as a streamed body that carries the request's [`Flight`],
//! so the counters see exactly when a body ended or was abandoned. Also owns the
//! framing of events on the wire (SSE, relay-style SSE, progressive JSON array).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::records::ReportedUsage;
use crate::state::{EventLog, Flight};

/// The client stopped reading; the producer should give up.
#[derive(Debug)]
pub(crate) struct Gone;

/// One protocol event: an optional SSE event name and its data line.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub name: Option<&'static str>,
    pub data: String,
}

impl Event {
    pub fn named(name: &'static str, data: String) -> Event {
        Event {
            name: Some(name),
            data,
        }
    }

    pub fn data(data: String) -> Event {
        Event { name: None, data }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `event: x\ndata: {...}\n\n`, as the official APIs send it.
    Sse,
    /// `data:{...}` without the space, CRLF line endings and `: keep-alive` comments
    /// between events, as some relays send it.
    RelaySse,
    /// Gemini without `alt=sse`: `[`, objects separated by `,`, `]`.
    JsonArray,
}

impl Framing {
    pub fn content_type(self) -> &'static str {
        match self {
            Framing::Sse | Framing::RelaySse => "text/event-stream",
            Framing::JsonArray => "application/json",
        }
    }
}

/// What the producer hands the body: bytes, or the order to cut the connection.
enum Chunk {
    Bytes(Bytes),
    Cut,
}

/// The producer's end of a body: writes raw bytes or framed events.
pub(crate) struct Out {
    tx: mpsc::Sender<Chunk>,
    framing: Framing,
    sent_events: usize,
    gap: std::time::Duration,
    log: EventLog,
}

impl Out {
    pub async fn raw(&mut self, bytes: impl Into<Bytes>) -> Result<(), Gone> {
        self.tx
            .send(Chunk::Bytes(bytes.into()))
            .await
            .map_err(|_| Gone)
    }

    /// Cuts the connection where the body stands (the client sees an incomplete body,
    /// or no answer at all if nothing was sent yet).
    pub async fn cut(&mut self) -> Result<(), Gone> {
        // The server drops what it has not written yet when the body fails: give what
        // was sent time to leave first, so the client really got the first bytes.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        self.tx.send(Chunk::Cut).await.map_err(|_| Gone)
    }

    /// Notes the usage this answer reports, for the request's record.
    pub fn reported(&self, usage: ReportedUsage) {
        self.log.usage(usage);
    }

    pub async fn event(&mut self, event: &Event) -> Result<(), Gone> {
        let first = self.sent_events == 0;
        self.sent_events += 1;
        if !first && !self.gap.is_zero() {
            // Each event leaves in its own write, so (with TCP_NODELAY) in its own
            // segment, as a relay passing tokens on as they come sends them.
            tokio::time::sleep(self.gap).await;
        }
        let framed = match self.framing {
            Framing::Sse => match event.name {
                Some(name) => format!("event: {name}\ndata: {}\n\n", event.data),
                None => format!("data: {}\n\n", event.data),
            },
            Framing::RelaySse => {
                let keep_alive = if first { "" } else { ": keep-alive\r\n\r\n" };
                match event.name {
                    Some(name) => {
                        format!("{keep_alive}event:{name}\r\ndata:{}\r\n\r\n", event.data)
                    }
                    None => format!("{keep_alive}data:{}\r\n\r\n", event.data),
                }
            }
            Framing::JsonArray => {
                let sep = if first { "[" } else { ",\r\n" };
                format!("{sep}{}", event.data)
            }
        };
        self.raw(framed).await?;
        self.log.event_sent();
        Ok(())
    }

    pub async fn events(&mut self, events: Vec<Event>) -> Result<(), Gone> {
        for event in &events {
            self.event(event).await?;
        }
        Ok(())
    }

    /// Ends a well-formed stream: only the JSON array has a closing mark.
    pub async fn close(&mut self) -> Result<(), Gone> {
        match self.framing {
            Framing::JsonArray if self.sent_events == 0 => self.raw("[]").await,
            Framing::JsonArray => self.raw("]").await,
            Framing::Sse | Framing::RelaySse => Ok(()),
        }
    }
}

/// A response whose body `produce` writes. The body finishes when `produce` returns;
/// if the client goes away first, `produce` is cancelled and the flight counts as dropped.
pub(crate) fn produced<F, Fut>(
    flight: Flight,
    status: StatusCode,
    content_type: &'static str,
    framing: Framing,
    extra: &[(&'static str, &'static str)],
    produce: F,
) -> Response
where
    F: FnOnce(Out) -> Fut,
    Fut: Future<Output = Result<(), Gone>> + Send + 'static,
{
    // Small: a producer of an endless or huge body must feel the client's pace.
    let (tx, rx) = mpsc::channel::<Chunk>(4);
    let watcher = tx.clone();
    let work = produce(Out {
        tx,
        framing,
        sent_events: 0,
        gap: flight.event_gap(),
        log: flight.log(),
    });
    tokio::spawn(async move {
        // A producer asleep (hang, slow) would outlive its client without this.
        tokio::select! {
            _ = work => {}
            _ = watcher.closed() => {}
        }
    });
    let mut response = Response::new(Body::from_stream(Guarded {
        rx,
        flight: Some(flight),
    }));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if content_type == "text/event-stream" {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    for (name, value) in extra {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    response
}

/// A fixed body, still streamed through the guard so it is counted like the rest.
pub(crate) fn fixed(
    flight: Flight,
    status: StatusCode,
    content_type: &'static str,
    extra: &[(&'static str, &'static str)],
    body: impl Into<Bytes>,
) -> Response {
    let body = body.into();
    produced(
        flight,
        status,
        content_type,
        Framing::Sse,
        extra,
        |mut out| async move { out.raw(body).await },
    )
}

/// The body stream: forwards the producer's chunks and settles the flight.
struct Guarded {
    rx: mpsc::Receiver<Chunk>,
    flight: Option<Flight>,
}

impl Stream for Guarded {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Chunk::Bytes(chunk))) => Poll::Ready(Some(Ok(chunk))),
            Poll::Ready(Some(Chunk::Cut)) => {
                if let Some(flight) = self.flight.take() {
                    flight.cut();
                }
                // A body error makes the server drop the connection mid-body.
                Poll::Ready(Some(Err(std::io::Error::other("cut on purpose"))))
            }
            Poll::Ready(None) => {
                if let Some(flight) = self.flight.take() {
                    flight.finish();
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
