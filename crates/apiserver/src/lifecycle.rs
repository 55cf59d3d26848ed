//! The API server's own housekeeping, done through the registry like any client write:
//! the built-in namespaces, the namespace finalizer (empty a terminating namespace, then remove
//! it), the garbage collector (ownerReferences: background, foreground and orphan deletion) and
//! each live namespace's `default` ServiceAccount and root CA ConfigMap (`accounts`).
//!
//! Both loops are level-triggered: they react to store events, and on any gap (a lagged watch)
//! they rescan everything.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use frontdoor_resources::{self as resources, ResourceType};
use frontdoor_store::{Event, EventType};

use crate::accounts;
use crate::errors::ignore_exists;
use crate::registry::{DeleteOptions, ObjectRef, Registry, WriteOptions};

pub const BUILTIN_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

fn namespaces() -> &'static ResourceType {
    resources::lookup("", "v1", "namespaces").expect("namespaces are served")
}

/// Creates the built-in namespaces that do not exist yet.
pub async fn ensure_builtin_namespaces(registry: &Registry) -> Result<(), crate::errors::ApiError> {
    for name in BUILTIN_NAMESPACES {
        let object = json!({"metadata": {"name": name}});
        ignore_exists(registry.create(namespaces(), None, object, &WriteOptions::default()).await)?;
    }
    Ok(())
}

/// Creates (or refreshes) the `kubernetes` Service in `default`, at the first address of the
/// service range, with an EndpointSlice and Endpoints pointing at the API server, as upstream's
/// apiserver does for itself.
///
/// The endpoints need an address pods can reach (`advertise`: by default the node's bridge
/// address, where the server also listens); upstream refuses loopback endpoints, so with none
/// given the Service has no endpoints. The Endpoints (not mirrored) and the EndpointSlice are
/// what upstream's endpoint reconciler writes: port `https`, the address ready.
pub async fn ensure_kubernetes_service(
    registry: &Registry,
    api: std::net::SocketAddr,
    advertise: Option<std::net::IpAddr>,
) -> Result<(), crate::errors::ApiError> {
    let services = resources::lookup("", "v1", "services").expect("services are served");
    let ip = registry.network.address(0).to_string();
    let service = json!({
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api.port()}],
            "sessionAffinity": "None",
        },
    });
    let options = WriteOptions::default();
    ignore_exists(registry.create(services, Some("default"), service, &options).await)?;
    let Some(address) = advertise.map(|a| a.to_string()) else { return Ok(()) };
    let endpoints = json!({
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address}], "ports": [{"name": "https", "port": api.port(), "protocol": "TCP"}]}],
    });
    let slice = json!({
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": api.port(), "protocol": "TCP"}],
    });
    for (group, plural, object) in [("", "endpoints", endpoints), ("discovery.k8s.io", "endpointslices", slice)] {
        let resource = resources::lookup(group, "v1", plural).expect("served");
        let at = ObjectRef { resource, namespace: Some("default"), name: "kubernetes" };
        match registry.get(&at) {
            Ok(_) => {
                let patch = object.clone();
                registry.patch(&at, crate::patch::MERGE, &patch, &options).await?;
            }
            Err(_) => {
                registry.create(resource, Some("default"), object, &options).await?;
            }
        }
    }
    Ok(())
}

/// Where a stored object lives, read from its own metadata and the catalogue.
pub(crate) fn locate(key: &str) -> Option<&'static ResourceType> {
    let qualified = key.split('/').next()?;
    let (plural, group) = qualified.split_once('.').unwrap_or((qualified, ""));
    resources::all().iter().find(|r| r.plural == plural && r.group == group)
}

fn name_of(object: &Value) -> (&str, Option<&str>) {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
    (name, namespace)
}

fn owner_uids(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| refs.iter().filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from)).collect())
        .unwrap_or_default()
}

fn has_finalizer(object: &Value, finalizer: &str) -> bool {
    object.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| f.iter().any(|x| x == finalizer))
}

fn is_terminating(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some()
}

/// Runs the namespace finalizer, the garbage collector and the keeping of namespaces' service
/// accounts (with `ca_pem`, the cluster CA) until the store closes.
pub async fn run(registry: Registry, ca_pem: String) {
    let mut collector =
        Collector { registry, ca_pem, owners: HashMap::new(), uids: HashMap::new(), objects: HashMap::new() };
    loop {
        let revision = collector.resync().await;
        let Ok(watch) = collector.registry.store.watch(revision) else { continue };
        let mut live = watch.live;
        for event in watch.backlog {
            collector.observe(&event).await;
        }
        loop {
            match live.recv().await {
                Ok(event) => collector.observe(&event).await,
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            }
        }
    }
}

struct Collector {
    registry: Registry,
    /// The cluster CA, published in every namespace's `kube-root-ca.crt`.
    ca_pem: String,
    /// owner uid → keys of objects that name it in ownerReferences.
    owners: HashMap<String, HashSet<String>>,
    /// uid → key, for every live object.
    uids: HashMap<String, String>,
    /// key → uid and owner uids, to undo the index on change.
    objects: HashMap<String, (String, Vec<String>)>,
}

impl Collector {
    fn index(&mut self, key: &str, object: &Value) {
        self.unindex(key);
        if locate(key).is_none() {
            // Internal records (allocations) have no owners and are never owners.
            return;
        }
        let uid = object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
        let owners = owner_uids(object);
        for owner in &owners {
            self.owners.entry(owner.clone()).or_default().insert(key.to_string());
        }
        self.uids.insert(uid.clone(), key.to_string());
        self.objects.insert(key.to_string(), (uid, owners));
    }

    fn unindex(&mut self, key: &str) {
        if let Some((uid, owners)) = self.objects.remove(key) {
            self.uids.remove(&uid);
            for owner in owners {
                if let Some(set) = self.owners.get_mut(&owner) {
                    set.remove(key);
                    if set.is_empty() {
                        self.owners.remove(&owner);
                    }
                }
            }
        }
    }

    /// Rebuilds the index from a full listing and acts on everything pending.
    async fn resync(&mut self) -> u64 {
        self.owners.clear();
        self.uids.clear();
        self.objects.clear();
        let (revision, items) = self.registry.store.list("", None, 0);
        for (key, stored) in &items {
            self.index(key, &stored.value);
        }
        for (key, stored) in &items {
            self.reconcile(key, &stored.value).await;
            if locate(key).is_some_and(|r| r.kind == "Namespace") {
                self.keep_accounts(name_of(&stored.value).0).await;
            }
        }
        // Dependents whose owners are all gone.
        let orphans: Vec<String> = self.objects.keys().filter(|key| self.owners_all_gone(key)).cloned().collect();
        for key in orphans {
            self.delete_key(&key, None).await;
        }
        revision
    }

    async fn observe(&mut self, event: &Event) {
        match event.event_type {
            EventType::Deleted => {
                let uid = event.object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
                self.unindex(&event.key);
                self.collect_dependents_of(&uid).await;
                if locate(&event.key).is_some_and(|r| r.kind == "Namespace") {
                    return;
                }
                if let Some(namespace) = accounts::kept_object_namespace(&event.key, &event.object) {
                    self.keep_accounts(&namespace).await;
                }
                // The last object of a terminating namespace lets the namespace go.
                if let Some(ns) = event.object.pointer("/metadata/namespace").and_then(Value::as_str) {
                    let at = ObjectRef { resource: namespaces(), namespace: None, name: ns };
                    if let Ok(stored) = self.registry.get(&at) {
                        if is_terminating(&stored.value) {
                            self.finalize_namespace(&stored.value).await;
                        }
                    }
                }
                // A foreground owner waits for its dependents: re-check owners of this object.
                for owner in owner_uids(&event.object) {
                    self.recheck_owner(&owner).await;
                }
            }
            _ => {
                self.index(&event.key, &event.object);
                self.reconcile(&event.key, &event.object).await;
                if locate(&event.key).is_some_and(|r| r.kind == "Namespace") {
                    self.keep_accounts(name_of(&event.object).0).await;
                } else if let Some(namespace) = accounts::kept_object_namespace(&event.key, &event.object) {
                    // Someone changed the root CA ConfigMap: its data is put back.
                    self.keep_accounts(&namespace).await;
                }
                // A dependent written after all its owners were deleted (a controller acting on
                // a cache that had not seen the deletion yet) goes as if it had been there.
                if self.owners_all_gone(&event.key) && !is_terminating(&event.object) {
                    self.delete_key(&event.key, None).await;
                }
            }
        }
    }

    /// Whether the object at `key` names owners and none of them exists.
    fn owners_all_gone(&self, key: &str) -> bool {
        self.objects
            .get(key)
            .is_some_and(|(_, owners)| !owners.is_empty() && owners.iter().all(|o| !self.uids.contains_key(o)))
    }

    async fn recheck_owner(&mut self, owner_uid: &str) {
        let Some(key) = self.uids.get(owner_uid).cloned() else { return };
        if let Some(stored) = self.registry.store.get(&key) {
            self.reconcile(&key, &stored.value).await;
        }
    }

    /// Background deletion: dependents of a deleted owner go when no other owner remains.
    async fn collect_dependents_of(&mut self, uid: &str) {
        let dependents: Vec<String> = self.owners.get(uid).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        for key in dependents {
            if self.owners_all_gone(&key) {
                self.delete_key(&key, None).await;
            }
        }
    }

    /// Acts on a terminating object: namespaces are emptied; foreground and orphan finalizers
    /// are carried out.
    async fn reconcile(&mut self, key: &str, object: &Value) {
        if !is_terminating(object) {
            return;
        }
        let Some(resource) = locate(key) else { return };
        if resource.kind == "Namespace" {
            self.finalize_namespace(object).await;
            return;
        }
        let uid = object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
        let dependents: Vec<String> = self.owners.get(&uid).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        if has_finalizer(object, "orphan") {
            for dependent in &dependents {
                self.drop_owner_reference(dependent, &uid).await;
            }
            self.remove_finalizer(resource, object, "orphan").await;
        } else if has_finalizer(object, "foregroundDeletion") {
            if dependents.is_empty() {
                self.remove_finalizer(resource, object, "foregroundDeletion").await;
            } else {
                for dependent in dependents {
                    self.delete_key(&dependent, Some("Foreground")).await;
                }
            }
        }
    }

    /// The namespace's `default` ServiceAccount and root CA ConfigMap, while it is live.
    async fn keep_accounts(&self, namespace: &str) {
        let at = ObjectRef { resource: namespaces(), namespace: None, name: namespace };
        let live = self.registry.get(&at).is_ok_and(|stored| !is_terminating(&stored.value));
        if !live {
            return;
        }
        if let Err(error) = accounts::ensure_namespace(&self.registry, namespace, &self.ca_pem).await {
            tracing::warn!(namespace, error = %error.message, "keeping the namespace's service account");
        }
    }

    async fn finalize_namespace(&mut self, namespace: &Value) {
        let (name, _) = name_of(namespace);
        let name = name.to_string();
        let mut remaining = 0;
        for resource in resources::all().iter().filter(|r| r.namespaced) {
            let (_, items) = self.registry.list(resource, Some(&name));
            for stored in items {
                remaining += 1;
                if !is_terminating(&stored.value) {
                    let (object_name, _) = name_of(&stored.value);
                    let at = ObjectRef { resource, namespace: Some(&name), name: object_name };
                    let _ = self.registry.delete(&at, &DeleteOptions::default()).await;
                }
            }
        }
        if remaining > 0 {
            // Each deletion produces an event that brings us back here (see `observe`).
            return;
        }
        let mut next = namespace.clone();
        next["spec"]["finalizers"] = json!([]);
        let at = ObjectRef { resource: namespaces(), namespace: None, name: &name };
        let _ = self.registry.finalize(&at, next).await;
    }

    async fn remove_finalizer(&self, resource: &'static ResourceType, object: &Value, finalizer: &str) {
        let (name, namespace) = name_of(object);
        let remaining: Vec<Value> = object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|f| f.iter().filter(|x| *x != finalizer).cloned().collect())
            .unwrap_or_default();
        let patch =
            json!({"metadata": {"finalizers": remaining, "resourceVersion": object["metadata"]["resourceVersion"]}});
        let at = ObjectRef { resource, namespace, name };
        let _ = self.registry.patch(&at, crate::patch::MERGE, &patch, &WriteOptions::default()).await;
    }

    async fn drop_owner_reference(&self, key: &str, owner_uid: &str) {
        let (Some(resource), Some(stored)) = (locate(key), self.registry.store.get(key)) else { return };
        let (name, namespace) = name_of(&stored.value);
        let kept: Vec<Value> = stored
            .value
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter().filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid)).cloned().collect()
            })
            .unwrap_or_default();
        let patch =
            json!({"metadata": {"ownerReferences": if kept.is_empty() { Value::Null } else { Value::Array(kept) }}});
        let at = ObjectRef { resource, namespace, name };
        let _ = self.registry.patch(&at, crate::patch::MERGE, &patch, &WriteOptions::default()).await;
    }

    async fn delete_key(&self, key: &str, propagation: Option<&str>) {
        let (Some(resource), Some(stored)) = (locate(key), self.registry.store.get(key)) else { return };
        if is_terminating(&stored.value) && propagation.is_none() {
            return;
        }
        let (name, namespace) = name_of(&stored.value);
        let options = DeleteOptions { propagation: propagation.map(String::from), ..Default::default() };
        let at = ObjectRef { resource, namespace, name };
        let _ = self.registry.delete(&at, &options).await;
    }
}
