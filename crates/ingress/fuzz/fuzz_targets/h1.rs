//! The HTTP/1.1 fast path's parsers over any bytes: requests from clients, responses and
//! chunked bodies from endpoints. The first byte picks which; see
//! `frontdoor_ingress::h1::fuzzing` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| frontdoor_ingress::h1::fuzzing::check(data));
