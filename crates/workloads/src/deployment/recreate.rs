//! Recreate (upstream's `recreate.go`): scale every old ReplicaSet to zero, wait until none of
//! their pods is left running, then create or scale up the new one.

use super::rollout::{spec_replicas, Rollout};

pub fn rollout(r: &mut Rollout<'_>) {
    let mut new = r.sync_revision(false);
    let active_olds: Vec<usize> = r.olds(new).into_iter().filter(|i| spec_replicas(&r.replica_sets[*i]) > 0).collect();
    let mut scaled_down = false;
    for index in active_olds {
        scaled_down |= r.scale_replica_set_to(index, 0);
    }
    if scaled_down || old_pods_running(r, new) {
        r.sync_rollout_status(new);
        return;
    }
    if new.is_none() {
        new = r.sync_revision(true);
    }
    if let Some(index) = new {
        let replicas = r.settings.replicas;
        r.scale_replica_set_to(index, replicas);
    }
    if r.stored_status_complete() {
        let olds = r.olds(new);
        r.cleanup(&olds);
    }
    r.sync_rollout_status(new);
}

/// Any old ReplicaSet still reports replicas, or any of its pods has not finished.
fn old_pods_running(r: &Rollout<'_>, new: Option<usize>) -> bool {
    let olds = r.olds(new);
    if olds.iter().map(|i| r.replica_sets[*i].status.as_ref().map(|s| s.replicas).unwrap_or(0)).sum::<i32>() > 0 {
        return true;
    }
    let new_uid = new.and_then(|i| r.replica_sets[i].metadata.uid.clone());
    r.pods_by_replica_set
        .iter()
        .filter(|(uid, _)| Some(*uid) != new_uid.as_ref())
        .any(|(_, pods)| pods.iter().any(|p| !matches!(crate::pods::phase(p), "Failed" | "Succeeded")))
}
