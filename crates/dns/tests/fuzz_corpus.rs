//! Replays the cargo-fuzz corpora (`crates/dns/fuzz/corpus/<target>`: the seeds and every input
//! the fuzzer kept) through the same checks the fuzz targets make, so `cargo test` guards
//! what fuzzing found. `scripts/fuzz` runs the targets themselves for a bounded time.
#![allow(clippy::unwrap_used)]

include!("../fuzz/checks.rs");

fn replay(target: &str, check: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count > 0, "empty corpus in {}", dir.display());
}

#[test]
fn answer_corpus() {
    replay("answer", check_answer);
}

#[test]
fn forward_corpus() {
    replay("forward", check_forward);
}
