//! Replays the cargo-fuzz corpus (`crates/ingress/fuzz/corpus/h1`: the seeds and inputs the
//! fuzzer kept) through the checks the fuzz target makes, so `cargo test` guards what fuzzing
//! found. `scripts/fuzz` runs the target itself for a bounded time.
#![allow(clippy::unwrap_used)]

#[test]
fn h1_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/h1");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        frontdoor_ingress::h1::fuzzing::check(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count > 0, "empty corpus in {}", dir.display());
}
