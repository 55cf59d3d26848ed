//! Replays the cargo-fuzz corpus (`crates/ingress-routes/fuzz/corpus/route`: the seeds and
//! every input the fuzzer kept) through the same checks the fuzz target makes, so `cargo test`
//! guards what fuzzing found. `scripts/fuzz` runs the target itself for a bounded time.
#![allow(clippy::unwrap_used)]

include!("../fuzz/checks.rs");

#[test]
fn route_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/route");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        check_route(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count > 0, "empty corpus in {}", dir.display());
}
