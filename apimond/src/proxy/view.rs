//! The proxy's in-memory routing view: every channel with its client, settings and
//! models, and each model's latest probe outcome. Requests read a snapshot and never
//! touch SQLite; a refresher task rebuilds the snapshot from the store when the event
//! bus says targets or probe results changed (and every so often, as a safety net).

// foldhash (seeded per process) costs far less than SipHash per lookup; the keys
// are channel names and ids and the model ids the channels list.
use foldhash::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use shared::probe::{
    ModelStatus, ProbeSettings, Protocol, UpstreamClient, UpstreamUrl, normalise_base_url,
};
use tokio_util::sync::CancellationToken;

use super::request::Api;
use crate::events::{Event, Received, Subscription};
use crate::runner::probe_settings;
use crate::store::Store;

/// A rebuild waits this long after the first change, so a run's burst of results
/// costs one rebuild, not one per model.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Rebuilt at least this often, whatever the bus said.
const SAFETY_REFRESH: Duration = Duration::from_secs(30);

/// A model's latest probe, as routing reads it.
#[derive(Debug, Clone)]
pub struct ProbeOutcome {
    pub status: ModelStatus,
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    pub error_class: Option<String>,
    pub at: f64,
}

/// One channel as the proxy sees it.
pub struct Channel {
    pub id: i64,
    /// `id` as the `X-Proxy-Target-Id` answer header, made once.
    pub id_header: HeaderValue,
    pub name: String,
    pub enabled: bool,
    /// `base_url` without a trailing `/` or `/v1`, parsed once (`None` when it does
    /// not parse: requests to the channel then fail with a 502 that says so).
    pub base_url: Option<UpstreamUrl>,
    /// The upstream URL of each of [`Api::FIXED`] (their paths name no model), built
    /// once per view rather than per request.
    fixed_urls: Option<[UpstreamUrl; 4]>,
    /// What every upstream request of a protocol carries (the channel's key in that
    /// protocol's header, `anthropic-version`, extra headers), in
    /// [`Protocol::ALL`]'s order: built once per view, cloned per request.
    upstream_headers: [HeaderMap; 4],
    pub settings: ProbeSettings,
    /// The target's client; `Err` says why it could not be built (a bad proxy).
    pub client: Result<UpstreamClient, String>,
    /// Models the channel lists (discovery) or was probed with, and the latest probe
    /// of each (none when not probed yet).
    pub models: HashMap<String, Option<ProbeOutcome>>,
}

impl Channel {
    pub fn lists(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    pub fn probe(&self, model: &str) -> Option<&ProbeOutcome> {
        self.models.get(model).and_then(Option::as_ref)
    }

    /// The upstream URL of a request of `api` for `model` with the client's `query`;
    /// `None` when the base URL does not parse.
    pub fn upstream_url(&self, api: Api, model: &str, query: Option<&str>) -> Option<UpstreamUrl> {
        let mut url = match (api.fixed_slot(), &self.fixed_urls) {
            (Some(i), Some(urls)) => urls[i].clone(),
            _ => api_url(self.base_url.as_ref()?, api, model),
        };
        if query.is_some() {
            url.set_query(query);
        }
        Some(url)
    }

    /// The headers every upstream request of `protocol` carries.
    pub fn upstream_headers(&self, protocol: Protocol) -> &HeaderMap {
        let i = Protocol::ALL
            .iter()
            .position(|p| *p == protocol)
            .expect("every protocol is in ALL");
        &self.upstream_headers[i]
    }
}

/// `base` with the path of `api` for `model` below its own, and no query.
fn api_url(base: &UpstreamUrl, api: Api, model: &str) -> UpstreamUrl {
    let mut url = base.clone();
    let path = format!(
        "{}{}",
        base.path().trim_end_matches('/'),
        api.upstream_path(model)
    );
    url.set_path(&path);
    url.set_query(None);
    url
}

/// A snapshot of every channel; replaced whole on refresh.
#[derive(Default)]
pub struct RoutingView {
    /// In the targets' display order.
    pub channels: Vec<Channel>,
    by_name: HashMap<String, usize>,
    by_id: HashMap<i64, usize>,
    /// Model id → channels that list it, in display order.
    by_model: HashMap<String, Vec<usize>>,
}

impl RoutingView {
    pub fn channel_by_name(&self, name: &str) -> Option<&Channel> {
        self.by_name.get(name).map(|&i| &self.channels[i])
    }

    /// A channel's place in [`RoutingView::channels`].
    pub fn index_of(&self, id: i64) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    pub fn channel(&self, id: i64) -> Option<&Channel> {
        self.by_id.get(&id).map(|&i| &self.channels[i])
    }

    /// The channels that list `model`, in display order.
    pub fn offering(&self, model: &str) -> impl Iterator<Item = &Channel> {
        self.by_model
            .get(model)
            .into_iter()
            .flatten()
            .map(|&i| &self.channels[i])
    }

    /// Splits `channel/model` at the first `/` whose prefix names a channel (names
    /// match exactly and case-sensitively); `None` for a bare model id.
    pub fn split_explicit<'a>(&self, requested: &'a str) -> Option<(&Channel, &'a str)> {
        requested
            .match_indices('/')
            .map(|(i, _)| (&requested[..i], &requested[i + 1..]))
            .find_map(|(name, model)| {
                let c = self.channel_by_name(name)?;
                (!model.is_empty()).then_some((c, model))
            })
    }

    fn build(channels: Vec<Channel>) -> RoutingView {
        let mut v = RoutingView {
            channels,
            ..Default::default()
        };
        for (i, c) in v.channels.iter().enumerate() {
            v.by_name.insert(c.name.clone(), i);
            v.by_id.insert(c.id, i);
            for m in c.models.keys() {
                v.by_model.entry(m.clone()).or_default().push(i);
            }
        }
        v
    }
}

/// The shared handle: readers take the current snapshot, the refresher swaps in new ones.
#[derive(Clone, Default)]
pub struct ViewHandle {
    current: Arc<RwLock<Arc<RoutingView>>>,
}

impl ViewHandle {
    pub fn snapshot(&self) -> Arc<RoutingView> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Rebuilds from the store now.
    pub async fn refresh(&self, store: &Store, prober: &shared::probe::Prober) {
        match load(store, prober).await {
            Ok(view) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
            }
            Err(e) => tracing::error!(error = %e, "cannot refresh the proxy's routing view"),
        }
    }

    /// Keeps the view fresh until `stop`: rebuilds shortly after every change `sub`
    /// announces, and every [`SAFETY_REFRESH`]. The caller subscribes before its first
    /// load, so no change between that load and this loop is missed.
    pub async fn keep_fresh(
        self,
        store: Store,
        prober: shared::probe::Prober,
        mut sub: Subscription,
        stop: CancellationToken,
    ) {
        loop {
            let changed = tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(SAFETY_REFRESH) => true,
                got = sub.recv() => match got {
                    Received::Event(e) => matters(&e),
                    Received::Lagged(_) => true,
                    Received::Closed => return,
                },
            };
            if !changed {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(DEBOUNCE) => {}
            }
            self.refresh(&store, &prober).await;
        }
    }
}

/// Whether an event can change what the proxy routes to.
fn matters(e: &Event) -> bool {
    match e {
        Event::ModelResult { .. }
        | Event::RunCompleted { .. }
        | Event::TargetUpdated { .. }
        | Event::TargetDeleted { .. }
        | Event::ModelsChanged { .. } => true,
        Event::RunStarted { .. } | Event::BreakerChanged { .. } => false,
    }
}

async fn load(store: &Store, prober: &shared::probe::Prober) -> crate::store::Result<RoutingView> {
    let mut targets = store.list_targets().await?;
    targets.sort_by_key(|t| (t.sort_order, t.id));
    let mut latest = store.model_latest(None, 0).await?;
    let mut discovered = store.all_discovered_models().await?;
    let channels = targets
        .into_iter()
        .map(|t| {
            let settings = probe_settings(&t);
            let mut models: HashMap<String, Option<ProbeOutcome>> = discovered
                .remove(&t.id)
                .unwrap_or_default()
                .into_iter()
                .map(|m| (m, None))
                .collect();
            for m in latest.remove(&t.id).unwrap_or_default() {
                let r = m.result;
                models.insert(
                    m.model,
                    Some(ProbeOutcome {
                        status: r.status,
                        ttft_ms: r.ttft_ms,
                        total_ms: r.total_ms,
                        error_class: r.error_class,
                        at: r.timestamp,
                    }),
                );
            }
            let base_url = UpstreamUrl::parse(&normalise_base_url(&t.base_url)).ok();
            Channel {
                id: t.id,
                id_header: HeaderValue::from(t.id),
                name: t.name,
                enabled: t.enabled,
                fixed_urls: base_url
                    .as_ref()
                    .map(|base| Api::FIXED.map(|api| api_url(base, api, ""))),
                base_url,
                upstream_headers: Protocol::ALL.map(|p| prober.upstream_headers(&settings, p)),
                client: prober.upstream_client(&settings).map_err(|e| e.message),
                settings,
                models,
            }
        })
        .collect();
    Ok(RoutingView::build(channels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_keep_the_base_path_and_only_gemini_names_the_model() {
        let base = UpstreamUrl::parse("https://relay.example/api/?x=1").unwrap();
        assert_eq!(
            api_url(&base, Api::Chat, "m").as_str(),
            "https://relay.example/api/v1/chat/completions"
        );
        assert_eq!(
            api_url(&base, Api::Gemini { stream: true }, "gemini-2.0-flash").as_str(),
            "https://relay.example/api/v1beta/models/gemini-2.0-flash:streamGenerateContent"
        );
        // The URLs of FIXED are built once for every model: their paths must not name it.
        for (i, api) in Api::FIXED.into_iter().enumerate() {
            assert_eq!(api.fixed_slot(), Some(i));
            assert!(!api.upstream_path("MODEL-X").contains("MODEL-X"), "{api:?}");
        }
        assert_eq!(Api::Gemini { stream: false }.fixed_slot(), None);
    }
}
