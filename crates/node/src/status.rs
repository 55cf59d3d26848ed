//! Pod status from what the runtime knows about its containers: phase (upstream's `getPhase`),
//! conditions (keeping transition times), and container statuses as `kubectl get/describe` read
//! them. Pure.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: DateTime<Utc>,
    },
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        reason: String,
        message: Option<String>,
        started_at: Option<DateTime<Utc>>,
        finished_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub state: State,
    pub last_state: Option<State>,
    pub restart_count: u32,
    pub ready: bool,
    /// The startup probe passed (or there is none) while running.
    pub started: bool,
    pub container_id: Option<String>,
}

/// Everything the status is computed from.
#[derive(Debug, Clone)]
pub struct PodRecord {
    pub restart_policy: String,
    pub sandbox_ready: bool,
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub start_time: DateTime<Utc>,
    pub containers: Vec<ContainerRecord>,
    /// Set when the pod cannot run at all (e.g. no command), shown as the pod's message.
    pub message: Option<String>,
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn state_json(state: &State) -> Value {
    match state {
        State::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        }
        State::Running { started_at } => json!({"running": {"startedAt": time(started_at)}}),
        State::Terminated { exit_code, signal, reason, message, started_at, finished_at } => {
            let mut t = json!({"exitCode": exit_code, "reason": reason, "finishedAt": time(finished_at)});
            if let Some(s) = signal {
                t["signal"] = json!(s);
            }
            if let Some(m) = message {
                t["message"] = json!(m);
            }
            if let Some(s) = started_at {
                t["startedAt"] = json!(time(s));
            }
            json!({"terminated": t})
        }
    }
}

/// Upstream's phase rules.
pub fn phase(record: &PodRecord) -> &'static str {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &record.containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } => {
                if c.last_state.is_some() {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
        }
    }
    if waiting > 0 || record.containers.is_empty() {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        return match record.restart_policy.as_str() {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        };
    }
    "Pending"
}

/// One condition, keeping the old transition time when its status did not change.
fn condition(previous: &Value, kind: &str, status: bool, reason: Option<&str>, now: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let old = previous.as_array().and_then(|c| c.iter().find(|c| c["type"] == kind));
    let since = match old {
        Some(old) if old["status"] == status => old["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if let Some(reason) = reason {
        c["reason"] = json!(reason);
    }
    c
}

/// Whether two statuses say the same, their conditions' transition times aside: a status
/// computed again later is not a change to write.
pub fn same_status(a: &Value, b: &Value) -> bool {
    fn same_object(a: &Value, b: &Value, same: impl Fn(&str, &Value, &Value) -> bool) -> bool {
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return a == b };
        a.len() == b.len() && a.iter().all(|(key, value)| b.get(key).is_some_and(|other| same(key, value, other)))
    }
    let same_condition = |a: &Value, b: &Value| same_object(a, b, |key, x, y| key == "lastTransitionTime" || x == y);
    same_object(a, b, |key, x, y| match (key, x.as_array(), y.as_array()) {
        ("conditions", Some(x), Some(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_condition(x, y)),
        _ => x == y,
    })
}

/// The pod's `status`, given the previous one (for transition times).
pub fn pod_status(record: &PodRecord, previous: &Value, now: DateTime<Utc>) -> Value {
    let now_s = time(&now);
    let phase = phase(record);
    let all_ready = !record.containers.is_empty() && record.containers.iter().all(|c| c.ready);
    let finished = matches!(phase, "Succeeded" | "Failed");
    let not_ready_reason = if finished {
        Some("PodCompleted")
    } else if all_ready {
        None
    } else {
        Some("ContainersNotReady")
    };
    let old = previous.get("conditions").unwrap_or(&Value::Null);
    let conditions = vec![
        condition(old, "PodReadyToStartContainers", record.sandbox_ready, None, &now_s),
        condition(old, "Initialized", true, None, &now_s),
        condition(old, "Ready", all_ready && !finished, not_ready_reason, &now_s),
        condition(old, "ContainersReady", all_ready && !finished, not_ready_reason, &now_s),
        condition(old, "PodScheduled", true, None, &now_s),
    ];
    let statuses: Vec<Value> = record
        .containers
        .iter()
        .map(|c| {
            let mut s = json!({
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": c.ready,
                "restartCount": c.restart_count,
                "started": c.started && matches!(c.state, State::Running { .. }),
                "state": state_json(&c.state),
                "lastState": c.last_state.as_ref().map(state_json).unwrap_or(json!({})),
            });
            if let Some(id) = &c.container_id {
                s["containerID"] = json!(id);
            }
            s
        })
        .collect();
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": record.host_ip,
        "hostIPs": [{"ip": record.host_ip}],
        "startTime": time(&record.start_time),
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    });
    if let Some(ip) = &record.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if let Some(m) = &record.message {
        status["message"] = json!(m);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(state: State, last: Option<State>, ready: bool) -> ContainerRecord {
        ContainerRecord {
            name: "c".into(),
            image: "img".into(),
            state,
            last_state: last,
            restart_count: 0,
            ready,
            started: true,
            container_id: None,
        }
    }

    fn record(policy: &str, containers: Vec<ContainerRecord>) -> PodRecord {
        PodRecord {
            restart_policy: policy.into(),
            sandbox_ready: true,
            pod_ip: Some("10.244.0.2".into()),
            host_ip: "10.244.0.1".into(),
            start_time: Utc::now(),
            containers,
            message: None,
        }
    }

    #[test]
    fn phases() {
        let now = Utc::now();
        let running = State::Running { started_at: now };
        let exited = |code| State::Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed".into() } else { "Error".into() },
            message: None,
            started_at: Some(now),
            finished_at: now,
        };
        let waiting = State::Waiting { reason: "ContainerCreating".into(), message: None };
        let backoff = State::Waiting { reason: "CrashLoopBackOff".into(), message: None };
        assert_eq!(phase(&record("Always", vec![container(waiting.clone(), None, false)])), "Pending");
        assert_eq!(phase(&record("Always", vec![container(running.clone(), None, true)])), "Running");
        assert_eq!(phase(&record("Always", vec![container(backoff, Some(exited(1)), false)])), "Running");
        assert_eq!(phase(&record("Never", vec![container(exited(0), None, false)])), "Succeeded");
        assert_eq!(phase(&record("Never", vec![container(exited(2), None, false)])), "Failed");
        assert_eq!(phase(&record("OnFailure", vec![container(exited(0), None, false)])), "Succeeded");
        assert_eq!(
            phase(&record("Always", vec![container(running, None, true), container(waiting, None, false)])),
            "Pending"
        );
    }

    #[test]
    fn conditions_keep_transition_times() {
        let now = Utc::now();
        let ready = record("Always", vec![container(State::Running { started_at: now }, None, true)]);
        let first = pod_status(&ready, &Value::Null, now);
        let ready_condition =
            |s: &Value| s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap().clone();
        assert_eq!(ready_condition(&first)["status"], "True");
        let later = now + chrono::Duration::seconds(30);
        let second = pod_status(&ready, &first, later);
        assert_eq!(ready_condition(&second)["lastTransitionTime"], ready_condition(&first)["lastTransitionTime"]);
        let mut not_ready = ready.clone();
        not_ready.containers[0].ready = false;
        let third = pod_status(&not_ready, &second, later);
        assert_eq!(ready_condition(&third)["status"], "False");
        assert_eq!(ready_condition(&third)["reason"], "ContainersNotReady");
        assert_eq!(ready_condition(&third)["lastTransitionTime"], time(&later));
        assert_eq!(third["podIP"], "10.244.0.2");
    }

    #[test]
    fn statuses_differing_only_in_transition_times_are_the_same() {
        let now = Utc::now();
        let ready = record("Always", vec![container(State::Running { started_at: now }, None, true)]);
        let first = pod_status(&ready, &Value::Null, now);
        let later = now + chrono::Duration::seconds(30);
        // Computed afresh (no previous status), every transition time moves.
        let again = pod_status(&ready, &Value::Null, later);
        assert_ne!(first, again);
        assert!(same_status(&first, &again));
        let mut not_ready = ready.clone();
        not_ready.containers[0].ready = false;
        assert!(!same_status(&first, &pod_status(&not_ready, &first, later)));
        let mut other_ip = first.clone();
        other_ip["podIP"] = json!("10.244.0.9");
        assert!(!same_status(&first, &other_ip));
        let mut fewer = first.clone();
        fewer["conditions"].as_array_mut().unwrap().pop();
        assert!(!same_status(&first, &fewer));
        assert!(!same_status(&first, &Value::Null));
        assert!(same_status(&Value::Null, &Value::Null));
    }
}
