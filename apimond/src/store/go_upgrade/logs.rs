//! The Go program's run logs: the paths its database stores for them, and channel keys
//! relays echoed into them. The files themselves stay where they are: the Go program
//! wrote them to `DATA_DIR/logs/`, apimon's own run-log folder.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use shared::Secret;

use super::super::{Result, StoreError};
use super::with_suffix;

/// The Go program stores a log's path as it opened it: relative to its working
/// directory (`data/logs/target_1_20261126_104054.jsonl` with `DATA_DIR=data`) or
/// absolute. apimon stores it relative to DATA_DIR (`logs/target_1_….jsonl`).
pub(super) fn normalise_log_file(stored: Option<String>) -> Option<String> {
    let stored = stored?;
    let name = stored.rsplit(['/', '\\']).next().unwrap_or_default();
    (!name.is_empty()).then(|| format!("logs/{name}"))
}

/// The forms a key takes in a text: as it is, and escaped inside a JSON string.
fn forms(key: &Secret) -> Vec<String> {
    let raw = key.expose().to_string();
    let json = serde_json::to_string(&raw).expect("a string serialises");
    let escaped = json[1..json.len() - 1].to_string();
    if escaped == raw {
        vec![raw]
    } else {
        vec![raw, escaped]
    }
}

/// Replaces every key in the `.jsonl` files of `dir` with `[redacted]`, as apimon
/// scrubs what it records; only a file that holds a key is rewritten. Returns how many
/// were. Keys shorter than 4 characters are left, as `shared::probe::scrub` leaves them
/// (they would match ordinary text).
pub(super) fn scrub_keys(dir: &Path, keys: &[Secret]) -> Result<usize> {
    let forms: Vec<String> = keys
        .iter()
        .filter(|k| k.expose().len() >= 4)
        .flat_map(forms)
        .collect();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    let mut rewritten = 0;
    for entry in entries {
        let path = entry.map_err(|e| StoreError::io(dir, e))?.path();
        if path.extension().is_none_or(|x| x != "jsonl") || !path.is_file() {
            continue;
        }
        // Bytes, not text: a file that is not all UTF-8 is scrubbed too.
        let mut bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        let mut changed = false;
        for form in &forms {
            if let Some(replaced) = replace_all(&bytes, form.as_bytes(), b"[redacted]") {
                bytes = replaced;
                changed = true;
            }
        }
        if changed {
            replace_private(&path, &bytes).map_err(|e| StoreError::io(&path, e))?;
            rewritten += 1;
        }
    }
    Ok(rewritten)
}

/// `haystack` with every `needle` replaced, or `None` when there is none.
fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    let mut found = false;
    while let Some(i) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
        found = true;
    }
    out.extend_from_slice(rest);
    found.then_some(out)
}

/// Writes `bytes` to `path` through a private temporary file and a rename.
fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = with_suffix(path, ".scrub");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    if let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) {
        // Log pruning goes oldest first: a scrubbed file keeps its age.
        f.set_modified(modified)?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_log_paths_become_relative_to_the_data_directory() {
        let n = |s: &str| normalise_log_file(Some(s.into()));
        assert_eq!(
            n("data/logs/target_1_20261126_104054.jsonl").as_deref(),
            Some("logs/target_1_20261126_104054.jsonl")
        );
        assert_eq!(
            n("/data/logs/target_2_20250101_000000.jsonl").as_deref(),
            Some("logs/target_2_20250101_000000.jsonl")
        );
        assert_eq!(
            n("target_3_x.jsonl").as_deref(),
            Some("logs/target_3_x.jsonl")
        );
        assert_eq!(n("data/logs/"), None);
        assert_eq!(normalise_log_file(None), None);
    }

    #[test]
    fn keys_are_scrubbed_from_log_files_that_hold_them_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let with = dir.path().join("target_1_20250101_000000.jsonl");
        let without = dir.path().join("target_2_20250101_000000.jsonl");
        std::fs::write(
            &with,
            "{\"error\":\"bad key sk-abc\\\"def here\"}\n{\"e\":\"sk-plain-1\"}\n",
        )
        .unwrap();
        std::fs::write(&without, b"{\"error\":null}\xff\n").unwrap();
        let old = std::fs::metadata(&with).unwrap().modified().unwrap();
        let keys = [
            Secret::new("sk-abc\"def"),
            Secret::new("sk-plain-1"),
            Secret::new("x"),
        ];
        assert_eq!(scrub_keys(dir.path(), &keys).unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(&with).unwrap(),
            "{\"error\":\"bad key [redacted] here\"}\n{\"e\":\"[redacted]\"}\n"
        );
        assert_eq!(std::fs::read(&without).unwrap(), b"{\"error\":null}\xff\n");
        let binary = dir.path().join("target_3_20250101_000000.jsonl");
        std::fs::write(&binary, b"\xfe sk-plain-1 \xff").unwrap();
        assert_eq!(
            scrub_keys(dir.path(), &keys).unwrap(),
            1,
            "only the new one"
        );
        assert_eq!(std::fs::read(&binary).unwrap(), b"\xfe [redacted] \xff");
        assert_eq!(std::fs::metadata(&with).unwrap().modified().unwrap(), old);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&with).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(scrub_keys(&dir.path().join("missing"), &keys).unwrap(), 0);
    }
}
