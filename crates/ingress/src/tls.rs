//! TLS termination: certificates from `kubernetes.io/tls` Secrets, the self-signed default
//! certificate, and the choice of certificate by SNI at each handshake.
//!
//! The controller loads each Secret the route table names ([`RouteTable::secrets`]) with
//! [`certified_key_from_secret`] (an error becomes a Warning Event), collects them into a
//! [`Certificates`] and swaps it in. [`CertificateResolver`] reads the current route table and
//! certificates at each ClientHello (two `ArcSwap` loads, no lock): the Secret `tls_for(SNI)`
//! names if it loaded, else the default. A swapped-in certificate serves the next handshakes;
//! open connections keep the one they were made with.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use frontdoor_ingress_routes::{RouteTable, SecretRef};
use k8s_openapi::api::core::v1::Secret;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::IngressError;

/// The common name of ingress-nginx's self-signed default certificate, which we reuse so that
/// what users (and their monitoring) recognise stays the same.
pub const FAKE_CERTIFICATE_NAME: &str = "Kubernetes Ingress Controller Fake Certificate";

/// The one crypto provider (ring, as the rest of the workspace).
fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// A certificate chain and its key from a Secret's `tls.crt` and `tls.key` (`data`, else
/// `stringData`). The message of an error names the key and says what is wrong, for an Event.
pub fn certified_key_from_secret(secret: &Secret) -> Result<Arc<CertifiedKey>, String> {
    let field = |name: &str| -> Option<&[u8]> {
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(name))
            .map(|bytes| bytes.0.as_slice())
            .or_else(|| secret.string_data.as_ref().and_then(|data| data.get(name)).map(|s| s.as_bytes()))
    };
    let cert = field("tls.crt").ok_or("the Secret has no tls.crt")?;
    let key = field("tls.key").ok_or("the Secret has no tls.key")?;
    certified_key_from_pem(cert, key)
}

/// A certificate chain (PEM, leaf first) and its private key (PEM: PKCS#8, PKCS#1 or SEC1).
pub fn certified_key_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("tls.crt is not valid PEM: {error}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")".to_string());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "tls.key holds no PEM private key (PKCS#8 \"PRIVATE KEY\", PKCS#1 \"RSA PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\")"
                .to_string()
        }
        other => format!("tls.key is not valid PEM: {other}"),
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider()).map_err(|error| match error {
        rustls::Error::InconsistentKeys(_) => "tls.key is not the key of tls.crt's first certificate".to_string(),
        other => format!("tls.key cannot be used: {other}"),
    })?;
    Ok(Arc::new(certified))
}

/// A self-signed certificate made now, as ingress-nginx's default: served to clients whose SNI
/// names no Ingress host with a usable Secret (ECDSA P-256, valid for `ingress.local`).
pub fn fake_certificate() -> Result<Arc<CertifiedKey>, IngressError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["ingress.local".to_string()])?;
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme Co");
    params.distinguished_name.push(rcgen::DnType::CommonName, FAKE_CERTIFICATE_NAME);
    let cert = params.self_signed(&key)?;
    let key = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|error| IngressError::DefaultCertificate(error.to_string()))?;
    let certified = CertifiedKey::from_der(vec![cert.der().clone()], key, provider())?;
    Ok(Arc::new(certified))
}

/// The certificates the proxy serves: each loaded Secret's, and the default.
#[derive(Clone)]
pub struct Certificates {
    by_secret: HashMap<SecretRef, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secrets: Vec<String> = self.by_secret.keys().map(ToString::to_string).collect();
        secrets.sort();
        f.debug_struct("Certificates").field("secrets", &secrets).finish_non_exhaustive()
    }
}

impl Certificates {
    /// No Secret's certificate yet; `default` answers every handshake.
    pub fn new(default: Arc<CertifiedKey>) -> Self {
        Certificates { by_secret: HashMap::new(), default }
    }

    /// With a freshly made [`fake_certificate`] as the default.
    pub fn with_fake_default() -> Result<Self, IngressError> {
        Ok(Certificates::new(fake_certificate()?))
    }

    /// Serves `key` for the hosts whose TLS entry names `secret`.
    pub fn insert(&mut self, secret: SecretRef, key: Arc<CertifiedKey>) {
        self.by_secret.insert(secret, key);
    }

    pub fn remove(&mut self, secret: &SecretRef) -> Option<Arc<CertifiedKey>> {
        self.by_secret.remove(secret)
    }

    /// Keeps only the Secrets `keep` accepts (those the current table still uses).
    pub fn retain(&mut self, mut keep: impl FnMut(&SecretRef) -> bool) {
        self.by_secret.retain(|secret, _| keep(secret));
    }

    pub fn get(&self, secret: &SecretRef) -> Option<&Arc<CertifiedKey>> {
        self.by_secret.get(secret)
    }

    pub fn default_certificate(&self) -> &Arc<CertifiedKey> {
        &self.default
    }

    pub fn set_default(&mut self, default: Arc<CertifiedKey>) {
        self.default = default;
    }

    /// The certificate for a ClientHello naming `sni` (or none): the Secret the table's TLS
    /// entries give that name, if it loaded, else the default.
    pub fn for_server_name(&self, routes: &RouteTable, sni: Option<&str>) -> &Arc<CertifiedKey> {
        sni.and_then(|name| routes.tls_for(name)).and_then(|secret| self.by_secret.get(secret)).unwrap_or(&self.default)
    }
}

/// Picks each handshake's certificate from the current route table and certificates.
pub struct CertificateResolver {
    routes: Arc<ArcSwap<RouteTable>>,
    certificates: Arc<ArcSwap<Certificates>>,
}

impl CertificateResolver {
    pub fn new(routes: Arc<ArcSwap<RouteTable>>, certificates: Arc<ArcSwap<Certificates>>) -> Self {
        CertificateResolver { routes, certificates }
    }
}

impl fmt::Debug for CertificateResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certificates = self.certificates.load();
        let routes = self.routes.load();
        Some(certificates.for_server_name(&routes, client_hello.server_name()).clone())
    }
}

/// TLS sessions remembered for resumption by session ID (TLS 1.2); TLS 1.3 resumes by ticket.
const SESSION_CACHE_SIZE: usize = 16 * 1024;

/// The HTTPS listener's configuration: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, the resolver,
/// stateless session tickets (keys rotated by rustls every six hours), one ticket per handshake.
pub fn server_config(
    routes: Arc<ArcSwap<RouteTable>>,
    certificates: Arc<ArcSwap<Certificates>>,
) -> Result<Arc<rustls::ServerConfig>, IngressError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider().clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(CertificateResolver::new(routes, certificates)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.send_tls13_tickets = 1;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn self_signed(name: &str) -> (String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().self_signed(&key).unwrap();
        (cert.pem(), key)
    }

    fn secret(data: &[(&str, &[u8])]) -> Secret {
        let data: BTreeMap<String, ByteString> =
            data.iter().map(|(name, value)| (name.to_string(), ByteString(value.to_vec()))).collect();
        Secret { data: Some(data), ..Default::default() }
    }

    #[test]
    fn a_secret_s_chain_and_key_load_in_each_key_format() {
        // PKCS#8 ("PRIVATE KEY"), as rcgen and `openssl genpkey` write it.
        let (cert, key) = self_signed("a.example");
        let pkcs8 = key.serialize_pem();
        let loaded =
            certified_key_from_secret(&secret(&[("tls.crt", cert.as_bytes()), ("tls.key", pkcs8.as_bytes())])).unwrap();
        assert_eq!(loaded.cert.len(), 1);

        // PKCS#1 ("RSA PRIVATE KEY") and SEC1 ("EC PRIVATE KEY"), made with `openssl genrsa
        // -traditional` and `openssl ecparam -genkey` (valid for a hundred years).
        let fixtures: [(&[u8], &[u8]); 2] = [
            (include_bytes!("testdata/rsa.crt"), include_bytes!("testdata/rsa-pkcs1.key")),
            (include_bytes!("testdata/ec.crt"), include_bytes!("testdata/ec-sec1.key")),
        ];
        for (cert, key) in fixtures {
            certified_key_from_secret(&secret(&[("tls.crt", cert), ("tls.key", key)])).unwrap();
        }

        let mut with_strings = secret(&[]);
        with_strings.data = None;
        with_strings.string_data =
            Some([("tls.crt".to_string(), cert.clone()), ("tls.key".to_string(), pkcs8)].into_iter().collect());
        certified_key_from_secret(&with_strings).unwrap();
    }

    #[test]
    fn invalid_secrets_say_what_is_wrong() {
        let (cert, key) = self_signed("a.example");
        let (_, other_key) = self_signed("b.example");
        let key_pem = key.serialize_pem();
        let cases: Vec<(Secret, &str)> = vec![
            (secret(&[("tls.key", key_pem.as_bytes())]), "the Secret has no tls.crt"),
            (secret(&[("tls.crt", cert.as_bytes())]), "the Secret has no tls.key"),
            (secret(&[("tls.crt", b"garbage"), ("tls.key", key_pem.as_bytes())]), "tls.crt holds no PEM certificate"),
            (secret(&[("tls.crt", cert.as_bytes()), ("tls.key", cert.as_bytes())]), "tls.key holds no PEM private key"),
            (
                secret(&[("tls.crt", cert.as_bytes()), ("tls.key", other_key.serialize_pem().as_bytes())]),
                "tls.key is not the key of tls.crt's first certificate",
            ),
        ];
        for (secret, expected) in cases {
            let error = certified_key_from_secret(&secret).unwrap_err();
            assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
        }
    }

    #[test]
    fn the_fake_certificate_is_ingress_nginx_s() {
        let fake = fake_certificate().unwrap();
        let der = fake.end_entity_cert().unwrap();
        let text = String::from_utf8_lossy(der.as_ref());
        assert!(text.contains(FAKE_CERTIFICATE_NAME), "the subject names the fake certificate");
        assert!(text.contains("ingress.local"));
    }
}
