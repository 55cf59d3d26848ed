//! Deployment status and conditions (upstream's `calculateStatus`, `syncRolloutStatus` and the
//! condition helpers of `deployment_util.go`): what `kubectl rollout status` waits on.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

use super::settings::Settings;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_REPLICA_SET: &str = "FoundNewReplicaSet";
pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
pub const REPLICA_SET_CREATE_ERROR: &str = "ReplicaSetCreateError";
pub const DEPLOYMENT_PAUSED: &str = "DeploymentPaused";
pub const DEPLOYMENT_RESUMED: &str = "DeploymentResumed";

pub fn condition(type_: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn get_condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.iter().flatten().find(|c| c.type_ == type_)
}

/// Upstream's `SetDeploymentCondition`: no change if status and reason are the same; the
/// transition time is kept while the status stays the same.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_.clone());
    status.conditions.get_or_insert_with(Vec::new).push(condition);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// Upstream's `calculateStatus` over all ReplicaSets (`new` among them).
pub fn calculate(
    deployment: &Deployment,
    settings: &Settings,
    current: &DeploymentStatus,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let status_of = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let available: i32 = all.iter().map(|rs| status_of(rs).available_replicas.unwrap_or(0)).sum();
    let total: i32 = all.iter().map(|rs| spec_replicas(rs)).sum();
    let actual: i32 = all.iter().map(|rs| status_of(rs).replicas).sum();
    let ready: i32 = all.iter().map(|rs| status_of(rs).ready_replicas.unwrap_or(0)).sum();
    let updated: i32 = new.map(|rs| status_of(rs).replicas).unwrap_or(0);
    let unavailable = (total - available).max(0);
    let some = |n: i32| (n != 0).then_some(n);
    let mut status = DeploymentStatus {
        observed_generation: deployment.metadata.generation,
        replicas: some(actual),
        updated_replicas: some(updated),
        ready_replicas: some(ready),
        available_replicas: some(available),
        unavailable_replicas: some(unavailable),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        ..Default::default()
    };
    if available >= settings.replicas - settings.max_unavailable() {
        set_condition(
            &mut status,
            condition(
                AVAILABLE,
                "True",
                MINIMUM_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            condition(
                AVAILABLE,
                "False",
                MINIMUM_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    status
}

/// All replicas updated, present and available for the current generation.
pub fn complete(deployment: &Deployment, settings: &Settings, status: &DeploymentStatus) -> bool {
    let replicas = settings.replicas;
    status.updated_replicas.unwrap_or(0) == replicas
        && status.replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
        && status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0)
}

/// Any sign of progress between the stored status and `new`.
pub fn progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let old_old_replicas = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old_replicas = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old_replicas < old_old_replicas
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

/// No progress for longer than the deadline since the Progressing condition last changed.
pub fn timed_out(settings: &Settings, status: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = settings.progress_deadline_seconds else { return false };
    let Some(condition) = get_condition(status, PROGRESSING) else { return false };
    match condition.reason.as_deref() {
        Some(NEW_REPLICA_SET_AVAILABLE) => false,
        Some(PROGRESS_DEADLINE_EXCEEDED) => true,
        _ => condition
            .last_update_time
            .as_ref()
            .is_some_and(|from| from.0.as_second() + i64::from(deadline) < now.as_second()),
    }
}

/// Upstream's `syncRolloutStatus`: status plus Progressing and ReplicaFailure conditions.
/// `current` is the status as this sync has amended it so far (conditions set on the way).
pub fn rollout_status(
    deployment: &Deployment,
    settings: &Settings,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
    current: &DeploymentStatus,
) -> DeploymentStatus {
    let mut status = calculate(deployment, settings, current, all, new, now);
    if settings.progress_deadline_seconds.is_none() {
        remove_condition(&mut status, PROGRESSING);
    }
    let current_progressing = get_condition(current, PROGRESSING).cloned();
    let complete_already = status.replicas == status.updated_replicas
        && current_progressing.as_ref().is_some_and(|c| c.reason.as_deref() == Some(NEW_REPLICA_SET_AVAILABLE));
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let subject = |what: &str| match new {
        Some(rs) => format!("ReplicaSet {:?} {what}", rs.metadata.name.clone().unwrap_or_default()),
        None => format!("Deployment {name:?} {what}"),
    };
    if settings.progress_deadline_seconds.is_some() && !complete_already {
        if complete(deployment, settings, &status) {
            set_condition(
                &mut status,
                condition(PROGRESSING, "True", NEW_REPLICA_SET_AVAILABLE, subject("has successfully progressed."), now),
            );
        } else if progressing(current, &status) {
            let mut progress = condition(PROGRESSING, "True", REPLICA_SET_UPDATED, subject("is progressing."), now);
            if let Some(current) = &current_progressing {
                if current.status == "True" {
                    progress.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, progress);
        } else if timed_out(settings, &status, now) {
            set_condition(
                &mut status,
                condition(PROGRESSING, "False", PROGRESS_DEADLINE_EXCEEDED, subject("has timed out progressing."), now),
            );
        }
    }
    match replica_failure(all, new) {
        Some(failure) => set_condition(&mut status, failure),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    status
}

/// The first ReplicaFailure condition of the new ReplicaSet, else of any ReplicaSet.
fn replica_failure(all: &[&ReplicaSet], new: Option<&ReplicaSet>) -> Option<DeploymentCondition> {
    let failure_of = |rs: &ReplicaSet| {
        rs.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == REPLICA_FAILURE))
            .map(|c| DeploymentCondition {
                type_: REPLICA_FAILURE.into(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: c.last_transition_time.clone(),
                last_update_time: c.last_transition_time.clone(),
            })
    };
    new.and_then(failure_of).or_else(|| all.iter().find_map(|rs| failure_of(rs)))
}

/// When to look again for a progress deadline (upstream's `requeueStuckDeployment`).
pub fn stuck_recheck(
    deployment: &Deployment,
    settings: &Settings,
    new_status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Duration> {
    let deadline = settings.progress_deadline_seconds?;
    let stored = deployment.status.clone().unwrap_or_default();
    let current = get_condition(&stored, PROGRESSING)?;
    if complete(deployment, settings, new_status) || current.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED) {
        return None;
    }
    let from = current.last_update_time.as_ref()?.0.as_second();
    let after = from + i64::from(deadline) - now.as_second() + 1;
    Some(Duration::from_secs(after.max(1) as u64))
}

/// Upstream's `checkPausedConditions`: Progressing Unknown/DeploymentPaused while paused,
/// DeploymentResumed when resumed; a timed-out rollout keeps its condition.
pub fn paused_conditions(settings: &Settings, status: &mut DeploymentStatus, now: Timestamp) {
    if settings.progress_deadline_seconds.is_none() {
        return;
    }
    let current = get_condition(status, PROGRESSING);
    let reason = current.and_then(|c| c.reason.as_deref());
    if reason == Some(PROGRESS_DEADLINE_EXCEEDED) {
        return;
    }
    let paused_exists = reason == Some(DEPLOYMENT_PAUSED);
    if settings.paused && !paused_exists {
        set_condition(status, condition(PROGRESSING, "Unknown", DEPLOYMENT_PAUSED, "Deployment is paused".into(), now));
    } else if !settings.paused && paused_exists {
        set_condition(
            status,
            condition(PROGRESSING, "Unknown", DEPLOYMENT_RESUMED, "Deployment is resumed".into(), now),
        );
    }
}
