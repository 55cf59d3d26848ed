//! The cluster CA, the serving certificate and the bearer token, kept in the data directory.
//!
//! The CA and token are made on first start and reused after; the serving certificate is
//! re-issued by that CA at every start (it is never kept), so it always names the current
//! addresses and kubeconfigs made before keep working. It is valid for what pods and clients
//! reach the server by, as kube-apiserver's: `kubernetes`, `kubernetes.default`,
//! `kubernetes.default.svc`, `kubernetes.default.svc.<cluster domain>`, `localhost`, the
//! `kubernetes` Service's ClusterIP, the advertised and listen addresses and loopback.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("bad PEM in {0}")]
    Pem(PathBuf),
}

/// Everything a client needs to trust and authenticate to the server.
pub struct Credentials {
    pub ca_pem: String,
    pub token: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

fn read(path: &Path) -> Result<Option<String>, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io { path: path.into(), source }),
    }
}

fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| TlsError::Io { path: path.into(), source };
    let temporary = path.with_extension("tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "frontdoor-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

/// The DNS names the serving certificate is valid for.
pub fn serving_names(cluster_domain: &str) -> Vec<String> {
    let domain = cluster_domain.trim_matches('.');
    let mut names: Vec<String> = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
        .iter()
        .map(|n| n.to_string())
        .collect();
    if !domain.is_empty() {
        names.push(format!("kubernetes.default.svc.{domain}"));
    }
    names
}

/// Loads or creates the CA and token in `dir` and issues a serving certificate for `addresses`
/// (and loopback) and the `kubernetes` Service's names in `cluster_domain`.
pub fn load_or_create(dir: &Path, addresses: &[IpAddr], cluster_domain: &str) -> Result<Credentials, TlsError> {
    let (ca_cert_path, ca_key_path, token_path) = (dir.join("ca.crt"), dir.join("ca.key"), dir.join("token"));
    let (ca_pem, ca_key) = match (read(&ca_cert_path)?, read(&ca_key_path)?) {
        (Some(cert), Some(key)) => (cert, KeyPair::from_pem(&key)?),
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params()?.self_signed(&key)?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            write_private(&ca_cert_path, &cert.pem())?;
            (cert.pem(), key)
        }
    };
    let token = match read(&token_path)? {
        Some(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => {
            let token = random_token();
            write_private(&token_path, &token)?;
            token
        }
    };

    let issuer = Issuer::new(ca_params()?, ca_key);
    let mut params = CertificateParams::new(serving_names(cluster_domain))?;
    params.distinguished_name.push(DnType::CommonName, "frontdoor-apiserver");
    let loopback = [IpAddr::from([127, 0, 0, 1]), IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])];
    let mut ips: Vec<IpAddr> = Vec::new();
    for ip in addresses.iter().chain(loopback.iter()).filter(|ip| !ip.is_unspecified()) {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    params.subject_alt_names.extend(ips.into_iter().map(SanType::IpAddress));
    let serving_key = KeyPair::generate()?;
    let serving = params.signed_by(&serving_key, &issuer)?;

    let chain = vec![serving.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::try_from(serving_key.serialize_der())
        .map_err(|_| TlsError::Pem(dir.join("serving key")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Credentials { ca_pem, token, server_config: Arc::new(server_config) })
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A kubeconfig for `server` that trusts the CA and presents the token.
pub fn kubeconfig(server: &str, credentials: &Credentials) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(credentials.ca_pem.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: frontdoor
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: frontdoor-admin
  user:
    token: {token}
contexts:
- name: frontdoor
  context:
    cluster: frontdoor
    user: frontdoor-admin
    namespace: default
current-context: frontdoor
",
        token = credentials.token
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a client trusting only the CA accepts the server as `name`.
    async fn accepted(credentials: &Credentials, name: &str) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut credentials.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(credentials.server_config.clone());
        let server = tokio::spawn(async move { acceptor.accept(server_io).await.is_ok() });
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let ok = tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, client_io).await.is_ok();
        let _ = server.await;
        ok
    }

    #[tokio::test]
    async fn the_serving_certificate_names_the_kubernetes_service_and_the_ca_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), &[IpAddr::from([127, 0, 0, 1])], "cluster.local").unwrap();
        // A later start (with addresses the first certificate lacked) keeps the CA and token.
        let addresses = [IpAddr::from([127, 0, 0, 1]), IpAddr::from([10, 96, 0, 1]), IpAddr::from([10, 244, 0, 1])];
        let second = load_or_create(dir.path(), &addresses, "example.org").unwrap();
        assert_eq!((first.ca_pem.as_str(), first.token.as_str()), (second.ca_pem.as_str(), second.token.as_str()));
        for name in [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.example.org",
            "localhost",
            "10.96.0.1",
            "10.244.0.1",
            "127.0.0.1",
        ] {
            assert!(accepted(&second, name).await, "{name}");
        }
        assert!(!accepted(&second, "kubernetes.default.svc.cluster.local").await, "another domain");
        assert!(!accepted(&second, "10.244.0.2").await);
        assert!(accepted(&first, "kubernetes.default.svc.cluster.local").await);
    }
}
