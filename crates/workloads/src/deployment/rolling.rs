//! RollingUpdate (upstream's `rolling.go`): grow the new ReplicaSet within maxSurge, shrink the
//! old ones within maxUnavailable, unhealthy old replicas first.

use super::rollout::{available_replicas, spec_replicas, Rollout};
use k8s_openapi::api::apps::v1::ReplicaSet;
use std::cmp::Ordering;

pub fn rollout(r: &mut Rollout<'_>) {
    let new = r.sync_revision(true);
    let Some(new) = new else {
        r.sync_rollout_status(None);
        return;
    };
    if reconcile_new(r, new) {
        r.sync_rollout_status(Some(new));
        return;
    }
    let olds: Vec<usize> = r.olds(Some(new)).into_iter().filter(|i| spec_replicas(&r.replica_sets[*i]) > 0).collect();
    if reconcile_old(r, new, &olds) {
        r.sync_rollout_status(Some(new));
        return;
    }
    if r.stored_status_complete() {
        let all_olds = r.olds(Some(new));
        r.cleanup(&all_olds);
    }
    r.sync_rollout_status(Some(new));
}

/// Scale the new ReplicaSet up as far as maxSurge allows (or down to the Deployment's size).
fn reconcile_new(r: &mut Rollout<'_>, new: usize) -> bool {
    let replicas = r.settings.replicas;
    let current = spec_replicas(&r.replica_sets[new]);
    if current == replicas {
        return false;
    }
    if current > replicas {
        return r.scale_replica_set_to(new, replicas);
    }
    let target = r.new_rs_new_replicas(new);
    r.scale_replica_set_to(new, target)
}

fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(a).cmp(&created(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Scale old ReplicaSets down as far as maxUnavailable allows (upstream's
/// `reconcileOldReplicaSets`).
fn reconcile_old(r: &mut Rollout<'_>, new: usize, olds: &[usize]) -> bool {
    let old_count: i32 = olds.iter().map(|i| spec_replicas(&r.replica_sets[*i])).sum();
    if old_count == 0 {
        return false;
    }
    let all_count: i32 = r.replica_sets.iter().map(spec_replicas).sum();
    let min_available = r.settings.replicas - r.settings.max_unavailable();
    let new_rs = &r.replica_sets[new];
    let new_unavailable = spec_replicas(new_rs) - available_replicas(new_rs);
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return false;
    }
    let mut olds = olds.to_vec();
    olds.sort_by(|a, b| by_creation(&r.replica_sets[*a], &r.replica_sets[*b]));
    let cleaned = cleanup_unhealthy(r, &olds, max_scaled_down);
    let scaled = scale_down_old(r, &olds);
    cleaned + scaled > 0
}

/// Remove old replicas that are not available first, oldest ReplicaSet first.
fn cleanup_unhealthy(r: &mut Rollout<'_>, olds: &[usize], max_cleanup: i32) -> i32 {
    let mut total = 0;
    for &index in olds {
        if total >= max_cleanup {
            break;
        }
        let rs = &r.replica_sets[index];
        let (replicas, available) = (spec_replicas(rs), available_replicas(rs));
        if replicas == 0 || replicas == available {
            continue;
        }
        let count = (max_cleanup - total).min(replicas - available);
        r.scale_replica_set_to(index, replicas - count);
        total += count;
    }
    total
}

/// Scale old ReplicaSets down while availability stays at or above the minimum.
fn scale_down_old(r: &mut Rollout<'_>, olds: &[usize]) -> i32 {
    let min_available = r.settings.replicas - r.settings.max_unavailable();
    let available: i32 = r.replica_sets.iter().map(available_replicas).sum();
    if available <= min_available {
        return 0;
    }
    let to_scale_down = available - min_available;
    let mut total = 0;
    for &index in olds {
        if total >= to_scale_down {
            break;
        }
        let replicas = spec_replicas(&r.replica_sets[index]);
        if replicas == 0 {
            continue;
        }
        let count = replicas.min(to_scale_down - total);
        r.scale_replica_set_to(index, replicas - count);
        total += count;
    }
    total
}
