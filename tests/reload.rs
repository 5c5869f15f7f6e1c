//! Hot reload under load: while calls run continuously, a pipeline is edited
//! 50 times (good and broken edits mixed, written in place, by
//! write-then-rename as editors do, and by a Kubernetes-style ConfigMap
//! symlink swap). No call fails, every good edit takes effect, every broken
//! one is refused and reported, and no unchanged plugin is recompiled.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use voxpipe::pipeline::{watch, PipelineRegistry, RegistryOptions};
use voxpipe_types::RequestContext;

fn good(marker: &str) -> String {
    format!(
        "voice = \"v\"\n[[stages]]\nkind = \"text\"\nplugin = \"text-replace\"\nconfig = {{ replace = {{ \"X\" = \"{marker}\" }} }}\n[[stages]]\nkind = \"model\"\n[[stages]]\nkind = \"audio\"\nplugin = \"audio-gain\"\n"
    )
}

/// Five ways to break a pipeline, each caught at a different layer.
fn broken(i: usize) -> String {
    match i % 5 {
        0 => "voice = \"v\"\n[[stages]\nkind = \"text\"\n".to_string(),
        1 => good("x").replace("text-replace", "no-such-plugin"),
        2 => good("x").replace("{ \"X\" = \"x\" }", "5"),
        3 => good("x").replace("plugin = \"text-replace\"", "plugin = \"audio-gain\""),
        _ => good("x").replace("kind = \"model\"", "kind = \"modle\""),
    }
}

enum How {
    InPlace,
    Rename,
    ConfigMap,
}

fn write(dir: &Path, file: &str, text: &str, how: &How, generation: usize) {
    match how {
        How::InPlace => std::fs::write(dir.join(file), text).unwrap(),
        How::Rename => {
            let tmp = dir.join(format!(".{file}.swp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, dir.join(file)).unwrap();
        }
        How::ConfigMap => {
            // kubelet's dance: a new timestamped folder, a `..data_tmp`
            // symlink to it, renamed over `..data`; files link into `..data`.
            let data = dir.join(format!("..2026_11_21_{generation:04}"));
            std::fs::create_dir(&data).unwrap();
            std::fs::write(data.join(file), text).unwrap();
            let tmp = dir.join("..data_tmp");
            std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
            std::fs::rename(&tmp, dir.join("..data")).unwrap();
            let link = dir.join(file);
            if !link.is_symlink() {
                std::os::unix::fs::symlink(Path::new("..data").join(file), &link).unwrap();
            }
        }
    }
}

fn call(registry: &PipelineRegistry, name: &str) -> Result<String, String> {
    let p = registry
        .get(name)
        .ok_or_else(|| format!("pipeline {name} missing"))?;
    let ctx = RequestContext {
        pipeline: name.to_string(),
        ..RequestContext::default()
    };
    p.run_text(&ctx, "X".to_string()).map_err(|e| e.to_string())
}

/// Wait until the registry has processed `text` for `file`.
fn settle(registry: &PipelineRegistry, file: &Path, text: &str) -> Option<String> {
    let started = Instant::now();
    loop {
        let want = registry.fingerprint(file, text);
        if let Some((seen, error)) = registry.file_status(file) {
            if seen == want {
                return error.map(|e| e.message);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "reload of {} not seen",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn fifty_mixed_edits_under_load_lose_no_call() {
    let tmp = tempfile::tempdir().unwrap();
    let pipelines = tmp.path().join("pipelines");
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&pipelines).unwrap();
    std::fs::create_dir_all(&plugins).unwrap();
    for p in ["text-replace", "audio-gain"] {
        std::fs::copy(common::plugin(p), plugins.join(format!("{p}.wasm"))).unwrap();
    }
    write(&pipelines, "plain.toml", &good("plain-0"), &How::InPlace, 0);
    write(&pipelines, "cm.toml", &good("cm-0"), &How::ConfigMap, 0);

    let runtime = common::runtime();
    let registry = Arc::new(PipelineRegistry::new(
        runtime.clone(),
        RegistryOptions {
            pipeline_dir: pipelines.clone(),
            plugin_dirs: vec![plugins.clone()],
            voices_dir: None,
            oci: None,
        },
    ));
    let first = registry.rescan();
    assert_eq!(first.loaded.len(), 2, "{first:?}");
    let compiles = runtime.stats().compiles.load(Ordering::Relaxed);
    assert_eq!(compiles, 2);
    let _watcher = watch(registry.clone(), Duration::from_millis(500)).unwrap();

    // Callers hammer both pipelines for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let callers: Vec<_> = ["plain", "cm"]
        .into_iter()
        .map(|name| {
            let (registry, stop, calls, failures) = (
                registry.clone(),
                stop.clone(),
                calls.clone(),
                failures.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match call(&registry, name) {
                        Ok(_) => {
                            calls.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            })
        })
        .collect();

    let mut expected = [("plain", "plain-0".to_string()), ("cm", "cm-0".to_string())];
    let (mut good_edits, mut broken_edits) = (0, 0);
    for i in 1..=50usize {
        let slot = i % 2;
        let (name, file, how) = if slot == 0 {
            let how = if i % 4 == 0 {
                How::InPlace
            } else {
                How::Rename
            };
            ("plain", "plain.toml", how)
        } else {
            ("cm", "cm.toml", How::ConfigMap)
        };
        let is_broken = i % 3 == 0;
        let marker = format!("{name}-{i}");
        let text = if is_broken { broken(i) } else { good(&marker) };
        write(&pipelines, file, &text, &how, i);
        let error = settle(&registry, &pipelines.join(file), &text);
        if is_broken {
            broken_edits += 1;
            let message = error.unwrap_or_else(|| panic!("edit {i} should be refused"));
            assert!(message.contains(file), "edit {i}: {message}");
            // The previous version keeps serving.
            assert_eq!(call(&registry, name).unwrap(), expected[slot].1, "edit {i}");
            assert!(registry.errors().iter().any(|e| e.message == message));
        } else {
            good_edits += 1;
            assert!(error.is_none(), "edit {i} refused: {error:?}");
            assert_eq!(call(&registry, name).unwrap(), marker, "edit {i}");
            expected[slot].1 = marker;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "failed calls: {:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(
        calls.load(Ordering::Relaxed) > 1000,
        "only {} calls",
        calls.load(Ordering::Relaxed)
    );
    let (accepted, refused) = registry.reload_counts();
    assert!(accepted >= 2 + good_edits, "accepted {accepted}");
    assert!(refused >= broken_edits, "refused {refused}");
    // Only configs changed: no plugin was compiled again.
    assert_eq!(runtime.stats().compiles.load(Ordering::Relaxed), compiles);
    let versions: Vec<u64> = ["plain", "cm"]
        .iter()
        .map(|n| registry.get(n).unwrap().version)
        .collect();
    assert!(versions.iter().all(|v| *v > 10), "{versions:?}");
}

/// Replacing a plugin file reloads the pipelines that use it; removing a
/// pipeline file removes the pipeline.
#[test]
fn plugin_rebuilds_and_removals_are_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    std::fs::copy(
        common::plugin("text-replace"),
        dir.join("text-replace.wasm"),
    )
    .unwrap();
    std::fs::copy(common::plugin("audio-gain"), dir.join("audio-gain.wasm")).unwrap();
    std::fs::write(dir.join("p.toml"), good("one")).unwrap();
    let runtime = common::runtime();
    let registry = Arc::new(PipelineRegistry::new(
        runtime,
        RegistryOptions {
            pipeline_dir: dir.clone(),
            plugin_dirs: vec![],
            voices_dir: None,
            oci: None,
        },
    ));
    registry.rescan();
    let _watcher = watch(registry.clone(), Duration::from_millis(200)).unwrap();
    let before = registry.get("p").unwrap();
    assert_eq!(before.version, 1);

    // "Rebuild" text-replace: the hostile plugin dropped in under its name is
    // a different component (and echoes, so the config still passes).
    let tmpfile = dir.join(".text-replace.wasm.tmp");
    std::fs::copy(common::plugin("hostile"), &tmpfile).unwrap();
    std::fs::rename(&tmpfile, dir.join("text-replace.wasm")).unwrap();
    let started = Instant::now();
    while registry.get("p").unwrap().version == 1 && registry.errors().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "plugin change not picked up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = registry.get("p").unwrap();
    let stage = after.stages[0].plugin.as_ref().unwrap();
    assert_eq!(stage.plugin.id.name, "hostile");
    // The request that held the old version still runs on it.
    assert_eq!(
        before.stages[0].plugin.as_ref().unwrap().plugin.id.name,
        "text-replace"
    );
    assert_eq!(call(&registry, "p").unwrap(), "X");

    std::fs::remove_file(dir.join("p.toml")).unwrap();
    let started = Instant::now();
    while registry.get("p").is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "removal not picked up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
