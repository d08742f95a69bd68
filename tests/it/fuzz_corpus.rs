//! Replays every fuzz input kept in the repository (`fuzz/corpus/<target>/*`, and
//! `fuzz/artifacts/<target>/*` when present) through the entry point its fuzz target calls, so a
//! crash found once stays fixed. No fuzzer needed: this runs with `cargo test`.

use std::path::{Path, PathBuf};

use tower_oidc_auth::__private::FUZZ_TARGETS;

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_and_artifact_replays_without_panicking() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    // Every corpus directory belongs to a known target, and every target has seeds.
    for entry in std::fs::read_dir(fuzz.join("corpus")).expect("fuzz/corpus exists") {
        let name = entry.unwrap().file_name();
        let name = name.to_string_lossy();
        assert!(
            FUZZ_TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/corpus/{name} has no entry in __private::FUZZ_TARGETS"
        );
    }
    // Panics are caught and reported per file; keep their messages off the test output.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (target, run) in FUZZ_TARGETS {
        let seeds = files(&fuzz.join("corpus").join(target));
        assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seeds");
        let artifacts = files(&fuzz.join("artifacts").join(target));
        for path in seeds.iter().chain(&artifacts) {
            let data = std::fs::read(path).unwrap();
            replayed += 1;
            if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{target}: {}: {message}", path.display()));
            }
        }
    }
    let _ = std::panic::take_hook();
    assert!(
        failures.is_empty(),
        "{} of {replayed} fuzz inputs panicked:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
