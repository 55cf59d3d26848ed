//! HTTPS: the certificate by SNI from the Secret the Ingress names, the fake default for other
//! names, HTTP/2 by ALPN, and certificates swapped under open connections.

use std::sync::Arc;

use frontdoor_ingress::Certificates;
use frontdoor_ingress_routes::SecretRef;
use http::Version;
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::net::TcpStream;

use crate::support::*;

struct Site {
    ca: TestCa,
    cert: String,
    backend: Backend,
    proxy: Proxy,
}

fn secret() -> SecretRef {
    SecretRef { namespace: "default".into(), name: "secure-tls".into() }
}

async fn secure_site() -> Site {
    let ca = TestCa::new();
    let (cert, key) = ca.issue(&["secure.example"]);
    let backend = Backend::start("secure").await;
    let mut cluster = Cluster::default();
    cluster.service("secure", &[backend.address], false).tls_secret("secure-tls", &cert, &key).ingress(
        "secure",
        json!({
            "tls": [{"hosts": ["secure.example"], "secretName": "secure-tls"}],
            "rules": [rule("secure.example", &[("/", "secure")]), rule("plain.example", &[("/", "secure")])],
        }),
    );
    let mut certificates = Certificates::with_fake_default().unwrap();
    certificates
        .insert(secret(), frontdoor_ingress::tls::certified_key_from_pem(cert.as_bytes(), key.as_bytes()).unwrap());
    let proxy = Proxy::start_with(config(), cluster.table(), certificates).await;
    Site { ca, cert, backend, proxy }
}

async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    address: std::net::SocketAddr,
    name: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let stream = TcpStream::connect(address).await.unwrap();
    connector.connect(ServerName::try_from(name.to_string()).unwrap(), stream).await.unwrap()
}

#[tokio::test]
async fn the_secret_s_certificate_answers_its_host_and_the_fake_one_the_rest() {
    let site = secure_site().await;
    let proxy = &site.proxy;
    assert_eq!(served_certificate(proxy.https, "secure.example").await, der_of(&site.cert));
    assert_eq!(served_certificate(proxy.https, "SECURE.example").await, der_of(&site.cert));
    let fake = proxy.certificates.load().default_certificate().cert[0].as_ref().to_vec();
    assert_eq!(served_certificate(proxy.https, "plain.example").await, fake);
    assert_eq!(served_certificate(proxy.https, "unknown.example").await, fake);
    // No SNI at all (a client connecting to an address).
    let stream = TcpStream::connect(proxy.https).await.unwrap();
    let tls = trusting_client().connect(ServerName::try_from("127.0.0.1").unwrap(), stream).await.unwrap();
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0].as_ref(), fake.as_slice());
}

#[tokio::test]
async fn https_serves_http1_and_http2_as_alpn_chooses() {
    let site = secure_site().await;
    let port = site.proxy.https.port().to_string();

    let connector = site.ca.client(&[b"http/1.1"]);
    let tls = tls_connect(&connector, site.proxy.https, "secure.example").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut one = http1(tls).await;
    let reply =
        read_whole(one.send_request(request("secure.example", "/").body(empty()).unwrap()).await.unwrap()).await;
    assert_eq!((reply.status.as_u16(), reply.version), (200, Version::HTTP_11));
    assert_eq!(reply.seen_header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(reply.seen_header("x-forwarded-port").as_deref(), Some(port.as_str()));
    assert_eq!(reply.seen_header("forwarded").as_deref(), Some("for=127.0.0.1;host=secure.example;proto=https"));

    let connector = site.ca.client(&[b"h2", b"http/1.1"]);
    let tls = tls_connect(&connector, site.proxy.https, "secure.example").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut two = http2(tls).await;
    let sent = http::Request::builder().uri("https://secure.example/two").body(empty()).unwrap();
    let reply = read_whole(two.send_request(sent).await.unwrap()).await;
    assert_eq!((reply.status.as_u16(), reply.version), (200, Version::HTTP_2));
    assert_eq!(reply.backend(), "secure");
    assert_eq!(site.backend.last().uri, "/two");
}

#[tokio::test]
async fn a_swapped_certificate_serves_new_connections_while_open_ones_keep_theirs() {
    let site = secure_site().await;
    let proxy = &site.proxy;
    let connector = site.ca.client(&[b"http/1.1"]);
    let open = tls_connect(&connector, proxy.https, "secure.example").await;
    let first = open.get_ref().1.peer_certificates().unwrap()[0].as_ref().to_vec();
    assert_eq!(first, der_of(&site.cert));
    let mut open = http1(open).await;

    let (renewed, key) = site.ca.issue(&["secure.example"]);
    let mut certificates = Certificates::clone(&proxy.certificates.load());
    certificates
        .insert(secret(), frontdoor_ingress::tls::certified_key_from_pem(renewed.as_bytes(), key.as_bytes()).unwrap());
    proxy.certificates.store(Arc::new(certificates));

    assert_eq!(served_certificate(proxy.https, "secure.example").await, der_of(&renewed));
    let reply =
        read_whole(open.send_request(request("secure.example", "/").body(empty()).unwrap()).await.unwrap()).await;
    assert_eq!(reply.status, 200, "the connection made with the old certificate still serves");
}
