//! The access log: one `tracing` line per request, target `frontdoor_ingress::access`.
//!
//! It has a test binary of its own. `tracing` caches whether a log call is wanted the first
//! time any thread reaches it, and a thread with no subscriber of its own caches "never" while
//! only one subscriber exists. In the binary of the other proxy tests, whose requests all reach
//! this call, another test's thread could be the first, and this test's subscriber would never
//! see a line (CI saw that once). Here the test's own thread is the only one that logs.
#![allow(clippy::unwrap_used)] // a test stops at the first broken assumption

#[path = "proxy/support.rs"]
#[allow(dead_code)] // the helpers of the other proxy tests, most of which this one does not use
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use support::*;

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn each_request_writes_one_access_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("frontdoor_ingress::access=info")
        .finish();
    // Tokio tests run on one thread: the proxy's tasks log through this subscriber too.
    let _guard = tracing::subscriber::set_default(subscriber);
    let (backend, proxy) = one_backend("logged", "log.example", false).await;
    assert_eq!(get(proxy.http, "log.example", "/logged?x=1").await.status, 200);
    assert_eq!(get(proxy.http, "nowhere.example", "/").await.status, 404);
    eventually("two access-log lines", || String::from_utf8_lossy(&captured.0.lock().unwrap()).lines().count() == 2)
        .await;
    let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let upstream = format!("upstream={}", backend.address);
    for expected in [
        "frontdoor_ingress::access",
        "client=127.0.0.1",
        "method=GET",
        "host=\"log.example\"",
        "uri=/logged?x=1",
        "status=200",
        &upstream,
        "namespace=\"default\"",
        "ingress=\"logged\"",
        "service=\"logged\"",
    ] {
        assert!(lines[0].contains(expected), "{expected} in {}", lines[0]);
    }
    assert!(lines[1].contains("status=404") && !lines[1].contains("upstream="), "{}", lines[1]);
}
