//! One function per method family: parse the params, call the service, shape the
//! result. Errors carry JSON-RPC codes.

use serde_json::{Value, json};
use shared::rpc::{CHUNK, Message, PROTOCOL_VERSION, code};

use crate::service::query::{ListTargetsQuery, LogsQuery, RunsQuery};
use crate::service::{Caller, Core, ServiceError};

type MethodResult = Result<Value, (i64, String)>;

fn from_service(e: ServiceError) -> (i64, String) {
    let c = match &e {
        ServiceError::BadRequest(_) => code::INVALID_PARAMS,
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

/// Handles one request line; the flag asks the connection to start streaming events.
pub async fn handle(core: &Core, caller: &Caller, text: &str) -> (Message, bool) {
    let value: Value = match serde_json::from_str(text) {
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
    let params = match value.get("params") {
        None | Some(Value::Null) => json!({}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => {
            return (
                Message::error(id, code::INVALID_PARAMS, "params must be an object"),
                false,
            );
        }
    };
    let subscribe = method == "events.subscribe";
    let result = dispatch(core, caller, method, params).await;
    let msg = match result {
        Ok(v) => Message::result(id, v),
        Err((c, m)) => Message::error(id, c, m),
    };
    let ok = msg.error.is_none();
    (msg, subscribe && ok)
}

fn str_param<'a>(params: &'a Value, name: &str) -> Result<&'a str, (i64, String)> {
    params
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{name}: required, a string")))
}

fn opt_int(params: &Value, name: &str) -> Result<Option<i64>, (i64, String)> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad(format!("{name}: must be an integer"))),
    }
}

async fn target_id(core: &Core, params: &Value) -> Result<i64, (i64, String)> {
    let ident = str_param(params, "target")?;
    core.resolve_target(ident).await.map_err(from_service)
}

async fn dispatch(core: &Core, caller: &Caller, method: &str, params: Value) -> MethodResult {
    match method {
        "hello" => {
            let theirs = params.get("protocol").and_then(Value::as_u64).unwrap_or(0);
            if theirs != PROTOCOL_VERSION as u64 {
                let version = params
                    .get("version")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                return Err((
                    code::VERSION_MISMATCH,
                    format!(
                        "apimonctl {version} speaks control protocol {theirs}, apimond {} speaks {PROTOCOL_VERSION}; use the apimonctl that came with this apimond",
                        shared::VERSION
                    ),
                ));
            }
            Ok(
                json!({"version": shared::VERSION, "protocol": PROTOCOL_VERSION, "daemon": "apimond"}),
            )
        }
        "status" => Ok(core.status(caller).await.map_err(from_service)?),
        "targets.list" => {
            let raw = core
                .list_targets(caller, ListTargetsQuery::new(Some(0), None))
                .await
                .map_err(from_service)?;
            serde_json::from_str(raw.get()).map_err(|e| (code::INTERNAL, e.to_string()))
        }
        "targets.get" => {
            let id = target_id(core, &params).await?;
            core.get_target(caller, id).await.map_err(from_service)
        }
        "targets.add" => {
            let fields = params.get("fields").cloned().unwrap_or(Value::Null);
            let raw = serde_json::to_vec(&fields).expect("JSON values serialise");
            core.create_target(caller, &raw).await.map_err(from_service)
        }
        "targets.edit" => {
            let id = target_id(core, &params).await?;
            let fields = params.get("fields").cloned().unwrap_or(Value::Null);
            let raw = serde_json::to_vec(&fields).expect("JSON values serialise");
            core.update_target(caller, id, &raw)
                .await
                .map_err(from_service)
        }
        "targets.remove" => {
            let id = target_id(core, &params).await?;
            core.delete_target(caller, id).await.map_err(from_service)
        }
        "targets.models" => {
            let id = target_id(core, &params).await?;
            core.target_models(caller, id).await.map_err(from_service)
        }
        "runs.trigger" => {
            let id = target_id(core, &params).await?;
            let outcome = core.trigger_run(caller, id).await.map_err(from_service)?;
            let queued = outcome == crate::scheduler::TriggerOutcome::Queued;
            Ok(json!({"ok": true, "target_id": id, "queued": queued,
                      "message": if queued { "run queued behind the parallel limit" } else { "run started" }}))
        }
        "runs.list" => {
            let id = target_id(core, &params).await?;
            let limit = opt_int(&params, "limit")?;
            core.list_runs(caller, id, RunsQuery::new(limit))
                .await
                .map_err(from_service)
        }
        "runs.logs" => {
            let id = target_id(core, &params).await?;
            let run = opt_int(&params, "run_id")?;
            let limit = opt_int(&params, "limit")?;
            core.run_logs(caller, id, LogsQuery::of_run(run, limit))
                .await
                .map_err(from_service)
        }
        "events.subscribe" => Ok(json!({"subscribed": true})),
        "credentials" => Ok(core.credentials(caller).map_err(from_service)?),
        "export" => {
            let with_secrets = params
                .get("with_secrets")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let offset = opt_int(&params, "offset")?.unwrap_or(0).max(0) as usize;
            core.export_targets(caller, with_secrets, offset, CHUNK)
                .await
                .map_err(from_service)
        }
        "import" => {
            let items = params
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("items: required, a list of targets"))?;
            if items.len() > CHUNK {
                return Err(bad(format!("items: at most {CHUNK} per call")));
            }
            core.import_targets(caller, items)
                .await
                .map_err(from_service)
        }
        other => Err((code::METHOD_NOT_FOUND, format!("no method `{other}`"))),
    }
}
