//! Deployments: one ReplicaSet per pod template, rolled from old to new.
//!
//! The pure core takes a Deployment, the ReplicaSets it owns and (for Recreate) their pods, and
//! returns a [`Plan`]: the ReplicaSet writes to make, in order, and the status to write after
//! them. It follows upstream's `syncDeployment` step by step — paused and scaling events
//! ([`rollout::Rollout::sync`]), RollingUpdate ([`rolling`]), Recreate ([`recreate`]), history
//! cleanup, and the Available/Progressing conditions ([`status`]) `kubectl rollout status`
//! reads. [`controller`] runs plans against the API.
//!
//! `kubectl rollout undo` needs nothing here: kubectl copies an old ReplicaSet's template into
//! the Deployment, and the controller then finds that ReplicaSet as the new one and gives it
//! the next revision (recording the old one in `revision-history`).

pub mod annotations;
pub mod controller;
pub mod recreate;
pub mod rolling;
pub mod rollout;
pub mod settings;
pub mod status;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use std::collections::HashMap;
use std::time::Duration;

/// The label (and selector term) that ties a ReplicaSet and its pods to one template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// One write the controller makes, in order; the next only after the previous succeeded.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create the new ReplicaSet (named `<deployment>-<hash>`).
    CreateReplicaSet(ReplicaSet),
    /// Set a ReplicaSet's replicas, minReadySeconds and annotations (as in `replica_set`,
    /// updating the object whose resourceVersion it carries).
    UpdateReplicaSet(ReplicaSet),
    /// Delete an old ReplicaSet (history cleanup).
    DeleteReplicaSet { name: String, uid: String },
    /// Set the Deployment's `deployment.kubernetes.io/revision` annotation.
    SetDeploymentRevision(String),
}

/// What one sync does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// The status after the actions (written if it differs from the stored one).
    pub status: Option<DeploymentStatus>,
    /// Look again after this long (progress deadline, availability) without any event.
    pub requeue_after: Option<Duration>,
}

/// The inputs of one sync.
pub struct SyncInput<'a> {
    pub deployment: &'a Deployment,
    /// The ReplicaSets this Deployment controls (after adoption and release).
    pub replica_sets: Vec<ReplicaSet>,
    /// Pods of those ReplicaSets by ReplicaSet UID (Recreate waits for old pods to go).
    pub pods_by_replica_set: HashMap<String, Vec<&'a Pod>>,
    pub now: Timestamp,
}

/// Upstream's `syncDeployment` after listing and claiming.
pub fn plan(input: SyncInput<'_>) -> Plan {
    rollout::Rollout::new(input).sync()
}

#[cfg(test)]
mod tests;
