//! Every request of the control protocol: one enum, tagged on the wire by its method
//! name (`{"method": "targets.get", "params": {"target": "12"}}`), with one params
//! struct per method. The method names exist only in the table below; apimonctl
//! builds requests from this enum and apimond matches on it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::code;
use super::key_params::{KeyRef, KeysCreate, KeysEdit, KeysUsage};
use super::params::{
    BackupRead, Export, Hello, Import, NoParams, RunsList, RunsLogs, TargetRef, TargetsAdd,
    TargetsEdit,
};

/// Declares the methods: each line is a method's name on the wire, its variant and
/// its params. Besides the enum it gives the list of names, which tells an unknown
/// method (serde cannot say which) from a known one with bad params.
macro_rules! methods {
    ($($(#[$doc:meta])* $name:literal => $variant:ident($params:ty),)+) => {
        /// A call to apimond. Replies are JSON; the ones apimonctl reads field by field
        /// are typed in [`super::reply`].
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "method", content = "params")]
        pub enum Request {
            $($(#[$doc])* #[serde(rename = $name)] $variant($params),)+
        }

        impl Request {
            /// Every method apimond answers, by its name on the wire.
            pub const METHODS: &'static [&'static str] = &[$($name),+];

            /// This request's method name on the wire.
            pub fn method(&self) -> &'static str {
                match self {
                    $(Request::$variant(_) => $name,)+
                }
            }
        }
    };
}

methods! {
    /// Exchanges versions; refused with `VERSION_MISMATCH` when the protocols differ.
    /// Replies [`super::reply::HelloReply`].
    "hello" => Hello(Hello),
    /// Version, uptime, dashboard counts, runs in flight. Replies
    /// [`super::reply::StatusReply`].
    "status" => Status(NoParams),
    /// Every target with its latest model results, as `GET /api/targets?history=0`.
    "targets.list" => TargetsList(NoParams),
    /// One target, as `GET /api/targets/{id}`.
    "targets.get" => TargetsGet(TargetRef),
    "targets.add" => TargetsAdd(TargetsAdd),
    "targets.edit" => TargetsEdit(TargetsEdit),
    "targets.remove" => TargetsRemove(TargetRef),
    /// The target's models and which of them a run probes.
    "targets.models" => TargetsModels(TargetRef),
    /// Starts or queues a run. Replies [`super::reply::TriggerReply`].
    "runs.trigger" => RunsTrigger(TargetRef),
    "runs.list" => RunsList(RunsList),
    "runs.logs" => RunsLogs(RunsLogs),
    /// Answers [`super::reply::Subscribed`], then streams `event` notifications on
    /// this connection until the client leaves.
    "events.subscribe" => EventsSubscribe(NoParams),
    /// The admin token and panel password in force.
    "credentials" => Credentials(NoParams),
    /// Replies [`super::reply::ExportChunk`].
    "export" => Export(Export),
    /// Replies [`super::reply::ImportReply`].
    "import" => Import(Import),
    /// Every proxy key, as `GET /api/proxy/keys`.
    "keys.list" => KeysList(NoParams),
    /// One proxy key, as `GET /api/proxy/keys/{id}`.
    "keys.get" => KeysGet(KeyRef),
    /// Creates a proxy key; the reply's `proxy_key` is the secret, shown this once.
    "keys.create" => KeysCreate(KeysCreate),
    "keys.edit" => KeysEdit(KeysEdit),
    "keys.revoke" => KeysRevoke(KeyRef),
    /// Proxy usage, as `GET /api/proxy/usage`.
    "keys.usage" => KeysUsage(KeysUsage),
    /// The proxy's circuit breakers that are not closed and clean, as
    /// `GET /api/proxy/breakers`.
    "proxy.breakers" => ProxyBreakers(NoParams),
    /// Takes a consistent snapshot of the database, held until read. Replies
    /// [`super::reply::BackupStarted`].
    "backup.start" => BackupStart(NoParams),
    /// One chunk of a snapshot. Replies [`super::reply::BackupChunk`].
    "backup.read" => BackupRead(BackupRead),
}

/// Why a well-formed JSON-RPC call names no request apimond can run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("no method `{0}`")]
    UnknownMethod(String),
    /// The message names the field.
    #[error("{0}")]
    InvalidParams(String),
}

impl CallError {
    /// The JSON-RPC error code it is answered with.
    pub fn code(&self) -> i64 {
        match self {
            CallError::UnknownMethod(_) => code::METHOD_NOT_FOUND,
            CallError::InvalidParams(_) => code::INVALID_PARAMS,
        }
    }
}

/// What a request line carries besides the request: the protocol tag and the id the
/// reply will echo.
#[derive(Serialize)]
struct Envelope<'a> {
    jsonrpc: &'static str,
    id: u64,
    #[serde(flatten)]
    request: &'a Request,
}

impl Request {
    /// Reads a call's method and params (missing or `null` params are `{}`).
    pub fn parse(method: &str, params: Option<Value>) -> Result<Request, CallError> {
        let params = match params {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(p @ Value::Object(_)) => p,
            Some(_) => {
                return Err(CallError::InvalidParams("params must be an object".into()));
            }
        };
        if !Request::METHODS.contains(&method) {
            return Err(CallError::UnknownMethod(method.to_string()));
        }
        let call = Value::Object(Map::from_iter([
            ("method".to_string(), Value::String(method.to_string())),
            ("params".to_string(), params),
        ]));
        // Errors raised by the params readers carry no position (they come from a
        // value, not text), so the message is exactly theirs.
        serde_json::from_value(call).map_err(|e| CallError::InvalidParams(e.to_string()))
    }

    /// The request as one line of the wire: `{"jsonrpc": "2.0", "id": …, "method": …,
    /// "params": {…}}` and a newline.
    pub fn to_line(&self, id: u64) -> String {
        let mut line = serde_json::to_string(&Envelope {
            jsonrpc: "2.0",
            id,
            request: self,
        })
        .expect("requests serialise");
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(method: &str, params: Value) -> Result<Request, CallError> {
        Request::parse(method, Some(params))
    }

    fn invalid(method: &str, params: Value) -> String {
        match parse(method, params) {
            Err(CallError::InvalidParams(m)) => m,
            other => panic!("{method}: {other:?}"),
        }
    }

    #[test]
    fn missing_or_null_params_are_an_empty_object() {
        assert_eq!(
            Request::parse("status", None),
            Ok(Request::Status(NoParams {}))
        );
        assert_eq!(
            Request::parse("credentials", Some(Value::Null)),
            Ok(Request::Credentials(NoParams {}))
        );
        assert_eq!(
            parse("status", json!({"ignored": 1})),
            Ok(Request::Status(NoParams {}))
        );
    }

    #[test]
    fn params_that_are_not_an_object_are_refused_before_the_method_is_looked_up() {
        for method in ["targets.get", "no.such"] {
            let e = parse(method, json!([1])).unwrap_err();
            assert_eq!(
                e,
                CallError::InvalidParams("params must be an object".into())
            );
            assert_eq!(e.code(), code::INVALID_PARAMS);
        }
    }

    #[test]
    fn an_unknown_method_is_named() {
        let e = parse("no.such", json!({})).unwrap_err();
        assert_eq!(e.to_string(), "no method `no.such`");
        assert_eq!(e.code(), code::METHOD_NOT_FOUND);
    }

    #[test]
    fn a_param_of_the_wrong_type_is_named_with_what_it_must_be() {
        assert_eq!(
            invalid("targets.get", json!({})),
            "target: required, a string"
        );
        assert_eq!(
            invalid("runs.trigger", json!({"target": 12})),
            "target: required, a string"
        );
        assert_eq!(
            invalid("runs.list", json!({"target": "1", "limit": "5"})),
            "limit: must be an integer"
        );
        assert_eq!(
            invalid(
                "runs.logs",
                json!({"target": "1", "run_id": 1.5, "limit": "x"})
            ),
            "run_id: must be an integer",
            "fields are read in order"
        );
        assert_eq!(
            invalid("export", json!({"offset": "x"})),
            "offset: must be an integer"
        );
        assert_eq!(
            invalid("import", json!({"items": {}})),
            "items: required, a list of targets"
        );
    }

    #[test]
    fn lenient_fields_stay_lenient() {
        assert_eq!(
            parse("hello", json!({"protocol": "one"})),
            Ok(Request::Hello(super::super::params::Hello {
                version: "unknown".into(),
                protocol: 0,
            }))
        );
        assert_eq!(
            parse("export", json!({"with_secrets": "yes", "offset": -5})),
            Ok(Request::Export(Export {
                with_secrets: false,
                offset: 0,
            }))
        );
        assert_eq!(
            parse("targets.add", json!({})),
            Ok(Request::TargetsAdd(TargetsAdd {
                fields: Value::Null
            }))
        );
    }

    #[test]
    fn every_method_name_maps_to_its_variant_and_back() {
        for method in Request::METHODS {
            let params = json!({"target": "1", "items": [], "key": "1", "backup_id": "0a1b"});
            let r = parse(method, params).unwrap();
            assert_eq!(r.method(), *method);
        }
    }
}
