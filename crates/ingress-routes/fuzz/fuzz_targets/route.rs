//! `cargo +nightly fuzz run route`: Ingress rules and requests from any bytes; compiling the
//! table and routing must not panic, and a well-formed Exact rule routes its own host and path.
#![no_main]

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_route(data));
