//! The cluster as the Ingress controller sees it, kept one object at a time.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use crate::catalog::Catalog;
use crate::compile::{compile, CompiledRoutes};
use crate::ingress::{ingress_routes, IngressClassConfig, IngressClassRef, IngressClasses, IngressRoutes};
use crate::model::RouteSet;

/// Ingresses, IngressClasses, Services, EndpointSlices and Secrets, distilled on arrival;
/// [`RouteTableBuilder::build`] compiles the Ingresses that are ours into an immutable table
/// (cost proportional to them) for a proxy to swap in.
#[derive(Clone, Debug, Default)]
pub struct RouteTableBuilder {
    config: IngressClassConfig,
    classes: IngressClasses,
    /// Every Ingress, ours or not: an IngressClass arriving later can make it ours.
    ingresses: BTreeMap<(String, String), IngressRoutes>,
    catalog: Catalog,
}

impl RouteTableBuilder {
    pub fn new(config: IngressClassConfig) -> Self {
        RouteTableBuilder { config, ..Default::default() }
    }

    pub fn config(&self) -> &IngressClassConfig {
        &self.config
    }

    /// Adds or replaces an Ingress; whether its routes changed (whether or not it is ours).
    pub fn apply_ingress(&mut self, ingress: &Ingress) -> bool {
        let Some(routes) = ingress_routes(ingress) else { return false };
        let key = (routes.routes.source.namespace.clone(), routes.routes.source.name.clone());
        self.ingresses.insert(key, routes.clone()) != Some(routes)
    }

    pub fn remove_ingress(&mut self, namespace: &str, name: &str) -> bool {
        self.ingresses.remove(&(namespace.to_string(), name.to_string())).is_some()
    }

    /// Adds or replaces an IngressClass; whether its controller changed.
    pub fn apply_ingress_class(&mut self, class: &IngressClass) -> bool {
        self.classes.apply(class)
    }

    pub fn remove_ingress_class(&mut self, name: &str) -> bool {
        self.classes.remove(name)
    }

    pub fn apply_service(&mut self, service: &Service) -> bool {
        self.catalog.apply_service(service)
    }

    pub fn remove_service(&mut self, namespace: &str, name: &str) -> bool {
        self.catalog.remove_service(namespace, name)
    }

    pub fn apply_slice(&mut self, slice: &EndpointSlice) -> bool {
        self.catalog.apply_slice(slice)
    }

    pub fn remove_slice(&mut self, namespace: &str, name: &str) -> bool {
        self.catalog.remove_slice(namespace, name)
    }

    /// Adds or replaces a Secret (only whether it holds `tls.crt` and `tls.key` is kept).
    pub fn apply_secret(&mut self, secret: &Secret) -> bool {
        self.catalog.apply_secret(secret)
    }

    pub fn remove_secret(&mut self, namespace: &str, name: &str) -> bool {
        self.catalog.remove_secret(namespace, name)
    }

    /// Whether this Ingress is ours to serve (and to write the status of).
    pub fn is_ours(&self, ingress: &Ingress) -> bool {
        self.classes.is_ours(&self.config, &IngressClassRef::of(ingress))
    }

    /// The Ingresses served, as `(namespace, name)`.
    pub fn served(&self) -> impl Iterator<Item = (&str, &str)> {
        self.ours().map(|routes| (routes.routes.source.namespace.as_str(), routes.routes.source.name.as_str()))
    }

    fn ours(&self) -> impl Iterator<Item = &IngressRoutes> {
        self.ingresses.values().filter(|routes| self.classes.is_ours(&self.config, &routes.class))
    }

    /// Compiles the Ingresses that are ours, with every problem found in them.
    pub fn build(&self) -> CompiledRoutes {
        let sets: Vec<&RouteSet> = self.ours().map(|routes| &routes.routes).collect();
        let mut compiled = compile(&sets, &self.catalog);
        compiled.problems.extend(self.ours().flat_map(|routes| routes.problems.iter().cloned()));
        compiled.problems.sort();
        compiled.problems.dedup();
        compiled
    }
}
