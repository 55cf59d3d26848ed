//! A small async HTTPS client for the API server (hyper + rustls), trusting the server's CA and
//! sending its token. One `ApiClient` is one HTTP/1.1 keep-alive connection, like one client.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::Frontdoor;

type Https = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Clone)]
pub struct ApiClient {
    client: Https,
    base: String,
    token: String,
}

impl ApiClient {
    pub fn new(server: &Frontdoor) -> ApiClient {
        let ca = std::fs::read(server.ca_path()).expect("CA");
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut &ca[..]) {
            roots.add(cert.expect("CA PEM")).expect("CA cert");
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_max_idle_per_host(1);
        ApiClient {
            client: builder.build(connector),
            base: format!("https://{}", server.address),
            token: server.token(),
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Bytes,
        accept: Option<&str>,
    ) -> http::Request<Full<Bytes>> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", content_type);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        request.body(Full::new(body)).expect("request")
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(&self, method: &str, path: &str, body: Option<String>) -> (u16, Bytes) {
        self.send_with(method, path, "application/json", body.map(Bytes::from).unwrap_or_default(), None).await
    }

    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Bytes,
        accept: Option<&str>,
    ) -> (u16, Bytes) {
        let response =
            self.client.request(self.request(method, path, content_type, body, accept)).await.expect("request sent");
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        (status, bytes)
    }

    /// Opens a streaming GET (a watch) and returns its body.
    pub async fn stream(&self, path: &str) -> hyper::body::Incoming {
        let response = self
            .client
            .request(self.request("GET", path, "application/json", Bytes::new(), None))
            .await
            .expect("stream opened");
        response.into_body()
    }
}
