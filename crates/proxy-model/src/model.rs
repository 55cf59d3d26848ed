//! The proxy's state: Services and EndpointSlices, and which Services changed since the last sync.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::endpoints::{Endpoint, SliceEndpoints};
use crate::policy::{categorize, ResolvedPort};
use crate::service::{service_ports, ServiceKey, ServicePort};

/// Services and their endpoints on one node, with change tracking.
///
/// Feed it every change; [`ProxyModel::take_changed`] then names the Services whose rules must be
/// rendered again. A change that does not alter what the proxy serves (a label, a status
/// condition) does not mark anything.
#[derive(Debug, Default)]
pub struct ProxyModel {
    node_name: String,
    services: HashMap<ServiceKey, Vec<ServicePort>>,
    /// The parsed slices of each Service, by slice name.
    slices: HashMap<ServiceKey, BTreeMap<String, SliceEndpoints>>,
    /// Which Service each slice (namespace, name) belonged to when last seen.
    slice_owner: HashMap<(String, String), ServiceKey>,
    changed: BTreeSet<ServiceKey>,
}

impl ProxyModel {
    pub fn new(node_name: impl Into<String>) -> ProxyModel {
        ProxyModel { node_name: node_name.into(), ..ProxyModel::default() }
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    fn key_of(service: &Service) -> ServiceKey {
        ServiceKey::new(
            service.metadata.namespace.clone().unwrap_or_default(),
            service.metadata.name.clone().unwrap_or_default(),
        )
    }

    /// Records a Service as it now is.
    pub fn apply_service(&mut self, service: &Service) {
        let key = Self::key_of(service);
        let ports = service_ports(service);
        if ports.is_empty() {
            if self.services.remove(&key).is_some() {
                self.changed.insert(key);
            }
            return;
        }
        if self.services.get(&key) != Some(&ports) {
            self.services.insert(key.clone(), ports);
            self.changed.insert(key);
        }
    }

    pub fn delete_service(&mut self, namespace: &str, name: &str) {
        let key = ServiceKey::new(namespace, name);
        if self.services.remove(&key).is_some() {
            self.changed.insert(key);
        }
    }

    /// Records an EndpointSlice as it now is.
    pub fn apply_slice(&mut self, slice: &EndpointSlice) {
        let id =
            (slice.metadata.namespace.clone().unwrap_or_default(), slice.metadata.name.clone().unwrap_or_default());
        let parsed = SliceEndpoints::parse(slice);
        // A slice relabelled to another Service (or made unusable) leaves its old one.
        if let Some(previous) = self.slice_owner.get(&id).cloned() {
            if parsed.as_ref().map(|p| &p.service) != Some(&previous) {
                self.remove_slice(&id, &previous);
            }
        }
        let Some(parsed) = parsed else { return };
        let key = parsed.service.clone();
        let slices = self.slices.entry(key.clone()).or_default();
        if slices.get(&id.1) != Some(&parsed) {
            slices.insert(id.1.clone(), parsed);
            self.changed.insert(key.clone());
        }
        self.slice_owner.insert(id, key);
    }

    pub fn delete_slice(&mut self, namespace: &str, name: &str) {
        let id = (namespace.to_string(), name.to_string());
        if let Some(owner) = self.slice_owner.get(&id).cloned() {
            self.remove_slice(&id, &owner);
        }
    }

    fn remove_slice(&mut self, id: &(String, String), owner: &ServiceKey) {
        self.slice_owner.remove(id);
        if let Some(slices) = self.slices.get_mut(owner) {
            if slices.remove(&id.1).is_some() {
                self.changed.insert(owner.clone());
            }
            if slices.is_empty() {
                self.slices.remove(owner);
            }
        }
    }

    /// The Services changed since the last call.
    pub fn take_changed(&mut self) -> BTreeSet<ServiceKey> {
        std::mem::take(&mut self.changed)
    }

    /// Every Service the proxy serves.
    pub fn services(&self) -> impl Iterator<Item = &ServiceKey> {
        self.services.keys()
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// The Service's ports with their chosen endpoints (empty when the Service is gone or not
    /// served by the proxy).
    pub fn resolve(&self, key: &ServiceKey) -> Vec<ResolvedPort> {
        let Some(ports) = self.services.get(key) else { return Vec::new() };
        let slices = self.slices.get(key);
        ports
            .iter()
            .map(|port| {
                let endpoints: Vec<Endpoint> = slices
                    .into_iter()
                    .flat_map(|slices| slices.values())
                    .flat_map(|slice| slice.endpoints_for(&port.name, port.protocol, &self.node_name))
                    .collect();
                categorize(port.clone(), &endpoints)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(name: &str, ip: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": name, "labels": {"a": "b"}},
            "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}
        }))
        .unwrap()
    }

    fn slice(name: &str, service: &str, ips: &[&str]) -> EndpointSlice {
        let endpoints: Vec<_> = ips.iter().map(|ip| json!({"addresses": [ip], "nodeName": "n1"})).collect();
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": endpoints
        }))
        .unwrap()
    }

    fn ips(model: &ProxyModel, name: &str) -> Vec<String> {
        model.resolve(&ServiceKey::new("default", name))[0].internal.iter().map(|e| e.ip.to_string()).collect()
    }

    fn changed(model: &mut ProxyModel) -> Vec<String> {
        model.take_changed().into_iter().map(|k| k.name).collect()
    }

    #[test]
    fn changes_are_tracked_per_service_and_only_when_they_matter() {
        let mut model = ProxyModel::new("n1");
        model.apply_service(&service("web", "10.96.0.5"));
        model.apply_slice(&slice("web-1", "web", &["10.244.0.5"]));
        model.apply_slice(&slice("web-2", "web", &["10.244.0.6", "10.244.0.5"]));
        assert_eq!(changed(&mut model), vec!["web"]);
        assert_eq!(ips(&model, "web"), vec!["10.244.0.5", "10.244.0.6"]);

        // The same objects again (a re-list, a label change): nothing to do.
        let mut relabelled = service("web", "10.96.0.5");
        relabelled.metadata.labels = None;
        model.apply_service(&relabelled);
        model.apply_slice(&slice("web-1", "web", &["10.244.0.5"]));
        assert!(changed(&mut model).is_empty());

        // A slice moved to another Service leaves the first one.
        model.apply_service(&service("api", "10.96.0.6"));
        model.take_changed();
        model.apply_slice(&slice("web-2", "api", &["10.244.0.9"]));
        assert_eq!(changed(&mut model), vec!["api", "web"]);
        assert_eq!(ips(&model, "web"), vec!["10.244.0.5"]);
        assert_eq!(ips(&model, "api"), vec!["10.244.0.9"]);

        model.delete_slice("default", "web-1");
        assert_eq!(changed(&mut model), vec!["web"]);
        assert!(ips(&model, "web").is_empty());

        model.delete_service("default", "api");
        assert_eq!(changed(&mut model), vec!["api"]);
        assert!(model.resolve(&ServiceKey::new("default", "api")).is_empty());
        // A Service turned headless stops being served.
        model.apply_service(&service("web", "None"));
        assert_eq!(changed(&mut model), vec!["web"]);
        assert_eq!(model.service_count(), 0);
    }

    #[test]
    fn slices_may_arrive_before_their_service() {
        let mut model = ProxyModel::new("n1");
        model.apply_slice(&slice("web-1", "web", &["10.244.0.5"]));
        model.apply_service(&service("web", "10.96.0.5"));
        assert_eq!(ips(&model, "web"), vec!["10.244.0.5"]);
        assert!(model.resolve(&ServiceKey::new("default", "web"))[0].internal[0].local);
    }
}
