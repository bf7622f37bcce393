//! The control protocol's wire format, pinned: one golden file per method under
//! `rpc_golden/v{PROTOCOL_VERSION}/`, holding sample requests as apimonctl writes them
//! and, where apimonctl reads the reply field by field, a sample reply.
//!
//! A change to the wire fails here until `PROTOCOL_VERSION` is bumped and the files
//! of the new version are written (`UPDATE_GOLDEN=1` writes missing files, never
//! changes existing ones: a released version's format does not move).

use std::path::PathBuf;

use serde_json::{Value, json};
use shared::rpc::key_params::{KeyRef, KeysCreate, KeysEdit, KeysUsage};
use shared::rpc::params::{
    BackupRead, Export, Hello, Import, NoParams, RunsList, RunsLogs, TargetRef, TargetsAdd,
    TargetsEdit,
};
use shared::rpc::reply::{
    BackupChunk, BackupStarted, ExportChunk, HelloReply, ImportReply, SecretKeyLocation,
    SkippedTarget, StatusReply, Subscribed, TriggerReply,
};
use shared::rpc::{PROTOCOL_VERSION, Request};

/// Sample requests of one method, and a sample of its typed reply if it has one.
struct Sample {
    requests: Vec<Request>,
    reply: Option<Value>,
}

fn sample(requests: Vec<Request>) -> Sample {
    Sample {
        requests,
        reply: None,
    }
}

fn with_reply(requests: Vec<Request>, reply: impl serde::Serialize) -> Sample {
    Sample {
        requests,
        reply: Some(serde_json::to_value(reply).unwrap()),
    }
}

fn target(t: &str) -> TargetRef {
    TargetRef::new(t)
}

/// One entry per method, in the order of the method table.
fn samples() -> Vec<Sample> {
    vec![
        with_reply(
            vec![Request::Hello(Hello {
                version: "0.1.0".into(),
                protocol: PROTOCOL_VERSION.into(),
            })],
            HelloReply {
                version: "0.1.0".into(),
                protocol: PROTOCOL_VERSION,
                daemon: "apimond".into(),
            },
        ),
        with_reply(
            vec![Request::Status(NoParams {})],
            StatusReply {
                version: "0.1.0".into(),
                uptime_s: 12.5,
                started_at: 1_750_000_000.25,
                data_dir: "data".into(),
                http: "127.0.0.1:8080".into(),
                running_targets: vec![3],
                queued_targets: vec![4, 5],
                scheduler_lag_s: 0.0,
                dashboard: json!({"total_targets": 5, "enabled_targets": 4, "healthy": 2,
                    "degraded": 1, "down_or_error": 1, "no_models": 1}),
                // Added after v1's golden file was written, so left out of it.
                health: None,
            },
        ),
        sample(vec![Request::TargetsList(NoParams {})]),
        sample(vec![
            Request::TargetsGet(target("12")),
            Request::TargetsGet(target("name:prod")),
        ]),
        sample(vec![Request::TargetsAdd(TargetsAdd {
            fields: json!({"name": "prod", "base_url": "https://relay.example/v1",
                "api_key": "sk-sample", "enabled": false, "interval_min": 15}),
        })]),
        sample(vec![Request::TargetsEdit(TargetsEdit {
            target: "prod".into(),
            fields: json!({"enabled": true}),
        })]),
        sample(vec![Request::TargetsRemove(target("12"))]),
        sample(vec![Request::TargetsModels(target("12"))]),
        with_reply(
            vec![Request::RunsTrigger(target("12"))],
            TriggerReply::new(12, true),
        ),
        sample(vec![Request::RunsList(RunsList {
            target: "12".into(),
            limit: Some(20),
        })]),
        sample(vec![
            Request::RunsLogs(RunsLogs {
                target: "12".into(),
                run_id: None,
                limit: None,
            }),
            Request::RunsLogs(RunsLogs {
                target: "12".into(),
                run_id: Some(7),
                limit: Some(100),
            }),
        ]),
        with_reply(
            vec![Request::EventsSubscribe(NoParams {})],
            Subscribed { subscribed: true },
        ),
        sample(vec![Request::Credentials(NoParams {})]),
        with_reply(
            vec![Request::Export(Export {
                with_secrets: true,
                offset: 100,
            })],
            ExportChunk {
                items: vec![json!({"name": "prod", "base_url": "https://relay.example/v1"})],
                next_offset: Some(101),
                total: 150,
            },
        ),
        with_reply(
            vec![Request::Import(Import {
                items: vec![
                    json!({"name": "prod", "base_url": "https://relay.example/v1", "api_key": "sk-sample"}),
                ],
            })],
            ImportReply {
                created: 1,
                ids: vec![12],
                skipped: vec![SkippedTarget {
                    name: "old".into(),
                    reason: "no api_key: export with --with-secrets to move keys".into(),
                }],
            },
        ),
        sample(vec![Request::KeysList(NoParams {})]),
        sample(vec![
            Request::KeysGet(KeyRef::new("3")),
            Request::KeysGet(KeyRef::new("name:ci")),
        ]),
        sample(vec![Request::KeysCreate(KeysCreate {
            fields: json!({"name": "ci", "allowed_models": ["prod/gpt-4o"], "rpm_limit": 60}),
        })]),
        sample(vec![Request::KeysEdit(KeysEdit {
            key: "3".into(),
            fields: json!({"enabled": false, "daily_token_budget": null}),
        })]),
        sample(vec![Request::KeysRevoke(KeyRef::new("3"))]),
        sample(vec![
            Request::KeysUsage(KeysUsage::default()),
            Request::KeysUsage(KeysUsage {
                key: Some("master".into()),
                target: Some("prod".into()),
                model: Some("gpt-4o".into()),
                since: Some(1_750_000_000.0),
                until: Some(1_750_086_400.0),
                group_by: Some("key,day".into()),
            }),
        ]),
        sample(vec![Request::ProxyBreakers(NoParams {})]),
        with_reply(
            vec![Request::BackupStart(NoParams {})],
            BackupStarted {
                backup_id: "3f9a0c1d2e4b5a69".into(),
                size: 1_048_576,
                sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                schema_version: 5,
                taken_at: 1_750_000_000.5,
                secret_key: SecretKeyLocation::File {
                    path: "/var/lib/apimon/secret.key".into(),
                },
            },
        ),
        with_reply(
            vec![Request::BackupRead(BackupRead {
                backup_id: "3f9a0c1d2e4b5a69".into(),
                offset: 524_288,
            })],
            BackupChunk {
                offset: 524_288,
                data: "U1FMaXRlIGZvcm1hdCAzAA==".into(),
                next_offset: None,
            },
        ),
    ]
}

/// The golden file of a method, relative to the `shared` crate.
fn golden_file(method: &str) -> String {
    format!("tests/rpc_golden/v{PROTOCOL_VERSION}/{method}.json")
}

#[test]
fn every_method_has_samples() {
    let covered: Vec<&str> = samples()
        .iter()
        .map(|s| {
            let m = s.requests[0].method();
            assert!(
                s.requests.iter().all(|r| r.method() == m),
                "one method per sample"
            );
            m
        })
        .collect();
    assert_eq!(
        covered,
        Request::METHODS,
        "give every method in the table a sample here (and a golden file)"
    );
}

#[test]
fn the_wire_format_matches_the_golden_files_of_this_protocol_version() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for s in samples() {
        let method = s.requests[0].method();
        let lines: Vec<Value> = s
            .requests
            .iter()
            .enumerate()
            .map(|(i, r)| serde_json::from_str(&r.to_line(i as u64 + 1)).unwrap())
            .collect();
        let mut actual = json!({
            "protocol": PROTOCOL_VERSION,
            "method": method,
            "requests": lines,
        });
        if let Some(reply) = &s.reply {
            actual["reply"] = reply.clone();
        }
        let file = golden_file(method);
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(&file);
        let expected: Option<Value> = std::fs::read_to_string(&path)
            .ok()
            .map(|t| serde_json::from_str(&t).unwrap());
        match expected {
            Some(e) if e == actual => {}
            None if update => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
                std::fs::write(&path, text).unwrap();
            }
            found => failures.push(format!(
                "`{method}`: the wire format no longer matches shared/{}.\n\
                 A client and a daemon of different builds would misread each other. \
                 Bump PROTOCOL_VERSION in shared/src/rpc/mod.rs (now {PROTOCOL_VERSION}), then \
                 write the new version's golden files with \
                 `UPDATE_GOLDEN=1 cargo test -p shared --test rpc_golden` \
                 (files of a released version are never rewritten).\n\
                 golden: {}\n\
                 now:    {actual}",
                file,
                found.map_or("(no file)".into(), |f| f.to_string()),
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_sample_reads_back_as_the_request_it_was() {
    for s in samples() {
        for r in s.requests {
            let line: Value = serde_json::from_str(&r.to_line(1)).unwrap();
            let method = line["method"].as_str().unwrap();
            let back = Request::parse(method, line.get("params").cloned());
            assert_eq!(back.as_ref(), Ok(&r), "{line}");
        }
    }
}

#[test]
fn every_sample_reply_reads_back_as_its_type() {
    fn same<R: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) {
        let typed: R = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(&serde_json::to_value(typed).unwrap(), v);
    }
    for s in samples() {
        let Some(reply) = &s.reply else { continue };
        match s.requests[0] {
            Request::Hello(_) => same::<HelloReply>(reply),
            Request::Status(_) => same::<StatusReply>(reply),
            Request::RunsTrigger(_) => same::<TriggerReply>(reply),
            Request::EventsSubscribe(_) => same::<Subscribed>(reply),
            Request::Export(_) => same::<ExportChunk>(reply),
            Request::Import(_) => same::<ImportReply>(reply),
            Request::BackupStart(_) => same::<BackupStarted>(reply),
            Request::BackupRead(_) => same::<BackupChunk>(reply),
            ref other => panic!("no reply type for {}", other.method()),
        }
    }
}

#[test]
fn notifications_match_their_golden_file() {
    use shared::rpc::Notification;
    let lines: Vec<Value> = [
        Notification::Event(json!({"type": "run_started", "target_id": 12, "run_id": 7,
            "target_name": "prod", "trigger": "manual", "ts": 1_750_000_000.5})),
        Notification::Lagged { missed: 42 },
    ]
    .iter()
    .map(|n| serde_json::from_str(&n.to_message().to_line()).unwrap())
    .collect();
    let actual = json!({"protocol": PROTOCOL_VERSION, "notifications": lines});
    let file = golden_file("notifications");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(&file);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let expected: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                expected, actual,
                "notifications no longer match shared/{file}: bump PROTOCOL_VERSION and write \
                 the new version's golden files (UPDATE_GOLDEN=1)"
            );
        }
        Err(_) if std::env::var_os("UPDATE_GOLDEN").is_some() => {
            std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        }
        Err(e) => panic!("no golden file shared/{file} ({e}); write it with UPDATE_GOLDEN=1"),
    }
}
