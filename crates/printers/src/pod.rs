//! The Pod printer (`printPod`): readiness, the aggregate status reason, restarts.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::descriptions::{self as d, string_column, wide_string_column, AGE_COLUMN, NAME_COLUMN};
use crate::util::{age_cell, array_at, get, i64_at, name_cell, since, str_at, time_at};
use crate::ColumnDefinition;

pub(crate) const COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    string_column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    string_column("Status", "The aggregate status of the containers in this pod."),
    string_column(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE_COLUMN,
    wide_string_column("IP", d::POD_STATUS_POD_IP),
    wide_string_column("Node", d::POD_SPEC_NODE_NAME),
    wide_string_column("Nominated Node", d::POD_STATUS_NOMINATED_NODE_NAME),
    wide_string_column("Readiness Gates", d::POD_SPEC_READINESS_GATES),
];

/// `status.reason` the node lifecycle controller sets on pods of an unreachable node.
const NODE_UNREACHABLE_POD_REASON: &str = "NodeLost";

pub(crate) fn row_conditions(pod: &Value) -> Vec<Value> {
    match str_at(pod, &["status", "phase"]) {
        "Succeeded" => vec![json!({
            "type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        })],
        "Failed" => vec![json!({
            "type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed.",
        })],
        _ => Vec::new(),
    }
}

pub(crate) fn cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let summary = summarize(pod);
    let restarts = match summary.last_restart {
        Some(at) if summary.restarts != 0 => {
            format!("{} ({} ago)", summary.restarts, since(Some(at), now))
        }
        _ => summary.restarts.to_string(),
    };
    vec![
        name_cell(pod),
        Value::from(format!("{}/{}", summary.ready, summary.total)),
        Value::from(summary.reason),
        Value::from(restarts),
        age_cell(pod, now),
        Value::from(pod_ip(pod)),
        Value::from(non_empty_or_none(str_at(pod, &["spec", "nodeName"]))),
        Value::from(non_empty_or_none(str_at(pod, &["status", "nominatedNodeName"]))),
        Value::from(readiness_gates(pod)),
    ]
}

/// What the Ready, Status and Restarts cells are computed from.
struct Summary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<DateTime<Utc>>,
}

/// Restart count and the latest `lastState.terminated.finishedAt` over some containers.
#[derive(Default)]
struct Restarts {
    count: i64,
    last: Option<DateTime<Utc>>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += i64_at(status, &["restartCount"]);
        if get(status, &["lastState", "terminated"]).is_some() {
            if let Some(finished) = time_at(status, &["lastState", "terminated", "finishedAt"]) {
                if self.last.is_none_or(|last| last < finished) {
                    self.last = Some(finished);
                }
            }
        }
    }
}

fn summarize(pod: &Value) -> Summary {
    let init_containers = array_at(pod, &["spec", "initContainers"]);
    let conditions = array_at(pod, &["status", "conditions"]);
    let phase = str_at(pod, &["status", "phase"]);
    let mut summary = Summary {
        ready: 0,
        // Sidecars (restartable init containers) count towards the total.
        total: array_at(pod, &["spec", "containers"]).len() + init_containers.iter().filter(|c| is_sidecar(c)).count(),
        reason: match str_at(pod, &["status", "reason"]) {
            "" => phase.to_string(),
            r => r.to_string(),
        },
        restarts: 0,
        last_restart: None,
    };
    if conditions.iter().any(|c| str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated")
    {
        summary.reason = "SchedulingGated".to_string();
    }

    let init = summary.scan_init_containers(pod, init_containers);
    let restarts = if !init.initializing || initialized_condition_true(conditions) {
        summary.scan_containers(pod, init.sidecar_restarts, conditions)
    } else {
        init.all_restarts
    };
    summary.restarts = restarts.count;
    summary.last_restart = restarts.last;

    if get(pod, &["metadata", "deletionTimestamp"]).is_some() {
        if str_at(pod, &["status", "reason"]) == NODE_UNREACHABLE_POD_REASON {
            summary.reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            summary.reason = "Terminating".to_string();
        }
    }
    summary
}

/// The outcome of walking the init container statuses.
struct InitScan {
    /// An init container is still running or failed; the reason is `Init:…`.
    initializing: bool,
    /// Restarts of every init container walked.
    all_restarts: Restarts,
    /// Restarts of the sidecars only (they keep counting once the pod is initialised).
    sidecar_restarts: Restarts,
}

impl Summary {
    /// Walks the init container statuses in order up to the first one still initialising.
    fn scan_init_containers(&mut self, pod: &Value, init_containers: &[Value]) -> InitScan {
        let mut scan =
            InitScan { initializing: false, all_restarts: Restarts::default(), sidecar_restarts: Restarts::default() };
        for (i, status) in array_at(pod, &["status", "initContainerStatuses"]).iter().enumerate() {
            scan.all_restarts.add(status);
            let name = str_at(status, &["name"]);
            let sidecar = init_containers.iter().find(|c| str_at(c, &["name"]) == name).is_some_and(is_sidecar);
            if sidecar {
                scan.sidecar_restarts.add(status);
            }
            let terminated = get(status, &["state", "terminated"]);
            if terminated.is_some_and(|t| i64_at(t, &["exitCode"]) == 0) {
                continue;
            }
            if sidecar && is_true(status, "started") {
                if is_true(status, "ready") {
                    self.ready += 1;
                }
                continue;
            }
            let waiting_reason = str_at(status, &["state", "waiting", "reason"]);
            self.reason = if let Some(t) = terminated {
                match str_at(t, &["reason"]) {
                    "" => exit_reason("Init:", t),
                    r => format!("Init:{r}"),
                }
            } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
                format!("Init:{waiting_reason}")
            } else {
                format!("Init:{i}/{}", init_containers.len())
            };
            scan.initializing = true;
            break;
        }
        scan
    }

    /// Walks the app container statuses (last to first, so the first container's state wins)
    /// and returns the restarts including the given sidecar restarts.
    fn scan_containers(&mut self, pod: &Value, mut restarts: Restarts, conditions: &[Value]) -> Restarts {
        let mut has_running = false;
        for status in array_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts.add(status);
            let waiting_reason = str_at(status, &["state", "waiting", "reason"]);
            if !waiting_reason.is_empty() {
                self.reason = waiting_reason.to_string();
            } else if let Some(t) = get(status, &["state", "terminated"]) {
                self.reason = match str_at(t, &["reason"]) {
                    "" => exit_reason("", t),
                    r => r.to_string(),
                };
            } else if is_true(status, "ready") && get(status, &["state", "running"]).is_some() {
                has_running = true;
                self.ready += 1;
            }
        }
        // Back to "Running" if a container still reports running after another completed.
        if self.reason == "Completed" && has_running {
            let reason = if ready_condition_true(conditions) { "Running" } else { "NotReady" };
            self.reason = reason.to_string();
        }
        restarts
    }
}

/// upstream `IsRestartableInitContainer`: an init container with `restartPolicy: Always`.
fn is_sidecar(init_container: &Value) -> bool {
    str_at(init_container, &["restartPolicy"]) == "Always"
}

/// Whether the boolean field `key` is present and true.
fn is_true(v: &Value, key: &str) -> bool {
    get(v, &[key]).and_then(Value::as_bool) == Some(true)
}

/// `Signal:N` / `ExitCode:N` for a terminated state without a reason.
fn exit_reason(prefix: &str, terminated: &Value) -> String {
    match i64_at(terminated, &["signal"]) {
        0 => format!("{prefix}ExitCode:{}", i64_at(terminated, &["exitCode"])),
        signal => format!("{prefix}Signal:{signal}"),
    }
}

/// upstream `isPodInitializedConditionTrue`: the first `Initialized` condition decides.
fn initialized_condition_true(conditions: &[Value]) -> bool {
    conditions.iter().find(|c| str_at(c, &["type"]) == "Initialized").is_some_and(|c| str_at(c, &["status"]) == "True")
}

/// upstream `hasPodReadyCondition`.
fn ready_condition_true(conditions: &[Value]) -> bool {
    conditions.iter().any(|c| str_at(c, &["type"]) == "Ready" && str_at(c, &["status"]) == "True")
}

/// The first pod IP (`status.podIPs[0]`, or the legacy `status.podIP` the v1→internal conversion
/// would copy into it), `<none>` if unassigned.
fn pod_ip(pod: &Value) -> String {
    let first = array_at(pod, &["status", "podIPs"]).first().map(|ip| str_at(ip, &["ip"]));
    let ip = first.unwrap_or_else(|| str_at(pod, &["status", "podIP"]));
    non_empty_or_none(ip)
}

/// `true/total` readiness gates, `<none>` without gates.
fn readiness_gates(pod: &Value) -> String {
    let gates = array_at(pod, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let conditions = array_at(pod, &["status", "conditions"]);
    let true_count = gates
        .iter()
        .filter(|gate| {
            let wanted = str_at(gate, &["conditionType"]);
            conditions.iter().find(|c| str_at(c, &["type"]) == wanted).is_some_and(|c| str_at(c, &["status"]) == "True")
        })
        .count();
    format!("{true_count}/{}", gates.len())
}

fn non_empty_or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s.to_string()
    }
}
