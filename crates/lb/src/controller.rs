//! The controller: the shared Services informer feeds one work queue keyed by Service; each
//! reconcile asks the [`Allocator`] (under one lock) what the Service holds, follows the
//! allocator's effects (announce, withdraw, retry the waiting Services), then writes the
//! Service's `status.loadBalancer` if it differs and records an event.
//!
//! Before any reconcile, once the cache has synced, the allocator is seeded with the address
//! every Service of ours shows (oldest Service first), so a restart keeps every address and a
//! new Service cannot take one that an existing Service was not yet reconciled to keep.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use serde_json::json;

use frontdoor_informers::events::correlator::CorrelatorOptions;
use frontdoor_informers::{
    errors, on_change, services, Action, Backoff, Change, Controller, ControllerConfig, EventRecorder, InformerFactory,
    ObjectKey, Reconciler, WorkQueue,
};

use crate::allocator::{Allocator, Effect};
use crate::request::{self, status_ips};
use crate::{Announcer, Error, LbConfig, COMPONENT};

/// Runs the LoadBalancer controller on `factory`'s Services informer until its shutdown signal.
///
/// Returns an error only when it cannot start: `config` is invalid ([`LbConfig::validate`]) or
/// the API refuses to list Services. Once started, API errors are retried with backoff and never
/// end the run. On shutdown no new reconcile starts and those in flight finish.
pub async fn run(factory: InformerFactory, config: LbConfig) -> Result<(), Error> {
    config.validate()?;
    let client = factory.client();
    Api::<Service>::all(client.clone()).list_metadata(&ListParams::default().limit(1)).await.map_err(Error::Access)?;
    let shutdown = factory.shutdown();
    let services = factory.all::<Service>();
    let recorder = EventRecorder::new(client.clone(), COMPONENT, "", CorrelatorOptions::default());
    let lb = Arc::new(LbController {
        client,
        services: services.store(),
        recorder,
        class: config.class,
        announcer: config.announcer,
        state: Mutex::new(State {
            allocator: Allocator::new(config.pools, config.internal_pools, config.node_address)
                .reserve(config.reserved_ports),
            pending: BTreeSet::new(),
        }),
        queue: OnceLock::new(),
        allocated: Mutex::new(HashMap::new()),
    });
    let controller = Controller::new(
        &factory,
        lb.clone(),
        ControllerConfig {
            name: "service_lb",
            workers: 2,
            backoff: Backoff { min: Duration::from_millis(5), max: Duration::from_secs(60) },
        },
    );
    let queue = controller.queue();
    let _ = lb.queue.set(queue.clone());
    on_change(services.subscribe(), &shutdown, move |change| {
        let key = match change {
            Change::Applied { new, .. } => ObjectKey::of(new.as_ref()),
            Change::Deleted(gone) => ObjectKey::of(gone.as_ref()),
        };
        queue.add(key);
    });
    let seeded = {
        let lb = lb.clone();
        let synced = services.synced();
        async move {
            synced.await;
            lb.seed();
        }
    };
    controller.run(seeded, shutdown).await;
    Ok(())
}

struct State {
    allocator: Allocator,
    /// Services refused an address: reconciled again whenever something is freed.
    pending: BTreeSet<ObjectKey>,
}

struct LbController {
    client: Client,
    services: Store<Service>,
    recorder: EventRecorder,
    class: String,
    announcer: Option<Arc<dyn Announcer>>,
    state: Mutex<State>,
    queue: OnceLock<Arc<WorkQueue<ObjectKey>>>,
    /// The address each Service (this incarnation of it: its uid) was last told it got: a
    /// reconcile that runs before the cache shows our own status write writes it again, but
    /// does not announce it twice.
    allocated: Mutex<HashMap<ObjectKey, (String, Ipv4Addr)>>,
}

/// What a reconcile writes.
#[derive(Debug)]
enum Plan {
    Nothing,
    /// Not (or no longer) a LoadBalancer: `status.loadBalancer` emptied.
    Clear,
    /// The status shows this address; `warning` for a request that could not be read while the
    /// Service keeps its address.
    Show {
        address: Ipv4Addr,
        warning: Option<String>,
    },
    /// No address: status emptied, `AllocationFailed` with this message.
    Pending(String),
}

#[derive(Debug, thiserror::Error)]
#[error("{verb} {object}: {source}")]
struct SyncError {
    verb: &'static str,
    object: ObjectKey,
    #[source]
    source: kube::Error,
}

impl LbController {
    /// A `type: LoadBalancer` Service of our class (or none).
    fn ours(&self, service: &Service) -> bool {
        let class = service.spec.as_ref().and_then(|s| s.load_balancer_class.as_deref());
        services::service_type(service) == "LoadBalancer" && class.is_none_or(|c| c == self.class)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Seeds the allocator from the Services' status, oldest first, and announces what is held.
    fn seed(&self) {
        let mut ours: Vec<Arc<Service>> = self.services.state().into_iter().filter(|s| self.ours(s)).collect();
        ours.sort_by(|a, b| {
            let created = |s: &Service| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a).cmp(&created(b)).then_with(|| ObjectKey::of(a.as_ref()).cmp(&ObjectKey::of(b.as_ref())))
        });
        let mut state = self.lock();
        let mut kept = 0;
        for service in &ours {
            let key = ObjectKey::of(service.as_ref());
            if state.allocator.seed(&key, &request::base(service)).is_some() {
                kept += 1;
            }
        }
        self.follow(&mut state, None);
        tracing::info!(services = ours.len(), kept, "load balancer: caches synced, assignments restored");
    }

    /// Carries out the allocator's effects; returns the keys to reconcile again.
    fn follow(&self, state: &mut State, current: Option<&ObjectKey>) -> Vec<ObjectKey> {
        let mut freed = false;
        for effect in state.allocator.take_effects() {
            match effect {
                Effect::Announce { address, internal } => {
                    tracing::debug!(%address, internal, "announcing load-balancer address");
                    if let Some(announcer) = &self.announcer {
                        announcer.announce(address, internal);
                    }
                }
                Effect::Withdraw(address) => {
                    tracing::debug!(%address, "withdrawing load-balancer address");
                    if let Some(announcer) = &self.announcer {
                        announcer.withdraw(address);
                    }
                }
                Effect::Freed => freed = true,
            }
        }
        if !freed {
            return Vec::new();
        }
        state.pending.iter().filter(|k| Some(*k) != current).cloned().collect()
    }

    /// Decides, under the lock, what `key` holds.
    fn decide(&self, state: &mut State, key: &ObjectKey, service: Option<&Service>) -> Plan {
        let Some(service) = service.filter(|s| self.ours(s)) else {
            state.pending.remove(key);
            if let Some(address) = state.allocator.release(key) {
                tracing::info!(service = %key, %address, "load-balancer address released");
            }
            // No longer a LoadBalancer: its status goes too. Another class's is not ours.
            let stale =
                service.is_some_and(|s| services::service_type(s) != "LoadBalancer" && !status_ips(s).is_empty());
            return if stale { Plan::Clear } else { Plan::Nothing };
        };
        let request = match request::request(service) {
            Ok(request) => request,
            Err(error) => {
                if let Some(holding) = state.allocator.holding(key) {
                    let address = holding.address;
                    let warning = format!("invalid requested loadbalancer IPs: {error}; keeping {address}");
                    return Plan::Show { address, warning: Some(warning) };
                }
                state.pending.insert(key.clone());
                return Plan::Pending(error.to_string());
            }
        };
        match state.allocator.assign(key, &request) {
            Ok(assignment) => {
                state.pending.remove(key);
                if !assignment.kept {
                    tracing::info!(service = %key, address = %assignment.address, "load-balancer address assigned");
                }
                Plan::Show { address: assignment.address, warning: None }
            }
            Err(refusal) => {
                state.pending.insert(key.clone());
                Plan::Pending(refusal.to_string())
            }
        }
    }

    async fn write_status(&self, service: &Service, address: Option<Ipv4Addr>) -> Result<(), SyncError> {
        let key = ObjectKey::of(service);
        let body = match address {
            Some(address) => json!({"status": {"loadBalancer": {"ingress": [{"ip": address.to_string()}]}}}),
            None => json!({"status": {"loadBalancer": {"ingress": null}}}),
        };
        let api: Api<Service> = Api::namespaced(self.client.clone(), &key.namespace);
        match api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(_) => Ok(()),
            // Deleted meanwhile: its deletion releases the address.
            Err(error) if errors::is_not_found(&error) => Ok(()),
            Err(source) => Err(SyncError { verb: "patch status of", object: key, source }),
        }
    }
}

impl Reconciler for LbController {
    type Key = ObjectKey;
    type Error = SyncError;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, SyncError> {
        let service = self.services.get(&key.object_ref());
        let (plan, again) = {
            let mut state = self.lock();
            let plan = self.decide(&mut state, key, service.as_deref());
            let again = self.follow(&mut state, Some(key));
            (plan, again)
        };
        if let Some(queue) = self.queue.get() {
            for waiting in again {
                queue.add(waiting);
            }
        }
        if service.is_none() || !matches!(plan, Plan::Show { .. }) {
            self.allocated.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        }
        let Some(service) = service else { return Ok(Action::Done) };
        let shown = status_ips(&service);
        match plan {
            Plan::Nothing => {}
            Plan::Clear => self.write_status(&service, None).await?,
            Plan::Show { address, warning } => {
                if let Some(warning) = warning {
                    self.recorder.record(service.as_ref(), None, "Warning", "LoadBalancerFailed", &warning);
                }
                if shown != [address.to_string()] {
                    self.write_status(&service, Some(address)).await?;
                    let told = (service.metadata.uid.clone().unwrap_or_default(), address);
                    let before =
                        self.allocated.lock().unwrap_or_else(PoisonError::into_inner).insert(key.clone(), told.clone());
                    if before != Some(told) {
                        let message = format!("Assigned IP [\"{address}\"]");
                        self.recorder.record(service.as_ref(), None, "Normal", "IPAllocated", &message);
                    }
                }
            }
            Plan::Pending(why) => {
                let message = format!("Failed to allocate IP for \"{key}\": {why}");
                self.recorder.record(service.as_ref(), None, "Warning", "AllocationFailed", &message);
                if !shown.is_empty() {
                    self.write_status(&service, None).await?;
                }
            }
        }
        Ok(Action::Done)
    }
}
