//! The Ingress controller: the shared informers (Ingresses, IngressClasses, Services,
//! EndpointSlices, Secrets) feed one [`RouteTableBuilder`]; after each burst of changes it builds
//! the route table and swaps it in for the proxy, loads the certificates of the Secrets the table
//! names, reports what it could not serve as Warning events on the Ingresses, and writes the
//! address it serves on into each served Ingress's `status.loadBalancer`.
//!
//! At start it makes sure our IngressClass exists, marked default, so the API server gives it to
//! new Ingresses that name no class ([`ensure_class`]; the caller runs it before announcing the
//! API ready, so no Ingress created right after start misses it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use frontdoor_informers::errors::is_already_exists;
use frontdoor_informers::events::correlator::CorrelatorOptions;
use frontdoor_informers::{feed, Backoff, EventRecorder, InformerFactory, ObjectKey};
use frontdoor_ingress_routes::{IngressClassConfig, Problem, RouteTable, RouteTableBuilder, SecretRef};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Api;
use rustls::sign::CertifiedKey;
use serde_json::json;
use tokio::sync::Notify;

use crate::tls::{certified_key_from_secret, Certificates};

/// The events' source, as ingress-nginx's `nginx-ingress-controller`.
pub const COMPONENT: &str = "frontdoor-ingress-controller";
/// The annotation that makes an IngressClass the default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Our IngressClass's name and controller (`frontdoor`, `frontdoor.dev/ingress`).
    pub class: IngressClassConfig,
    /// The address written into served Ingresses' `status.loadBalancer.ingress` (the node's).
    pub status_address: Option<IpAddr>,
    /// How long a build waits after a change: changes meanwhile are built together.
    pub min_rebuild: Duration,
}

/// What the controller keeps current for the proxy.
#[derive(Clone)]
pub struct Published {
    pub routes: Arc<ArcSwap<RouteTable>>,
    pub certificates: Arc<ArcSwap<Certificates>>,
}

/// Creates our IngressClass, marked default, unless one of that name exists (whatever a user
/// made of it since). Retries until it succeeds.
pub async fn ensure_class(client: kube::Client, class: &IngressClassConfig) {
    let api = Api::<IngressClass>::all(client);
    let wanted: IngressClass = match serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {
            "name": class.annotation_class,
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
            "labels": {"app.kubernetes.io/managed-by": "frontdoor"},
        },
        "spec": {"controller": class.controller},
    })) {
        Ok(wanted) => wanted,
        Err(error) => return tracing::error!(%error, "cannot build the IngressClass"),
    };
    let backoff = Backoff { min: Duration::from_millis(20), max: Duration::from_secs(5) };
    for attempt in 1.. {
        match api.get_opt(&class.annotation_class).await {
            Ok(Some(_)) => return,
            Ok(None) => match api.create(&PostParams::default(), &wanted).await {
                Ok(_) => return tracing::info!(class = %class.annotation_class, "created the default IngressClass"),
                Err(error) if is_already_exists(&error) => return,
                Err(error) => tracing::warn!(%error, "cannot create the IngressClass; retrying"),
            },
            Err(error) => tracing::warn!(%error, "cannot read the IngressClass; retrying"),
        }
        tokio::time::sleep(backoff.delay(attempt)).await;
    }
}

/// Runs the controller until the factory's shutdown.
pub async fn run(factory: InformerFactory, config: ControllerConfig, published: Published) {
    let shutdown = factory.shutdown();
    let builder = Arc::new(Mutex::new(RouteTableBuilder::new(config.class.clone())));
    let changed = Arc::new(Notify::new());
    feed::<Ingress, _, _, _>(
        &factory,
        &builder,
        &changed,
        |b, i| b.apply_ingress(i),
        |b, ns, n| b.remove_ingress(ns, n),
    );
    feed::<IngressClass, _, _, _>(
        &factory,
        &builder,
        &changed,
        |b, c| b.apply_ingress_class(c),
        |b, _, n| b.remove_ingress_class(n),
    );
    feed::<Service, _, _, _>(
        &factory,
        &builder,
        &changed,
        |b, s| b.apply_service(s),
        |b, ns, n| b.remove_service(ns, n),
    );
    feed::<EndpointSlice, _, _, _>(
        &factory,
        &builder,
        &changed,
        |b, s| b.apply_slice(s),
        |b, ns, n| b.remove_slice(ns, n),
    );
    feed::<Secret, _, _, _>(&factory, &builder, &changed, |b, s| b.apply_secret(s), |b, ns, n| b.remove_secret(ns, n));
    let stop = shutdown.triggered();
    tokio::pin!(stop);
    tokio::select! {
        () = &mut stop => return,
        () = async {
            tokio::join!(
                factory.all::<Ingress>().synced(),
                factory.all::<IngressClass>().synced(),
                factory.all::<Service>().synced(),
                factory.all::<EndpointSlice>().synced(),
                factory.all::<Secret>().synced(),
            );
        } => {}
    }
    let mut state = State {
        client: factory.client(),
        ingresses: factory.all::<Ingress>().store(),
        secrets: factory.all::<Secret>().store(),
        recorder: EventRecorder::new(factory.client(), COMPONENT, "", CorrelatorOptions::default()),
        config,
        published,
        loaded: HashMap::new(),
        reported: HashSet::new(),
        synced: HashMap::new(),
    };
    loop {
        let retry = state.sync(&builder).await;
        let wait = async {
            match retry {
                // A status write failed: try again even if nothing changes.
                true => tokio::time::sleep(Duration::from_secs(1)).await,
                false => changed.notified().await,
            }
        };
        tokio::select! {
            () = &mut stop => return,
            () = wait => {}
        }
        // After a change, not at once (unlike the DNS index and the proxy's rules, paced by
        // `MinInterval`): the objects of one `kubectl apply` arrive a millisecond or two apart,
        // and an Ingress built before its Service or Secret would get a Warning event for a
        // state that lasted a millisecond.
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(state.config.min_rebuild) => {}
        }
    }
}

struct State {
    client: kube::Client,
    ingresses: Store<Ingress>,
    secrets: Store<Secret>,
    recorder: EventRecorder,
    config: ControllerConfig,
    published: Published,
    /// Certificates parsed, by Secret and its resourceVersion (an unchanged Secret is not parsed
    /// again); `Err` holds why it is not served.
    loaded: HashMap<SecretRef, (String, Result<Arc<CertifiedKey>, String>)>,
    /// Problems already reported (an event per new problem, not per build).
    reported: HashSet<(String, String, String, String)>,
    /// The generation of each served Ingress last announced with a `Sync` event.
    synced: HashMap<ObjectKey, i64>,
}

impl State {
    /// One build: the table and certificates swapped in, problems reported, statuses written.
    /// Returns whether something must be retried.
    async fn sync(&mut self, builder: &Mutex<RouteTableBuilder>) -> bool {
        let (compiled, served) = {
            let builder = builder.lock().unwrap_or_else(PoisonError::into_inner);
            let served: Vec<ObjectKey> = builder.served().map(|(ns, name)| ObjectKey::new(ns, name)).collect();
            (builder.build(), served)
        };
        let certificates = self.certificates(&compiled.table);
        self.published.certificates.store(Arc::new(certificates));
        self.published.routes.store(Arc::new(compiled.table));
        self.announce(&served);
        self.report(&compiled.problems);
        let mut retry = false;
        for key in &served {
            retry |= !self.write_status(key).await;
        }
        retry
    }

    /// The certificates of the Secrets the table names; one that does not parse is reported on
    /// the Ingresses that name it and left out (its hosts get the default certificate).
    fn certificates(&mut self, table: &RouteTable) -> Certificates {
        let wanted: HashSet<SecretRef> = table.secrets().cloned().collect();
        self.loaded.retain(|secret, _| wanted.contains(secret));
        let default = self.published.certificates.load().default_certificate().clone();
        let mut certificates = Certificates::new(default);
        for secret_ref in wanted {
            let object = self.secrets.get(&ObjectRef::new(&secret_ref.name).within(&secret_ref.namespace));
            let Some(object) = object else { continue };
            let version = object.metadata.resource_version.clone().unwrap_or_default();
            let fresh = self.loaded.get(&secret_ref).is_none_or(|(seen, _)| *seen != version);
            if fresh {
                let parsed = certified_key_from_secret(&object);
                if let Err(error) = &parsed {
                    self.invalid_secret(&secret_ref, error);
                }
                self.loaded.insert(secret_ref.clone(), (version, parsed));
            }
            if let Some((_, Ok(key))) = self.loaded.get(&secret_ref) {
                certificates.insert(secret_ref.clone(), key.clone());
            }
        }
        certificates
    }

    /// A Warning on every served Ingress whose `tls` names `secret`.
    fn invalid_secret(&self, secret: &SecretRef, error: &str) {
        for ingress in self.ingresses.state() {
            let names_it = ingress.metadata.namespace.as_deref() == Some(secret.namespace.as_str())
                && ingress
                    .spec
                    .as_ref()
                    .and_then(|s| s.tls.as_ref())
                    .is_some_and(|tls| tls.iter().any(|t| t.secret_name.as_deref() == Some(secret.name.as_str())));
            if names_it {
                let message = format!("Secret {secret} is not a valid TLS certificate: {error}");
                self.recorder.record(ingress.as_ref(), None, "Warning", "InvalidSecret", &message);
            }
        }
    }

    /// A `Sync` event for each served Ingress that is new or changed, as ingress-nginx records.
    fn announce(&mut self, served: &[ObjectKey]) {
        let current: HashSet<&ObjectKey> = served.iter().collect();
        self.synced.retain(|key, _| current.contains(key));
        for key in served {
            let Some(ingress) = self.ingresses.get(&key.object_ref()) else { continue };
            let generation = ingress.metadata.generation.unwrap_or_default();
            if self.synced.insert(key.clone(), generation) != Some(generation) {
                self.recorder.record(ingress.as_ref(), None, "Normal", "Sync", "Scheduled for sync");
            }
        }
    }

    /// A Warning event for each problem not reported before; a problem that went away may be
    /// reported again if it comes back.
    fn report(&mut self, problems: &[Problem]) {
        let now: HashSet<(String, String, String, String)> = problems
            .iter()
            .map(|p| {
                let source = &p.source;
                (source.namespace.clone(), source.name.clone(), p.reason.as_str().to_string(), p.message.clone())
            })
            .collect();
        for problem in now.difference(&self.reported) {
            let (namespace, name, reason, message) = problem;
            let key = ObjectKey::new(namespace.as_str(), name.as_str());
            if let Some(ingress) = self.ingresses.get(&key.object_ref()) {
                self.recorder.record(ingress.as_ref(), None, "Warning", reason, message);
            }
        }
        self.reported = now;
    }

    /// Writes `status.loadBalancer.ingress` when it differs from our address; `false` if the
    /// write failed.
    async fn write_status(&self, key: &ObjectKey) -> bool {
        let Some(ingress) = self.ingresses.get(&key.object_ref()) else { return true };
        let wanted: Vec<BTreeMap<&str, String>> =
            self.config.status_address.iter().map(|ip| BTreeMap::from([("ip", ip.to_string())])).collect();
        let current = ingress.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
        let current: Vec<BTreeMap<&str, String>> = current
            .map(|list| list.iter().map(|i| i.ip.iter().map(|ip| ("ip", ip.clone())).collect()).collect())
            .unwrap_or_default();
        if current == wanted {
            return true;
        }
        let api = Api::<Ingress>::namespaced(self.client.clone(), &key.namespace);
        let body = json!({"status": {"loadBalancer": {"ingress": wanted}}});
        match api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(_) => true,
            Err(error) if frontdoor_informers::errors::is_not_found(&error) => true,
            Err(error) => {
                tracing::warn!(%error, ingress = %key, "cannot write the Ingress status; retrying");
                false
            }
        }
    }
}
