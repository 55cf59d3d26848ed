//! nginx as the peer proxy (configured here for the same 1,000 rules, with ingress-nginx's proxy
//! settings; once more with deferred accepts, for the connection-per-request mode) and as the
//! backends the proxies send to. Each runs in the foreground from a configuration in the bench's
//! temporary directory (no system service is touched) and is stopped, by its PID, when dropped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::{HOST, RULES};

/// A self-signed P-256 certificate for `*.example.com`, shared by both proxies.
pub fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=*.example.com", "-addext", "subjectAltName=DNS:*.example.com"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl could not make a certificate");
    (cert, key)
}

pub struct Nginx {
    process: Child,
}

/// Settings common to both configurations: foreground, one worker, no logs, files in `dir`.
fn preamble(dir: &Path, name: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/{name}.pid;\nerror_log {d}/{name}.error.log warn;\n\
         events {{ worker_connections 16384; multi_accept on; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/{name}-body;\n  proxy_temp_path {d}/{name}-proxy;\n  \
         fastcgi_temp_path {d}/{name}-fastcgi;\n  uwsgi_temp_path {d}/{name}-uwsgi;\n  scgi_temp_path {d}/{name}-scgi;\n  \
         keepalive_requests 10000;\n"
    )
}

impl Nginx {
    fn start(dir: &Path, name: &str, config: &str, cpu: &str, port: u16) -> Nginx {
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, config).expect("nginx configuration written");
        let process = Command::new("taskset")
            .args(["-c", cpu, "nginx", "-e", "stderr", "-c"])
            .arg(&path)
            .spawn()
            .expect("nginx starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx ({name}) is not listening on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { process }
    }

    /// The backends: each port answers `200 ok` (keep-alive), on core 1.
    pub fn backends(dir: &Path, ports: &[u16]) -> Nginx {
        let mut config = preamble(dir, "backends");
        for port in ports {
            let _ = writeln!(
                config,
                "  server {{ listen 127.0.0.1:{port} reuseport; location / {{ return 200 \"ok\\n\"; }} }}"
            );
        }
        config.push_str("}\n");
        Nginx::start(dir, "backends", &config, "1", ports[0])
    }

    /// The peer: one `server` per rule (`h<i>.example.com`, `/api` to the backends), TLS with
    /// the shared certificate, proxy settings as ingress-nginx's template writes them. With
    /// `deferred`, its listeners are `deferred` (`TCP_DEFER_ACCEPT`, as frontdoor's), which
    /// ingress-nginx's template never writes.
    pub fn proxy(
        dir: &Path,
        cert: &Path,
        key: &Path,
        (http, https): (u16, u16),
        backends: &[u16],
        deferred: bool,
    ) -> Nginx {
        let name = if deferred { "proxy-deferred" } else { "proxy" };
        let options = if deferred { "default_server reuseport deferred" } else { "default_server reuseport" };
        let mut config = preamble(dir, name);
        config.push_str("  server_names_hash_bucket_size 128;\n  server_names_hash_max_size 8192;\n");
        config.push_str("  ssl_protocols TLSv1.2 TLSv1.3;\n  ssl_session_cache shared:SSL:10m;\n");
        let _ = writeln!(config, "  ssl_certificate {};\n  ssl_certificate_key {};", cert.display(), key.display());
        config.push_str("  upstream api {\n");
        for port in backends {
            let _ = writeln!(config, "    server 127.0.0.1:{port};");
        }
        config.push_str("    keepalive 320;\n    keepalive_timeout 60s;\n    keepalive_requests 10000;\n  }\n");
        let _ = writeln!(
            config,
            "  server {{ listen 127.0.0.1:{http} {options}; listen 127.0.0.1:{https} ssl {options}; \
             location / {{ return 404; }} }}"
        );
        for i in 0..RULES {
            let _ = writeln!(
                config,
                "  server {{\n    server_name h{i}.example.com;\n    listen 127.0.0.1:{http};\n    listen 127.0.0.1:{https} ssl;\n    \
                 location /api {{\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      \
                 proxy_set_header Host $host;\n      proxy_set_header X-Real-IP $remote_addr;\n      \
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      \
                 proxy_set_header X-Forwarded-Host $host;\n      proxy_set_header X-Forwarded-Port $server_port;\n      \
                 proxy_set_header X-Forwarded-Proto $scheme;\n      proxy_connect_timeout 5s;\n      \
                 proxy_next_upstream error timeout;\n      proxy_next_upstream_tries 3;\n      proxy_pass http://api;\n    }}\n    \
                 location / {{ return 404; }}\n  }}"
            );
        }
        config.push_str("}\n");
        let nginx = Nginx::start(dir, name, &config, "0", http);
        assert!(config.contains(HOST), "the measured host is a rule");
        nginx
    }

    /// The master and its workers.
    pub fn pids(&self) -> Vec<String> {
        let master = self.process.id().to_string();
        let mut pids = vec![master.clone()];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Field 4 (after the parenthesised name) is the parent's PID.
            let parent = stat.rsplit(") ").next().and_then(|rest| rest.split_whitespace().nth(1));
            if parent == Some(master.as_str()) {
                pids.push(pid);
            }
        }
        pids
    }

    /// RSS of the master and its workers, in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.pids().iter().map(|pid| crate::dataplane::system::status_mib(pid, "VmRSS:")).sum()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM (nginx's fast shutdown) to the master, which stops its workers.
        let _ = Command::new("kill").args(["-TERM", &self.process.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
