//! A check on the test suite itself: the end-to-end tests live in the
//! repository's top-level `tests/` folder, outside every package, so cargo
//! cannot discover them; each is registered as a `[[test]]` of one crate.
//! This fails when a `tests/*.rs` is registered nowhere (it would silently
//! never run) or twice, or when a registration names a missing file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[test]
fn every_end_to_end_test_is_registered_once() {
    let host = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tests = host.join("../tests");
    let mut registered: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&host).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let doc: toml::Table = text.parse().unwrap();
        let package = doc["package"]["name"].as_str().unwrap().to_string();
        for t in doc
            .get("test")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
        {
            let Some(path) = t.get("path").and_then(|p| p.as_str()) else {
                continue;
            };
            let file = manifest.parent().unwrap().join(path);
            assert!(file.is_file(), "{package} registers a missing test {path}");
            registered
                .entry(file.canonicalize().unwrap())
                .or_default()
                .push(package.clone());
        }
    }
    let mut files = 0;
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            files += 1;
            let crates = registered
                .get(&path.canonicalize().unwrap())
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                crates.len(),
                1,
                "{} must be a [[test]] of exactly one crate under host/ (is in: {crates:?})",
                path.display()
            );
        }
    }
    assert!(files >= 10, "found only {files} end-to-end tests");
}
