//! `cargo +nightly fuzz run answer`: any bytes, over UDP and TCP, against a small cluster;
//! `answer` must not panic, and a reply must fit its transport.
#![no_main]

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_answer(data));
