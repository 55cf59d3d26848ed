//! The working model of one Deployment sync: copies of its ReplicaSets that each step updates
//! in memory while recording the matching API write, so later steps see earlier ones (as
//! upstream's sync sees the objects its updates returned).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Duration;

use super::annotations::{self, equal_ignore_hash, max_revision, set_new_replica_set_annotations, REVISION};
use super::settings::{scaled_value, Settings, Strategy};
use super::status::{
    self, condition, get_condition, set_condition, FOUND_NEW_REPLICA_SET, NEW_REPLICA_SET_CREATED, PROGRESSING,
};
use super::{Action, Plan, SyncInput, POD_TEMPLATE_HASH};
use crate::hash::template_hash;
use crate::pods::controller_ref;

pub struct Rollout<'a> {
    pub deployment: &'a Deployment,
    pub settings: Settings,
    pub replica_sets: Vec<ReplicaSet>,
    pub pods_by_replica_set: HashMap<String, Vec<&'a Pod>>,
    /// The status as this sync has amended it (conditions set on the way).
    pub status: DeploymentStatus,
    pub now: Timestamp,
    actions: Vec<Action>,
    final_status: Option<DeploymentStatus>,
    requeue_after: Option<Duration>,
    deployment_revision: Option<String>,
}

pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

pub fn available_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

/// Oldest first, then by name (upstream's `ReplicaSetsByCreationTimestamp`).
fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(a).cmp(&created(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

impl<'a> Rollout<'a> {
    pub fn new(input: SyncInput<'a>) -> Rollout<'a> {
        let deployment = input.deployment;
        Rollout {
            deployment,
            settings: Settings::of(deployment),
            replica_sets: input.replica_sets,
            pods_by_replica_set: input.pods_by_replica_set,
            status: deployment.status.clone().unwrap_or_default(),
            now: input.now,
            actions: Vec::new(),
            final_status: None,
            requeue_after: None,
            deployment_revision: deployment.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).cloned(),
        }
    }

    fn into_plan(self) -> Plan {
        Plan { actions: self.actions, status: self.final_status, requeue_after: self.requeue_after }
    }

    /// Upstream's `syncDeployment` from the paused check on.
    pub fn sync(mut self) -> Plan {
        if self.deployment.metadata.deletion_timestamp.is_some() {
            let new = self.sync_revision(false);
            self.sync_status(new);
            return self.into_plan();
        }
        status::paused_conditions(&self.settings, &mut self.status, self.now);
        if self.settings.paused || self.is_scaling_event() {
            self.scale_and_sync_status();
            return self.into_plan();
        }
        match self.settings.strategy {
            Strategy::Recreate => super::recreate::rollout(&mut self),
            Strategy::RollingUpdate { .. } => super::rolling::rollout(&mut self),
        }
        self.into_plan()
    }

    // ---- finding and creating the new ReplicaSet ----

    fn template(&self) -> k8s_openapi::api::core::v1::PodTemplateSpec {
        self.deployment.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default()
    }

    /// The oldest ReplicaSet whose template is the Deployment's (upstream's `FindNewReplicaSet`).
    pub fn find_new(&self) -> Option<usize> {
        let template = self.template();
        let mut indices: Vec<usize> = (0..self.replica_sets.len()).collect();
        indices.sort_by(|a, b| by_creation(&self.replica_sets[*a], &self.replica_sets[*b]));
        indices.into_iter().find(|i| {
            self.replica_sets[*i]
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, &template))
        })
    }

    pub fn olds(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.replica_sets.len()).filter(|i| Some(*i) != new).collect()
    }

    pub fn all(&self) -> Vec<usize> {
        (0..self.replica_sets.len()).collect()
    }

    fn max_total(&self) -> i32 {
        self.settings.replicas + self.settings.max_surge()
    }

    /// Upstream's `getAllReplicaSetsAndSyncRevision`/`getNewReplicaSet`: bring the new
    /// ReplicaSet's annotations and the Deployment's revision up to date, creating the new
    /// ReplicaSet if asked to.
    pub fn sync_revision(&mut self, create: bool) -> Option<usize> {
        let new = self.find_new();
        let olds: Vec<&ReplicaSet> = self.olds(new).into_iter().map(|i| &self.replica_sets[i]).collect();
        let new_revision = max_revision(&olds) + 1;
        let (desired, max) = (self.settings.replicas, self.max_total());
        if let Some(index) = new {
            let mut copy = self.replica_sets[index].clone();
            let annotations_changed =
                set_new_replica_set_annotations(self.deployment, &mut copy, new_revision, true, desired, max);
            let spec = copy.spec.get_or_insert_with(Default::default);
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != self.settings.min_ready_seconds;
            if annotations_changed || min_ready_changed {
                spec.min_ready_seconds = Some(self.settings.min_ready_seconds);
                self.replica_sets[index] = copy.clone();
                self.actions.push(Action::UpdateReplicaSet(copy));
                return new;
            }
            if let Some(revision) = copy.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).cloned() {
                self.set_deployment_revision(revision);
            }
            if self.settings.progress_deadline_seconds.is_some() && get_condition(&self.status, PROGRESSING).is_none() {
                let message = format!("Found new replica set {:?}", copy.metadata.name.clone().unwrap_or_default());
                set_condition(
                    &mut self.status,
                    condition(PROGRESSING, "True", FOUND_NEW_REPLICA_SET, message, self.now),
                );
            }
            return new;
        }
        if !create {
            return None;
        }
        let mut rs = self.new_replica_set();
        let index = self.replica_sets.len();
        self.replica_sets.push(rs.clone());
        let replicas = self.new_rs_new_replicas(index);
        rs.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
        set_new_replica_set_annotations(self.deployment, &mut rs, new_revision, false, desired, max);
        self.replica_sets[index] = rs.clone();
        let name = rs.metadata.name.clone().unwrap_or_default();
        self.actions.push(Action::CreateReplicaSet(rs));
        self.set_deployment_revision(new_revision.to_string());
        if self.settings.progress_deadline_seconds.is_some() {
            let message = format!("Created new replica set {name:?}");
            set_condition(&mut self.status, condition(PROGRESSING, "True", NEW_REPLICA_SET_CREATED, message, self.now));
        }
        Some(index)
    }

    fn set_deployment_revision(&mut self, revision: String) {
        if self.deployment_revision.as_ref() != Some(&revision) {
            self.deployment_revision = Some(revision.clone());
            self.actions.push(Action::SetDeploymentRevision(revision));
        }
    }

    /// `<deployment>-<hash>` with the hash in its labels, selector and template labels.
    fn new_replica_set(&self) -> ReplicaSet {
        let deployment = self.deployment;
        let mut template = self.template();
        let hash = template_hash(&template, self.status.collision_count);
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector: LabelSelector = deployment.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        selector.match_labels.get_or_insert_with(Default::default).insert(POD_TEMPLATE_HASH.into(), hash.clone());
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", deployment.metadata.name.clone().unwrap_or_default())),
                namespace: deployment.metadata.namespace.clone(),
                owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &deployment.metadata)]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: Some(self.settings.min_ready_seconds),
                selector,
                template: Some(template),
            }),
            status: None,
        }
    }

    /// How big the new ReplicaSet may be now (upstream's `NewRSNewReplicas`).
    pub fn new_rs_new_replicas(&self, new: usize) -> i32 {
        let current = spec_replicas(&self.replica_sets[new]);
        match &self.settings.strategy {
            Strategy::Recreate => self.settings.replicas,
            Strategy::RollingUpdate { max_surge, .. } => {
                let surge = scaled_value(max_surge, self.settings.replicas, true);
                let total: i32 = self.replica_sets.iter().map(spec_replicas).sum();
                let max_total = self.settings.replicas + surge;
                if total >= max_total {
                    return current;
                }
                current + (max_total - total).min(self.settings.replicas - current)
            }
        }
    }

    // ---- scaling ----

    /// Upstream's `scaleReplicaSet`: size and replicas annotations; true if the size changed.
    pub fn scale_replica_set(&mut self, index: usize, new_scale: i32) -> bool {
        let (desired, max) = (self.settings.replicas, self.max_total());
        let rs = &self.replica_sets[index];
        let size_changes = spec_replicas(rs) != new_scale;
        if size_changes || annotations::replicas_annotations_need_update(rs, desired, max) {
            let mut copy = rs.clone();
            copy.spec.get_or_insert_with(Default::default).replicas = Some(new_scale);
            annotations::set_replicas_annotations(&mut copy, desired, max);
            self.replica_sets[index] = copy.clone();
            self.actions.push(Action::UpdateReplicaSet(copy));
        }
        size_changes
    }

    /// Upstream's `scaleReplicaSetAndRecordEvent`: nothing if the size is already right.
    pub fn scale_replica_set_to(&mut self, index: usize, new_scale: i32) -> bool {
        if spec_replicas(&self.replica_sets[index]) == new_scale {
            return false;
        }
        self.scale_replica_set(index, new_scale)
    }

    fn is_scaling_event(&mut self) -> bool {
        let _ = self.sync_revision(false);
        self.replica_sets
            .iter()
            .filter(|rs| spec_replicas(rs) > 0)
            .any(|rs| annotations::desired_replicas(rs).is_some_and(|d| d != self.settings.replicas))
    }

    /// Upstream's `sync`: scale, clean up if paused, write status.
    fn scale_and_sync_status(&mut self) {
        let new = self.sync_revision(false);
        let olds = self.olds(new);
        self.scale(new, &olds);
        if self.settings.paused {
            self.cleanup(&olds);
        }
        self.sync_status(new);
    }

    fn find_active_or_latest(&self, new: Option<usize>, olds: &[usize]) -> Option<usize> {
        if new.is_none() && olds.is_empty() {
            return None;
        }
        let mut olds = olds.to_vec();
        olds.sort_by(|a, b| by_creation(&self.replica_sets[*b], &self.replica_sets[*a]));
        let active: Vec<usize> =
            olds.iter().copied().chain(new).filter(|i| spec_replicas(&self.replica_sets[*i]) > 0).collect();
        match active.len() {
            0 => new.or(olds.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    fn is_saturated(&self, new: Option<usize>) -> bool {
        let Some(rs) = new.map(|i| &self.replica_sets[i]) else { return false };
        let replicas = self.settings.replicas;
        annotations::desired_replicas(rs) == Some(replicas)
            && spec_replicas(rs) == replicas
            && available_replicas(rs) == replicas
    }

    /// Upstream's `scale`: the only active ReplicaSet takes the whole size; a saturated new one
    /// drains the old; otherwise (rolling) every active one changes in proportion.
    pub fn scale(&mut self, new: Option<usize>, olds: &[usize]) {
        let replicas = self.settings.replicas;
        if let Some(index) = self.find_active_or_latest(new, olds) {
            if spec_replicas(&self.replica_sets[index]) != replicas {
                self.scale_replica_set_to(index, replicas);
            }
            return;
        }
        if self.is_saturated(new) {
            for index in olds.iter().copied().filter(|i| spec_replicas(&self.replica_sets[*i]) > 0).collect::<Vec<_>>()
            {
                self.scale_replica_set_to(index, 0);
            }
            return;
        }
        if !self.settings.is_rolling_update() {
            return;
        }
        let mut active: Vec<usize> =
            olds.iter().copied().chain(new).filter(|i| spec_replicas(&self.replica_sets[*i]) > 0).collect();
        let current: i32 = active.iter().map(|i| spec_replicas(&self.replica_sets[*i])).sum();
        let allowed = if replicas > 0 { self.max_total() } else { 0 };
        let to_add = allowed - current;
        let rss = &self.replica_sets;
        match to_add.cmp(&0) {
            Ordering::Greater => active.sort_by(|a, b| {
                spec_replicas(&rss[*b]).cmp(&spec_replicas(&rss[*a])).then_with(|| by_creation(&rss[*b], &rss[*a]))
            }),
            Ordering::Less => active.sort_by(|a, b| {
                spec_replicas(&rss[*b]).cmp(&spec_replicas(&rss[*a])).then_with(|| by_creation(&rss[*a], &rss[*b]))
            }),
            Ordering::Equal => {}
        }
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::new();
        for index in &active {
            let size = spec_replicas(&self.replica_sets[*index]);
            if to_add != 0 {
                let proportion = self.proportion(*index, to_add, added);
                sizes.push(size + proportion);
                added += proportion;
            } else {
                sizes.push(size);
            }
        }
        for (position, index) in active.iter().enumerate() {
            if position == 0 && to_add != 0 {
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            self.scale_replica_set(*index, sizes[position]);
        }
    }

    /// Upstream's `GetProportion`.
    fn proportion(&self, index: usize, to_add: i32, added: i32) -> i32 {
        let rs = &self.replica_sets[index];
        if spec_replicas(rs) == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(rs);
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// Upstream's `getReplicaSetFraction`: the ReplicaSet's share of the new maximum, by the
    /// maximum recorded when it was last scaled.
    fn fraction(&self, rs: &ReplicaSet) -> i32 {
        if self.settings.replicas == 0 {
            return -spec_replicas(rs);
        }
        let max_now = self.max_total();
        let before = match annotations::max_replicas(rs) {
            Some(n) if n != 0 => n,
            _ => self.deployment.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        };
        if before == 0 {
            return 0;
        }
        let size = f64::from(spec_replicas(rs)) * f64::from(max_now) / f64::from(before);
        size.round() as i32 - spec_replicas(rs)
    }

    // ---- history ----

    /// Upstream's `cleanupDeployment`: delete the oldest revisions beyond the history limit,
    /// only those fully scaled down and observed so.
    pub fn cleanup(&mut self, olds: &[usize]) {
        let Some(limit) = self.settings.revision_history_limit else { return };
        let mut cleanable: Vec<usize> =
            olds.iter().copied().filter(|i| self.replica_sets[*i].metadata.deletion_timestamp.is_none()).collect();
        let excess = cleanable.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return;
        }
        let rss = &self.replica_sets;
        cleanable.sort_by(|a, b| {
            let revision = |i: usize| annotations::revision(&rss[i]).unwrap_or(0);
            revision(*a).cmp(&revision(*b)).then_with(|| by_creation(&rss[*a], &rss[*b]))
        });
        for index in cleanable.into_iter().take(excess as usize) {
            let rs = &self.replica_sets[index];
            let status = rs.status.clone().unwrap_or_default();
            if status.replicas != 0
                || spec_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0)
            {
                continue;
            }
            self.actions.push(Action::DeleteReplicaSet {
                name: rs.metadata.name.clone().unwrap_or_default(),
                uid: rs.metadata.uid.clone().unwrap_or_default(),
            });
        }
    }

    // ---- status ----

    pub fn stored_status_complete(&self) -> bool {
        status::complete(self.deployment, &self.settings, &self.deployment.status.clone().unwrap_or_default())
    }

    /// Upstream's `syncDeploymentStatus`.
    fn sync_status(&mut self, new: Option<usize>) {
        let all: Vec<&ReplicaSet> = self.replica_sets.iter().collect();
        let new = new.map(|i| &self.replica_sets[i]);
        self.final_status = Some(status::calculate(self.deployment, &self.settings, &self.status, &all, new, self.now));
    }

    /// Upstream's `syncRolloutStatus` (plus its stuck-deployment requeue).
    pub fn sync_rollout_status(&mut self, new: Option<usize>) {
        let all: Vec<&ReplicaSet> = self.replica_sets.iter().collect();
        let new = new.map(|i| &self.replica_sets[i]);
        let status = status::rollout_status(self.deployment, &self.settings, &all, new, self.now, &self.status);
        self.requeue_after = status::stuck_recheck(self.deployment, &self.settings, &status, self.now);
        self.final_status = Some(status);
    }
}
