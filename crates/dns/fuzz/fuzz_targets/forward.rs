//! `cargo +nightly fuzz run forward`: any bytes as an upstream's answer, through the forward
//! cache and the ExternalName chase; nothing panics, and what a client gets fits its transport.
#![no_main]

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_forward(data));
