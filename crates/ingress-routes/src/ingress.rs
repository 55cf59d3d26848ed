//! Ingresses as routes: which Ingresses are ours, and what each contributes.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

use crate::model::{
    BackendRef, DefaultRoute, HostMatch, PathMatch, PathRoute, PortRef, RouteSet, RouteSource, SecretRef, TlsBinding,
};
use crate::problem::{Problem, Reason};

/// The deprecated annotation that named an Ingress's class before `spec.ingressClassName`.
pub const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Which Ingresses this controller serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressClassConfig {
    /// `spec.controller` of the IngressClasses that are ours.
    pub controller: String,
    /// The value of the legacy `kubernetes.io/ingress.class` annotation that is ours.
    pub annotation_class: String,
}

impl Default for IngressClassConfig {
    fn default() -> Self {
        IngressClassConfig {
            controller: "frontdoor.dev/ingress".to_string(),
            annotation_class: "frontdoor".to_string(),
        }
    }
}

/// The IngressClasses that exist, by name, and their controllers.
#[derive(Clone, Debug, Default)]
pub(crate) struct IngressClasses {
    controllers: BTreeMap<String, String>,
}

impl IngressClasses {
    pub(crate) fn apply(&mut self, class: &IngressClass) -> bool {
        let Some(name) = class.metadata.name.clone() else { return false };
        let controller = class.spec.as_ref().and_then(|s| s.controller.clone()).unwrap_or_default();
        self.controllers.insert(name, controller.clone()) != Some(controller)
    }

    pub(crate) fn remove(&mut self, name: &str) -> bool {
        self.controllers.remove(name).is_some()
    }

    /// Whether an Ingress of this class and annotation is ours, as ingress-nginx decides
    /// (`store.GetIngressClass`): `spec.ingressClassName` when set (an IngressClass of that name
    /// with our controller must exist), else the legacy annotation. An Ingress with neither is
    /// not ours: the API server gives new Ingresses the default class when there is one.
    pub(crate) fn is_ours(&self, config: &IngressClassConfig, class: &IngressClassRef) -> bool {
        match (&class.class_name, &class.annotation) {
            (Some(name), _) => self.controllers.get(name) == Some(&config.controller),
            (None, Some(annotation)) => *annotation == config.annotation_class,
            (None, None) => false,
        }
    }
}

/// How an Ingress names its class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IngressClassRef {
    pub(crate) class_name: Option<String>,
    pub(crate) annotation: Option<String>,
}

impl IngressClassRef {
    pub(crate) fn of(ingress: &Ingress) -> Self {
        IngressClassRef {
            class_name: ingress.spec.as_ref().and_then(|s| s.ingress_class_name.clone()),
            annotation: ingress.metadata.annotations.as_ref().and_then(|a| a.get(INGRESS_CLASS_ANNOTATION).cloned()),
        }
    }
}

/// One Ingress, translated once on arrival.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IngressRoutes {
    pub(crate) class: IngressClassRef,
    pub(crate) routes: RouteSet,
    /// What could not be translated (reported only while the Ingress is ours).
    pub(crate) problems: Vec<Problem>,
}

/// A Service backend as a [`BackendRef`]; a problem for a `resource` backend or none at all.
fn backend_ref(namespace: &str, backend: &IngressBackend, what: &str) -> Result<BackendRef, (Reason, String)> {
    let Some(service) = &backend.service else {
        let message = match &backend.resource {
            Some(resource) => format!(
                "{what}: resource backend {} {:?} is not supported, only Service backends are",
                resource.kind, resource.name
            ),
            None => format!("{what}: backend names no Service"),
        };
        return Err((Reason::UnsupportedBackend, message));
    };
    let port = service.port.as_ref();
    let port = match (port.and_then(|p| p.number), port.and_then(|p| p.name.as_deref())) {
        (Some(number), _) => PortRef::Number(u16::try_from(number).unwrap_or(0)),
        (None, Some(name)) => PortRef::Name(name.to_string()),
        (None, None) => PortRef::Number(0),
    };
    Ok(BackendRef { namespace: namespace.to_string(), name: service.name.clone(), port })
}

/// The path match for a path type: ImplementationSpecific is a Prefix here (as ingress-nginx
/// without its regex annotations, element-wise as the specification's Prefix).
fn path_match(path: Option<&str>, path_type: &str) -> Result<PathMatch, String> {
    let path = path.unwrap_or("");
    let absolute = path.starts_with('/');
    match path_type {
        "Exact" if absolute => Ok(PathMatch::Exact(path.to_string())),
        "Prefix" if absolute => Ok(PathMatch::Prefix(path.to_string())),
        "ImplementationSpecific" if path.is_empty() => Ok(PathMatch::Prefix("/".to_string())),
        "ImplementationSpecific" if absolute => Ok(PathMatch::Prefix(path.to_string())),
        "Exact" | "Prefix" | "ImplementationSpecific" => Err(format!("path {path:?} is not absolute")),
        other => Err(format!("path {path:?} has unknown path type {other:?}")),
    }
}

/// Translates an Ingress; `None` for one without a name.
pub(crate) fn ingress_routes(ingress: &Ingress) -> Option<IngressRoutes> {
    let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
    let source = RouteSource::ingress(namespace.clone(), ingress.metadata.name.clone()?);
    let mut routes = RouteSet::new(source.clone(), ingress.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let mut problems = Vec::new();
    let mut problem = |(reason, message): (Reason, String)| problems.push(Problem::new(&source, reason, message));
    let empty = Default::default();
    let spec = ingress.spec.as_ref().unwrap_or(&empty);

    let rules = spec.rules.as_deref().unwrap_or_default();
    for rule in rules {
        let host = HostMatch::parse(rule.host.as_deref().unwrap_or(""));
        if !routes.hosts.contains(&host) {
            routes.hosts.push(host.clone());
        }
        for path in rule.http.iter().flat_map(|http| &http.paths) {
            let what = format!("path {:?} of host {host}", path.path.as_deref().unwrap_or(""));
            let matched = match path_match(path.path.as_deref(), &path.path_type) {
                Ok(matched) => matched,
                Err(message) => {
                    problem((Reason::InvalidPath, format!("host {host}: {message}")));
                    continue;
                }
            };
            match backend_ref(&namespace, &path.backend, &what) {
                Ok(backend) => routes.paths.push(PathRoute { host: host.clone(), path: matched, backend }),
                Err(refused) => problem(refused),
            }
        }
    }

    // The default backend serves the unmatched requests of the Ingress's hosts; an Ingress with
    // no rules serves every host no rule names (ingress-nginx's catch-all server).
    if let Some(default) = &spec.default_backend {
        match backend_ref(&namespace, default, "defaultBackend") {
            Ok(backend) if rules.is_empty() => {
                routes.defaults.push(DefaultRoute { host: HostMatch::Any, backend, dedicated: true });
            }
            Ok(backend) => {
                for host in &routes.hosts {
                    routes.defaults.push(DefaultRoute {
                        host: host.clone(),
                        backend: backend.clone(),
                        dedicated: false,
                    });
                }
            }
            Err(refused) => problem(refused),
        }
    }

    // TLS: an entry's hosts, or (without hosts) the rules' hosts no other entry names; an entry
    // without a Secret only asks for TLS with the default certificate.
    let tls = spec.tls.as_deref().unwrap_or_default();
    let named: Vec<HostMatch> =
        tls.iter().flat_map(|t| t.hosts.iter().flatten()).map(|h| HostMatch::parse(h)).collect();
    for entry in tls {
        let Some(secret) = entry.secret_name.as_deref().filter(|s| !s.is_empty()) else { continue };
        let secret = SecretRef { namespace: namespace.clone(), name: secret.to_string() };
        let hosts: Vec<HostMatch> = match entry.hosts.as_deref() {
            Some(hosts) if !hosts.is_empty() => hosts.iter().map(|h| HostMatch::parse(h)).collect(),
            _ => routes.hosts.iter().filter(|h| !named.contains(h)).cloned().collect(),
        };
        for host in hosts {
            if host != HostMatch::Any {
                routes.tls.push(TlsBinding { host, secret: secret.clone() });
            }
        }
    }

    Some(IngressRoutes { class: IngressClassRef::of(ingress), routes, problems })
}
