//! Probes as the kubelet runs them: the result tracker (initial delay, period, success and
//! failure thresholds) is pure; the checks (`httpGet`, `tcpSocket`) connect from the node to the
//! pod's address like the kubelet does; `exec` checks are run by the runtime inside the pod.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which probe a tracker serves: they differ only in their result before the first check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Readiness,
    Liveness,
    Startup,
}

/// The consecutive-result bookkeeping of one probe.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub success_threshold: u32,
    pub failure_threshold: u32,
    successes: u32,
    failures: u32,
    /// The current verdict.
    pub healthy: bool,
}

impl Tracker {
    pub fn new(kind: Kind, probe: &Probe) -> Tracker {
        Tracker {
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
            successes: 0,
            failures: 0,
            healthy: kind == Kind::Liveness,
        }
    }

    /// Failed `failureThreshold` times in a row (a startup probe then restarts the container).
    pub fn failed(&self) -> bool {
        self.failures >= self.failure_threshold
    }

    /// Records one check; returns true when the verdict changed.
    pub fn record(&mut self, success: bool) -> bool {
        let before = self.healthy;
        if success {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= self.success_threshold {
                self.healthy = true;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= self.failure_threshold {
                self.healthy = false;
            }
        }
        before != self.healthy
    }
}

pub fn initial_delay(probe: &Probe) -> Duration {
    Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64)
}

pub fn period(probe: &Probe) -> Duration {
    Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64)
}

pub fn timeout(probe: &Probe) -> Duration {
    Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64)
}

/// A port given by number or by the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// The outcome of one check, with the message the kubelet would put in an `Unhealthy` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
}

pub async fn tcp_check(ip: IpAddr, port: u16, limit: Duration) -> Outcome {
    let address = SocketAddr::new(ip, port);
    match tokio::time::timeout(limit, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {address}: connect: {}", e.to_string().to_lowercase())),
        Err(_) => Outcome::Failure(format!("dial tcp {address}: i/o timeout")),
    }
}

/// An HTTP/1.1 GET; 200–399 is success, as upstream.
pub async fn http_check(ip: IpAddr, port: u16, path: &str, headers: &[(String, String)], limit: Duration) -> Outcome {
    let address = SocketAddr::new(ip, port);
    let url = format!("http://{address}{path}");
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 64];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut head[read..]).await?;
            if n == 0 {
                break;
            }
            read += n;
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&head[..read]).into_owned())
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(head)) => match head.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok()) {
            Some(code) if (200..400).contains(&code) => Outcome::Success,
            Some(code) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
            None => Outcome::Failure(format!("Get \"{url}\": malformed HTTP response")),
        },
        Ok(Err(e)) => {
            Outcome::Failure(format!("Get \"{url}\": dial tcp {address}: connect: {}", e.to_string().to_lowercase()))
        }
        Err(_) => Outcome::Failure(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(success: i32, failure: i32) -> Probe {
        Probe { success_threshold: Some(success), failure_threshold: Some(failure), ..Default::default() }
    }

    #[test]
    fn thresholds() {
        let mut readiness = Tracker::new(Kind::Readiness, &probe(2, 3));
        assert!(!readiness.healthy);
        assert!(!readiness.record(true));
        assert!(readiness.record(true));
        assert!(readiness.healthy);
        assert!(!readiness.record(false));
        assert!(!readiness.record(false));
        assert!(readiness.record(false));
        assert!(!readiness.healthy);
        let liveness = Tracker::new(Kind::Liveness, &probe(1, 3));
        assert!(liveness.healthy);
    }

    #[tokio::test]
    async fn checks_against_a_local_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await;
            }
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(http_check(ip, port, "/healthz", &[], Duration::from_secs(1)).await, Outcome::Success);
        assert_eq!(
            http_check(ip, port, "/", &[], Duration::from_secs(1)).await,
            Outcome::Failure("HTTP probe failed with statuscode: 503".into())
        );
        assert!(matches!(tcp_check(ip, 1, Duration::from_secs(1)).await, Outcome::Failure(m) if m.contains("refused")));
    }
}
