//! Container logs on disk, one file per container start, in the CRI line format
//! (`<RFC3339Nano> <stdout|stderr> F <line>`), and reading them back for `kubectl logs`
//! (`--tail`, `--timestamps`, `--previous`, `--since`, `--limit-bytes`, `-f`).
//!
//! Layout: `<root>/<namespace>_<pod>_<uid>/<container>/<attempt>.log`.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// How often a followed log is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub timestamps: bool,
    pub previous: bool,
    pub since_seconds: Option<i64>,
    pub limit_bytes: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("previous terminated container \"{container}\" in pod \"{pod}\" not found")]
    NoPrevious { container: String, pod: String },
    #[error("container \"{container}\" in pod \"{pod}\" is waiting to start: no logs yet")]
    NotStarted { container: String, pod: String },
    #[error("reading logs: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct LogStore {
    root: PathBuf,
}

impl LogStore {
    pub fn new(root: PathBuf) -> LogStore {
        LogStore { root }
    }

    pub fn pod_dir(&self, namespace: &str, pod: &str, uid: &str) -> PathBuf {
        self.root.join(format!("{namespace}_{pod}_{uid}"))
    }

    /// The file for a container's `attempt`-th start (0 = first).
    pub fn file(&self, namespace: &str, pod: &str, uid: &str, container: &str, attempt: u32) -> PathBuf {
        self.pod_dir(namespace, pod, uid).join(container).join(format!("{attempt}.log"))
    }

    /// The number for a container's next start: one more than any on disk, so numbers keep
    /// rising across node restarts. (A start whose process printed nothing has no file.)
    pub fn next_attempt(&self, namespace: &str, pod: &str, uid: &str, container: &str) -> u32 {
        std::fs::read_dir(self.pod_dir(namespace, pod, uid).join(container))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse::<u32>().ok())
            .max()
            .map_or(0, |last| last + 1)
    }

    /// Streams a container's log as `kubectl logs` expects (plain lines, optionally timestamped),
    /// for the start the pod's status names: its current container, or with `previous` the one
    /// before.
    pub fn read(
        &self,
        pod: &serde_json::Value,
        container: &str,
        options: &LogOptions,
    ) -> Result<mpsc::Receiver<Bytes>, LogError> {
        let field = |path: &str| pod.pointer(path).and_then(serde_json::Value::as_str).unwrap_or("");
        let (namespace, name, uid) = (field("/metadata/namespace"), field("/metadata/name"), field("/metadata/uid"));
        let current = pod
            .pointer("/status/containerStatuses")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .find(|s| s["name"] == container)
            .and_then(|s| s["containerID"].as_str())
            .and_then(attempt_of);
        let chosen = match (current, options.previous) {
            (Some(attempt), false) => attempt,
            (Some(attempt), true) if attempt > 0 => attempt - 1,
            (_, true) => return Err(LogError::NoPrevious { container: container.into(), pod: name.into() }),
            (None, false) => return Err(LogError::NotStarted { container: container.into(), pod: name.into() }),
        };
        Ok(stream(self.file(namespace, name, uid, container, chosen), options))
    }
}

/// Streams one log file. A file that does not exist yet is a start that has printed nothing so
/// far: empty, and followed until it appears.
fn stream(path: PathBuf, options: &LogOptions) -> mpsc::Receiver<Bytes> {
    // Complete lines only: a follower continues from the end of the last one.
    let text = std::fs::read(&path).unwrap_or_default();
    let consumed = text.iter().rposition(|b| *b == b'\n').map_or(0, |end| end + 1);
    let lines: Vec<String> = String::from_utf8_lossy(&text[..consumed]).lines().map(String::from).collect();
    let since = options.since_seconds.map(|s| chrono::Utc::now() - chrono::Duration::seconds(s));
    let selected: Vec<String> =
        lines.iter().filter(|l| since.is_none_or(|cut| parse(l).is_some_and(|(t, _)| t >= cut))).cloned().collect();
    let start = options.tail_lines.map_or(0, |n| selected.len().saturating_sub(n));
    let (sender, receiver) = mpsc::channel(64);
    let options = options.clone();
    let follow = options.follow && !options.previous;
    let initial: Vec<String> = selected[start..].to_vec();
    tokio::spawn(async move {
        let mut budget = options.limit_bytes.unwrap_or(usize::MAX);
        for line in initial {
            if !send_line(&sender, &line, options.timestamps, &mut budget).await {
                return;
            }
        }
        if !follow {
            return;
        }
        // Nothing printed yet: wait for the first line (or for the reader to go away).
        let mut file = loop {
            match tokio::fs::File::open(&path).await {
                Ok(file) => break file,
                Err(_) if !sender.is_closed() => tokio::time::sleep(FOLLOW_POLL).await,
                Err(_) => return,
            }
        };
        let end = consumed as u64;
        use tokio::io::AsyncSeekExt;
        if file.seek(SeekFrom::Start(end)).await.is_err() {
            return;
        }
        let mut reader = tokio::io::BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(0) => {
                    if sender.is_closed() || !path.exists() {
                        return;
                    }
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
                Ok(_) if line.ends_with('\n') => {
                    if !send_line(&sender, line.trim_end_matches('\n'), options.timestamps, &mut budget).await {
                        return;
                    }
                }
                // A partial line: wait for the rest (put the cursor back).
                Ok(n) => {
                    let _ = reader.seek(SeekFrom::Current(-(n as i64))).await;
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
                Err(_) => return,
            }
        }
    });
    receiver
}

/// The ID of a container's `attempt`-th start, as the pod's status reports it; the log of that
/// start is found again from it.
pub fn container_id(uid: &str, container: &str, attempt: u32) -> String {
    format!("frontdoor://{uid}/{container}/{attempt}")
}

/// The start number in a container ID made by [`container_id`].
fn attempt_of(container_id: &str) -> Option<u32> {
    container_id.strip_prefix("frontdoor://")?.rsplit('/').next()?.parse().ok()
}

/// Splits a stored line into its timestamp and message.
fn parse(line: &str) -> Option<(chrono::DateTime<chrono::Utc>, &str)> {
    let mut parts = line.splitn(4, ' ');
    let time = chrono::DateTime::parse_from_rfc3339(parts.next()?).ok()?.with_timezone(&chrono::Utc);
    let _stream = parts.next()?;
    let _tag = parts.next()?;
    Some((time, parts.next().unwrap_or("")))
}

async fn send_line(sender: &mpsc::Sender<Bytes>, stored: &str, timestamps: bool, budget: &mut usize) -> bool {
    let Some((time, message)) = parse(stored) else { return true };
    let mut out = if timestamps {
        format!("{} {message}\n", time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
    } else {
        format!("{message}\n")
    };
    if *budget == 0 {
        return false;
    }
    if out.len() > *budget {
        out.truncate(*budget);
    }
    *budget -= out.len();
    sender.send(Bytes::from(out)).await.is_ok()
}

/// Copies a container's stdout and stderr into its log file, one CRI line per line. The file
/// (and the pod's log directory) is created with the first line: a container that prints
/// nothing costs no file, and creating files is a large part of starting a pod.
pub async fn capture(
    stdout: impl tokio::io::AsyncRead + Unpin,
    stderr: impl tokio::io::AsyncRead + Unpin,
    path: PathBuf,
) {
    use tokio::io::AsyncWriteExt;
    let mut out = tokio::io::BufReader::new(stdout).lines();
    let mut err = tokio::io::BufReader::new(stderr).lines();
    let (mut out_open, mut err_open) = (true, true);
    // `None` until the first line. If it cannot be opened, output is still read to the end (so
    // the process never blocks on a full pipe) but dropped.
    let mut file: Option<tokio::fs::File> = None;
    let mut discarding = false;
    while out_open || err_open {
        let (stream_name, line) = tokio::select! {
            line = out.next_line(), if out_open => ("stdout", line),
            line = err.next_line(), if err_open => ("stderr", line),
        };
        let Ok(Some(line)) = line else {
            match stream_name {
                "stdout" => out_open = false,
                _ => err_open = false,
            }
            continue;
        };
        if discarding {
            continue;
        }
        if file.is_none() {
            if let Some(dir) = path.parent() {
                let _ = tokio::fs::create_dir_all(dir).await;
            }
            match tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await {
                Ok(opened) => file = Some(opened),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot open the container log; discarding output");
                    discarding = true;
                    continue;
                }
            }
        }
        let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let record = format!("{stamp} {stream_name} F {line}\n");
        if let Some(opened) = file.as_mut() {
            if opened.write_all(record.as_bytes()).await.is_err() {
                return;
            }
        }
    }
    if let Some(mut file) = file {
        let _ = file.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(mut r: mpsc::Receiver<Bytes>) -> String {
        let mut out = String::new();
        while let Some(b) = r.recv().await {
            out.push_str(&String::from_utf8_lossy(&b));
        }
        out
    }

    fn pod(current: Option<u32>) -> serde_json::Value {
        let mut status = serde_json::json!({"name": "app", "restartCount": 1});
        if let Some(n) = current {
            status["containerID"] = serde_json::json!(container_id("u1", "app", n));
        }
        serde_json::json!({
            "metadata": {"namespace": "default", "name": "web", "uid": "u1"},
            "status": {"containerStatuses": [status]},
        })
    }

    #[tokio::test]
    async fn tail_timestamps_previous_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        assert_eq!(store.next_attempt("default", "web", "u1", "app"), 0);
        let first = store.file("default", "web", "u1", "app", 0);
        std::fs::create_dir_all(first.parent().unwrap()).unwrap();
        std::fs::write(&first, "2026-11-22T03:00:00.000000001Z stdout F old\n").unwrap();
        let second = store.file("default", "web", "u1", "app", 1);
        let body: String = (1..=5).map(|i| format!("2026-11-22T03:00:0{i}.5Z stdout F line {i}\n")).collect();
        std::fs::write(&second, body).unwrap();
        assert_eq!(store.next_attempt("default", "web", "u1", "app"), 2);

        let pod = pod(Some(1));
        let all = collect(store.read(&pod, "app", &LogOptions::default()).unwrap()).await;
        assert_eq!(all, "line 1\nline 2\nline 3\nline 4\nline 5\n");
        let tail = LogOptions { tail_lines: Some(2), timestamps: true, ..Default::default() };
        let tailed = collect(store.read(&pod, "app", &tail).unwrap()).await;
        assert_eq!(tailed, "2026-11-22T03:00:04.500000000Z line 4\n2026-11-22T03:00:05.500000000Z line 5\n");
        let previous = LogOptions { previous: true, ..Default::default() };
        assert_eq!(collect(store.read(&pod, "app", &previous).unwrap()).await, "old\n");
        let limited = LogOptions { limit_bytes: Some(9), ..Default::default() };
        assert_eq!(collect(store.read(&pod, "app", &limited).unwrap()).await, "line 1\nli");
        assert!(matches!(store.read(&pod, "other", &LogOptions::default()), Err(LogError::NotStarted { .. })));
        assert!(matches!(
            store.read(&self::pod(None), "app", &LogOptions::default()),
            Err(LogError::NotStarted { .. })
        ));
        assert!(matches!(store.read(&self::pod(Some(0)), "app", &previous), Err(LogError::NoPrevious { .. })));
        // A start that has printed nothing has no file: empty logs, not an error.
        assert_eq!(collect(store.read(&self::pod(Some(2)), "app", &LogOptions::default()).unwrap()).await, "");
    }

    #[tokio::test]
    async fn a_follower_waits_for_the_first_line_and_captures_both_streams() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let follow = LogOptions { follow: true, ..Default::default() };
        let mut lines = store.read(&pod(Some(0)), "app", &follow).unwrap();
        let path = store.file("default", "web", "u1", "app", 0);
        assert!(!path.exists(), "no output, no file");
        let (out_reader, mut out_writer) = tokio::io::duplex(64);
        let (err_reader, mut err_writer) = tokio::io::duplex(64);
        let capture = tokio::spawn(capture(out_reader, err_reader, path.clone()));
        use tokio::io::AsyncWriteExt;
        out_writer.write_all(b"to stdout\n").await.unwrap();
        assert_eq!(lines.recv().await.unwrap(), "to stdout\n");
        err_writer.write_all(b"to stderr\n").await.unwrap();
        assert_eq!(lines.recv().await.unwrap(), "to stderr\n");
        drop((out_writer, err_writer));
        capture.await.unwrap();
        let stored = std::fs::read_to_string(&path).unwrap();
        let streams: Vec<&str> = stored.lines().map(|l| l.split(' ').nth(1).unwrap()).collect();
        assert_eq!(streams, ["stdout", "stderr"]);
    }
}
