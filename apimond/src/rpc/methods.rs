//! Request handling: read a line into a [`Request`] once, then one arm per method
//! (matched exhaustively) that takes the typed params, calls the service, shapes the
//! result. Errors carry JSON-RPC codes.

use serde::Serialize;
use serde_json::Value;
use shared::rpc::params::Hello;
use shared::rpc::reply::{HelloReply, Subscribed, TriggerReply};
use shared::rpc::{CHUNK, Message, PROTOCOL_VERSION, Request, code};

use crate::proxy::Proxy;
use crate::service::proxy_usage::UsageQuery;
use crate::service::query::{HistoryFormat, ListTargetsQuery, LogsQuery, RunsQuery};
use crate::service::{Caller, Core, ServiceError};

type MethodResult = Result<Value, (i64, String)>;

fn from_service(e: ServiceError) -> (i64, String) {
    let c = match &e {
        ServiceError::BadRequest(_) | ServiceError::UnsupportedMediaType(_) => code::INVALID_PARAMS,
        ServiceError::Unavailable(_) => code::UNAVAILABLE,
        ServiceError::NotFound(_) => code::NOT_FOUND,
        ServiceError::Conflict(_) => code::CONFLICT,
        ServiceError::Forbidden(_) | ServiceError::Unauthorized(_) => code::FORBIDDEN,
        ServiceError::TooManyRequests { .. } => code::TOO_MANY,
        ServiceError::Internal(_) => code::INTERNAL,
    };
    (c, e.to_string())
}

fn bad(msg: impl Into<String>) -> (i64, String) {
    (code::INVALID_PARAMS, msg.into())
}

/// A typed reply as the JSON of a result.
fn reply(r: impl Serialize) -> MethodResult {
    Ok(serde_json::to_value(r).expect("replies serialise"))
}

/// Handles one request line; the flag asks the connection to start streaming events.
pub async fn handle(core: &Core, proxy: &Proxy, caller: &Caller, text: &str) -> (Message, bool) {
    let mut value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return (
                Message::error(Value::Null, code::PARSE_ERROR, format!("parse error: {e}")),
                false,
            );
        }
    };
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let valid_id = matches!(id, Value::Number(_) | Value::String(_));
    let method = value.get("method").and_then(Value::as_str);
    let (Some(method), true, Some("2.0")) = (
        method,
        valid_id,
        value.get("jsonrpc").and_then(Value::as_str),
    ) else {
        return (
            Message::error(
                id,
                code::INVALID_REQUEST,
                "invalid request: expected {\"jsonrpc\": \"2.0\", \"id\": <number or string>, \"method\": <string>, \"params\": {...}}",
            ),
            false,
        );
    };
    let method = method.to_string();
    let params = value.get_mut("params").map(Value::take);
    let request = match Request::parse(&method, params) {
        Ok(r) => r,
        Err(e) => return (Message::error(id, e.code(), e.to_string()), false),
    };
    let subscribe = matches!(request, Request::EventsSubscribe(_));
    let msg = match dispatch(core, proxy, caller, request).await {
        Ok(v) => Message::result(id, v),
        Err((c, m)) => Message::error(id, c, m),
    };
    let ok = msg.error.is_none();
    (msg, subscribe && ok)
}

/// The id of the target the user named (an id, or `name:x` / a name).
async fn target_id(core: &Core, ident: &str) -> Result<i64, (i64, String)> {
    core.resolve_target(ident).await.map_err(from_service)
}

/// The id of the proxy key the user named (an id, or `name:x` / a name).
async fn key_id(core: &Core, ident: &str) -> Result<i64, (i64, String)> {
    core.resolve_proxy_key(ident).await.map_err(from_service)
}

async fn dispatch(core: &Core, proxy: &Proxy, caller: &Caller, request: Request) -> MethodResult {
    match request {
        Request::Hello(h) => hello(h),
        Request::Status(_) => reply(core.status(caller).await.map_err(from_service)?),
        Request::TargetsList(_) => {
            let query = ListTargetsQuery::new(Some(0), Some(HistoryFormat::Compact));
            let raw = core
                .list_targets(caller, query)
                .await
                .map_err(from_service)?;
            serde_json::from_str(raw.get()).map_err(|e| (code::INTERNAL, e.to_string()))
        }
        Request::TargetsGet(t) => {
            let id = target_id(core, &t.target).await?;
            core.get_target(caller, id).await.map_err(from_service)
        }
        Request::TargetsAdd(p) => {
            let raw = serde_json::to_vec(&p.fields).expect("JSON values serialise");
            core.create_target(caller, &raw).await.map_err(from_service)
        }
        Request::TargetsEdit(p) => {
            let id = target_id(core, &p.target).await?;
            let raw = serde_json::to_vec(&p.fields).expect("JSON values serialise");
            core.update_target(caller, id, &raw)
                .await
                .map_err(from_service)
        }
        Request::TargetsRemove(t) => {
            let id = target_id(core, &t.target).await?;
            core.delete_target(caller, id).await.map_err(from_service)
        }
        Request::TargetsModels(t) => {
            let id = target_id(core, &t.target).await?;
            core.target_models(caller, id).await.map_err(from_service)
        }
        Request::RunsTrigger(t) => {
            let id = target_id(core, &t.target).await?;
            core.trigger_run(caller, id).await.map_err(from_service)?;
            // Manual runs never queue; `queued` stays in the reply for older clients.
            reply(TriggerReply::new(id, false))
        }
        Request::RunsList(p) => {
            let id = target_id(core, &p.target).await?;
            core.list_runs(caller, id, RunsQuery::new(p.limit))
                .await
                .map_err(from_service)
        }
        Request::RunsLogs(p) => {
            let id = target_id(core, &p.target).await?;
            core.run_logs(caller, id, LogsQuery::of_run(p.run_id, p.limit))
                .await
                .map_err(from_service)
        }
        Request::EventsSubscribe(_) => reply(Subscribed { subscribed: true }),
        Request::Credentials(_) => core.credentials(caller).map_err(from_service),
        Request::Export(p) => reply(
            core.export_targets(caller, p.with_secrets, p.offset as usize, CHUNK)
                .await
                .map_err(from_service)?,
        ),
        Request::Import(p) => {
            if p.items.len() > CHUNK {
                return Err(bad(format!("items: at most {CHUNK} per call")));
            }
            reply(
                core.import_targets(caller, &p.items)
                    .await
                    .map_err(from_service)?,
            )
        }
        Request::KeysList(_) => core.list_proxy_keys(caller).await.map_err(from_service),
        Request::KeysGet(k) => {
            let id = key_id(core, &k.key).await?;
            core.get_proxy_key(caller, id).await.map_err(from_service)
        }
        Request::KeysCreate(p) => {
            let raw = serde_json::to_vec(&p.fields).expect("JSON values serialise");
            core.create_proxy_key(caller, &raw)
                .await
                .map_err(from_service)
        }
        Request::KeysEdit(p) => {
            let id = key_id(core, &p.key).await?;
            let raw = serde_json::to_vec(&p.fields).expect("JSON values serialise");
            core.update_proxy_key(caller, id, &raw)
                .await
                .map_err(from_service)
        }
        Request::KeysRevoke(k) => {
            let id = key_id(core, &k.key).await?;
            core.revoke_proxy_key(caller, id)
                .await
                .map_err(from_service)
        }
        Request::KeysUsage(p) => {
            let key_id = match p.key.as_deref() {
                None => None,
                Some("master") => Some(None),
                Some(k) => Some(Some(key_id(core, k).await?)),
            };
            let target_id = match p.target.as_deref() {
                None => None,
                Some(t) => Some(target_id(core, t).await?),
            };
            let query = UsageQuery {
                key_id,
                target_id,
                model: p.model,
                since: p.since,
                until: p.until,
                group_by: p.group_by,
            };
            core.proxy_usage(caller, query).await.map_err(from_service)
        }
        Request::ProxyBreakers(_) => {
            caller.require_reader().map_err(from_service)?;
            reply(serde_json::json!({ "items": proxy.breakers() }))
        }
        Request::BackupStart(_) => reply(core.backup_start(caller).await.map_err(from_service)?),
        Request::BackupRead(p) => reply(
            core.backup_read(caller, &p.backup_id, p.offset)
                .await
                .map_err(from_service)?,
        ),
    }
}

/// Answers with the daemon's version, or refuses a client of another protocol with a
/// message that says what to do.
fn hello(h: Hello) -> MethodResult {
    if h.protocol != u64::from(PROTOCOL_VERSION) {
        return Err((
            code::VERSION_MISMATCH,
            format!(
                "apimonctl {} speaks control protocol {}, apimond {} speaks {PROTOCOL_VERSION}; use the apimonctl that came with this apimond",
                h.version,
                h.protocol,
                shared::VERSION
            ),
        ));
    }
    reply(HelloReply {
        version: shared::VERSION.into(),
        protocol: PROTOCOL_VERSION,
        daemon: "apimond".into(),
    })
}
