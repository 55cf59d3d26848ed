//! The cluster as routes need it: Services' TCP ports, their ready endpoints, and which TLS
//! Secrets exist. Kept one object at a time, distilled on arrival.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::model::{BackendRef, PortRef, SecretRef};
use crate::problem::Reason;
use crate::table::BackendProtocol;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The `appProtocol` of a Service port that speaks HTTP/2 over cleartext (KEP-3726).
pub const H2C_APP_PROTOCOL: &str = "kubernetes.io/h2c";

/// `(namespace, name)`.
type Key = (String, String);

fn key(meta: &ObjectMeta) -> Option<Key> {
    Some((meta.namespace.clone().unwrap_or_default(), meta.name.clone()?))
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct TcpPort {
    /// Empty for an unnamed port.
    name: String,
    port: u16,
    protocol: BackendProtocol,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ServiceInfo {
    external_name: bool,
    /// The TCP ports, in spec order.
    ports: Vec<TcpPort>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct SliceInfo {
    service: String,
    /// TCP ports by name (empty for the unnamed one).
    ports: Vec<(String, u16)>,
    /// The first address of each ready, non-terminating endpoint.
    ready: Vec<IpAddr>,
}

fn service_info(service: &Service) -> ServiceInfo {
    let spec = service.spec.as_ref();
    let external_name = spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName");
    let ports = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| {
            let protocol = match p.app_protocol.as_deref() {
                Some(H2C_APP_PROTOCOL) => BackendProtocol::H2c,
                _ => BackendProtocol::Http1,
            };
            Some(TcpPort { name: p.name.clone().unwrap_or_default(), port: u16::try_from(p.port).ok()?, protocol })
        })
        .collect();
    ServiceInfo { external_name, ports }
}

/// `None` for a slice that names no Service or carries FQDNs.
fn slice_info(slice: &EndpointSlice) -> Option<SliceInfo> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    if slice.address_type != "IPv4" && slice.address_type != "IPv6" {
        return None;
    }
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| Some((p.name.clone().unwrap_or_default(), u16::try_from(p.port?).ok().filter(|n| *n != 0)?)))
        .collect();
    let ready = slice
        .endpoints
        .iter()
        .filter(|e| {
            let conditions = e.conditions.as_ref();
            // An unknown readiness counts as ready (the API's advice, and kube-proxy's).
            conditions.and_then(|c| c.ready) != Some(false) && conditions.and_then(|c| c.terminating) != Some(true)
        })
        // As kube-proxy: the addresses are fungible, the first one is used.
        .filter_map(|e| e.addresses.first()?.parse().ok())
        .collect();
    Some(SliceInfo { service, ports, ready })
}

/// Whether a Secret can serve TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SecretStatus {
    /// It has `tls.crt` and `tls.key` (whatever its type, as ingress-nginx accepts).
    Usable,
    Unusable,
}

fn secret_status(secret: &Secret) -> SecretStatus {
    let has = |key: &str| {
        secret.data.as_ref().and_then(|d| d.get(key)).is_some_and(|v| !v.0.is_empty())
            || secret.string_data.as_ref().and_then(|d| d.get(key)).is_some_and(|v| !v.is_empty())
    };
    if has("tls.crt") && has("tls.key") {
        SecretStatus::Usable
    } else {
        SecretStatus::Unusable
    }
}

/// A backend's Service port resolved to its endpoints.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    /// The Service port, when it exists.
    pub(crate) port: Option<u16>,
    pub(crate) protocol: BackendProtocol,
    pub(crate) endpoints: Arc<[SocketAddr]>,
    /// Why it has no endpoints, when that is a mistake rather than a Service scaled to zero.
    pub(crate) problem: Option<(Reason, String)>,
}

impl Resolved {
    fn failed(reason: Reason, message: String) -> Self {
        Resolved {
            port: None,
            protocol: BackendProtocol::Http1,
            endpoints: Arc::from([]),
            problem: Some((reason, message)),
        }
    }
}

/// Services, their EndpointSlices and Secrets' usability, as routes need them.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    services: BTreeMap<Key, ServiceInfo>,
    slices: BTreeMap<Key, SliceInfo>,
    /// `(namespace, service)` → its slices' names.
    slices_by_service: BTreeMap<Key, BTreeSet<String>>,
    secrets: BTreeMap<Key, SecretStatus>,
}

impl Catalog {
    /// Adds or replaces a Service; whether what routes see of it changed.
    pub fn apply_service(&mut self, service: &Service) -> bool {
        let Some(key) = key(&service.metadata) else { return false };
        let info = service_info(service);
        self.services.insert(key, info.clone()) != Some(info)
    }

    pub fn remove_service(&mut self, namespace: &str, name: &str) -> bool {
        self.services.remove(&(namespace.to_string(), name.to_string())).is_some()
    }

    /// Adds or replaces an EndpointSlice; whether what routes see of it changed.
    pub fn apply_slice(&mut self, slice: &EndpointSlice) -> bool {
        let Some(key) = key(&slice.metadata) else { return false };
        match slice_info(slice) {
            Some(info) => {
                if self.slices.get(&key) == Some(&info) {
                    return false;
                }
                self.unindex_slice(&key);
                let by_service = (key.0.clone(), info.service.clone());
                self.slices_by_service.entry(by_service).or_default().insert(key.1.clone());
                self.slices.insert(key, info);
                true
            }
            None => self.remove_slice(&key.0, &key.1),
        }
    }

    pub fn remove_slice(&mut self, namespace: &str, name: &str) -> bool {
        let key = (namespace.to_string(), name.to_string());
        self.unindex_slice(&key);
        self.slices.remove(&key).is_some()
    }

    fn unindex_slice(&mut self, key: &Key) {
        let Some(old) = self.slices.get(key) else { return };
        let by_service = (key.0.clone(), old.service.clone());
        if let Some(names) = self.slices_by_service.get_mut(&by_service) {
            names.remove(&key.1);
            if names.is_empty() {
                self.slices_by_service.remove(&by_service);
            }
        }
    }

    /// Adds or replaces a Secret (only whether it can serve TLS is kept); whether that changed.
    pub fn apply_secret(&mut self, secret: &Secret) -> bool {
        let Some(key) = key(&secret.metadata) else { return false };
        let status = secret_status(secret);
        self.secrets.insert(key, status) != Some(status)
    }

    pub fn remove_secret(&mut self, namespace: &str, name: &str) -> bool {
        self.secrets.remove(&(namespace.to_string(), name.to_string())).is_some()
    }

    /// Why `secret` cannot serve TLS, if it cannot.
    pub(crate) fn secret_problem(&self, secret: &SecretRef) -> Option<(Reason, String)> {
        match self.secrets.get(&(secret.namespace.clone(), secret.name.clone())) {
            Some(SecretStatus::Usable) => None,
            Some(SecretStatus::Unusable) => {
                Some((Reason::InvalidSecret, format!("Secret {secret} has no tls.crt or no tls.key")))
            }
            None => Some((Reason::SecretNotFound, format!("Secret {secret} not found"))),
        }
    }

    /// Resolves a backend as kube-proxy does: the Service port by number or name, then the
    /// endpoints of the slices' TCP port of the same name (the unnamed one for an unnamed port).
    pub(crate) fn resolve(&self, backend: &BackendRef) -> Resolved {
        let service_key = (backend.namespace.clone(), backend.name.clone());
        let service_name = format!("{}/{}", backend.namespace, backend.name);
        let Some(service) = self.services.get(&service_key) else {
            return Resolved::failed(Reason::ServiceNotFound, format!("Service {service_name} not found"));
        };
        if service.external_name {
            return Resolved::failed(
                Reason::UnsupportedServiceType,
                format!("Service {service_name} is of type ExternalName, which has no endpoints to route to"),
            );
        }
        let port = service.ports.iter().find(|p| match &backend.port {
            PortRef::Number(number) => p.port == *number,
            PortRef::Name(name) => p.name == *name,
        });
        let Some(port) = port else {
            let which = match &backend.port {
                PortRef::Number(number) => format!("port {number}"),
                PortRef::Name(name) => format!("port named {name:?}"),
            };
            return Resolved::failed(Reason::PortNotFound, format!("Service {service_name} has no TCP {which}"));
        };
        let mut endpoints: Vec<SocketAddr> = self
            .slices_by_service
            .get(&service_key)
            .into_iter()
            .flatten()
            .filter_map(|slice| self.slices.get(&(backend.namespace.clone(), slice.clone())))
            .flat_map(|slice| {
                let target = slice.ports.iter().find(|(name, _)| *name == port.name).map(|(_, number)| *number);
                target
                    .into_iter()
                    .flat_map(move |target| slice.ready.iter().map(move |ip| SocketAddr::new(*ip, target)))
            })
            .collect();
        // An endpoint may sit in two slices for a moment while it moves between them.
        endpoints.sort_unstable();
        endpoints.dedup();
        Resolved { port: Some(port.port), protocol: port.protocol, endpoints: endpoints.into(), problem: None }
    }
}
