//! The proxy with real curl (when it is installed): HTTP/2 with prior knowledge, and HTTPS with
//! SNI through `--resolve`.

use std::process::Command;

use serde_json::json;

use crate::support::*;

fn curl(arguments: &[&str]) -> Option<String> {
    let output =
        match Command::new("curl").args(["--silent", "--show-error", "--max-time", "10"]).args(arguments).output() {
            Ok(output) => output,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => panic!("curl: {error}"),
        };
    assert!(output.status.success(), "curl {arguments:?}: {}", String::from_utf8_lossy(&output.stderr));
    Some(String::from_utf8(output.stdout).unwrap())
}

#[tokio::test]
async fn curl_reaches_backends_over_h2c_and_https() {
    let ca = TestCa::new();
    let (cert, key) = ca.issue(&["curl.example"]);
    let backend = Backend::start("curled").await;
    let mut cluster = Cluster::default();
    cluster.service("curled", &[backend.address], false).tls_secret("curl-tls", &cert, &key).ingress(
        "curled",
        json!({"tls": [{"hosts": ["curl.example"], "secretName": "curl-tls"}], "rules": [rule("curl.example", &[("/", "curled")])]}),
    );
    let mut certificates = frontdoor_ingress::Certificates::with_fake_default().unwrap();
    let secret = frontdoor_ingress_routes::SecretRef { namespace: "default".into(), name: "curl-tls".into() };
    certificates
        .insert(secret, frontdoor_ingress::tls::certified_key_from_pem(cert.as_bytes(), key.as_bytes()).unwrap());
    let proxy = Proxy::start_with(config(), cluster.table(), certificates).await;
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &ca.pem).unwrap();

    let (http, https) = (proxy.http.port(), proxy.https.port());
    let resolve_http = format!("curl.example:{http}:127.0.0.1");
    let resolve_https = format!("curl.example:{https}:127.0.0.1");
    let runs = [
        vec![
            "--http2-prior-knowledge".to_string(),
            "--resolve".into(),
            resolve_http,
            "--write-out".into(),
            "\n%{http_version}".into(),
            format!("http://curl.example:{http}/h2c"),
        ],
        vec![
            "--http2".to_string(),
            "--cacert".into(),
            ca_file.path().display().to_string(),
            "--resolve".into(),
            resolve_https,
            "--write-out".into(),
            "\n%{http_version}".into(),
            format!("https://curl.example:{https}/tls"),
        ],
    ];
    for arguments in runs {
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        // curl runs as a blocking child process: off the runtime's one thread.
        let output = tokio::task::spawn_blocking({
            let arguments: Vec<String> = arguments.iter().map(|a| a.to_string()).collect();
            move || curl(&arguments.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        let Some(output) = output else {
            eprintln!("curl is not installed; skipping");
            return;
        };
        let (body, version) = output.rsplit_once('\n').unwrap();
        assert_eq!(version, "2", "{arguments:?}");
        let reply: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(reply["backend"], "curled");
    }
    assert_eq!(backend.seen().len(), 2);
}
