//! The daemon's modules form layers: no module imports, directly or through others, a
//! module that imports it back. Read from the sources, so a new `use` that closes a
//! loop fails here with the loop spelled out. `lib.rs` wires everything and is left
//! out; a module's use of its own parent (`super::Core`) is how Rust nests modules,
//! not a loop, and is left out too, as are unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`service::targets`) → source text, for every file under `src/`.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests may reach anywhere.
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            out.insert(parts.join("::"), text);
        }
    }
    out
}

/// The longest module named by a path such as `crate::store::probe_runs::RunFinish`.
fn resolve(path: &[&str], names: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| names.contains(m))
}

/// Paths this source names from `crate::`, `super::` or `self::`, with `{a, b}`
/// groups expanded one level.
fn referenced_paths(module: &str, text: &str) -> Vec<Vec<String>> {
    let own: Vec<&str> = module.split("::").collect();
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let rest = &text[at..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let mut segs: Vec<&str> = rest[..end].split("::").filter(|s| !s.is_empty()).collect();
            let mut base: Vec<String> = Vec::new();
            if segs.first() == Some(&"crate") {
                segs.remove(0);
            } else if segs.first() == Some(&"self") {
                segs.remove(0);
                base = own.iter().map(|s| s.to_string()).collect();
            } else {
                base = own.iter().map(|s| s.to_string()).collect();
                while segs.first() == Some(&"super") {
                    segs.remove(0);
                    base.pop();
                }
            }
            let path: Vec<String> = base
                .into_iter()
                .chain(segs.iter().map(|s| s.to_string()))
                .collect();
            if rest[end..].starts_with('{') {
                let group = &rest[end + 1..rest[end..].find('}').map_or(end + 1, |j| end + j)];
                for item in group.split(',') {
                    let name = item.split_whitespace().next().unwrap_or("");
                    let name = name.split("::").next().unwrap_or("");
                    if !name.is_empty() && name != "self" {
                        let mut p = path.clone();
                        p.push(name.to_string());
                        out.push(p);
                    }
                }
            }
            out.push(path);
        }
    }
    out
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let names: BTreeSet<String> = mods.keys().cloned().collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in &mods {
        let targets = edges.entry(m.clone()).or_default();
        for path in referenced_paths(m, text) {
            let segs: Vec<&str> = path.iter().map(String::as_str).collect();
            let Some(to) = resolve(&segs, &names) else {
                continue;
            };
            let is_ancestor = m.starts_with(&format!("{to}::"));
            if to != *m && !is_ancestor {
                targets.insert(to);
            }
        }
    }
    assert!(
        edges["scheduler"].contains("store") && edges["runner"].contains("scheduler"),
        "the reader sees the imports: {edges:?}"
    );

    // A loop is a path from a module back to itself.
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((m, trail)) = stack.pop() {
            for next in &edges[&m] {
                if next == start {
                    panic!("import loop: {} -> {start}", trail.join(" -> "));
                }
                if seen.insert(next.clone()) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
}

#[test]
fn the_scheduler_and_the_runner_know_nothing_of_the_service_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    for low in ["scheduler", "runner", "maintenance", "store", "events"] {
        for (m, text) in mods
            .iter()
            .filter(|(m, _)| *m == low || m.starts_with(&format!("{low}::")))
        {
            for upper in ["crate::service", "crate::http", "crate::rpc"] {
                assert!(!text.contains(upper), "{m} names {upper}");
            }
        }
    }
}
