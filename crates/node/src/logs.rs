//! Container logs on disk, one file per container start, in the CRI line format
//! (`<RFC3339Nano> <stdout|stderr> F <line>`), and reading them back for `kubectl logs`
//! (`--tail`, `--timestamps`, `--previous`, `--since`, `--limit-bytes`, `-f`).
//!
//! Layout: `<root>/<namespace>_<pod>_<uid>/<container>/<attempt>.log`.

use std::io::{BufRead, SeekFrom};
use std::path::{Path, PathBuf};
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

    /// The attempts on disk for a container, oldest first.
    fn attempts(&self, dir: &Path) -> Vec<(u32, PathBuf)> {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let attempt = name.strip_suffix(".log")?.parse().ok()?;
                Some((attempt, e.path()))
            })
            .collect();
        found.sort();
        found
    }

    /// Streams a container's log as `kubectl logs` expects (plain lines, optionally timestamped).
    pub fn read(&self, namespace: &str, pod: &str, uid: &str, container: &str, options: &LogOptions) -> Result<mpsc::Receiver<Bytes>, LogError> {
        let dir = self.pod_dir(namespace, pod, uid).join(container);
        let attempts = self.attempts(&dir);
        let chosen = if options.previous { attempts.iter().rev().nth(1) } else { attempts.last() };
        let Some((_, path)) = chosen.cloned() else {
            return Err(if options.previous {
                LogError::NoPrevious { container: container.into(), pod: pod.into() }
            } else {
                LogError::NotStarted { container: container.into(), pod: pod.into() }
            });
        };
        let file = std::fs::File::open(&path)?;
        let lines: Vec<String> = std::io::BufReader::new(&file).lines().map_while(Result::ok).collect();
        let since = options.since_seconds.map(|s| chrono::Utc::now() - chrono::Duration::seconds(s));
        let selected: Vec<String> = lines
            .iter()
            .filter(|l| since.is_none_or(|cut| parse(l).is_some_and(|(t, _)| t >= cut)))
            .cloned()
            .collect();
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
            let Ok(mut file) = tokio::fs::File::open(&path).await else { return };
            let Ok(end) = std::fs::metadata(&path).map(|m| m.len()) else { return };
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
        Ok(receiver)
    }
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

/// Copies a process's output stream into the container's log file, one CRI line per line.
pub async fn capture(stream: impl tokio::io::AsyncRead + Unpin, stream_name: &'static str, file: std::fs::File) {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::from_std(file);
    let mut lines = tokio::io::BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let record = format!("{stamp} {stream_name} F {line}\n");
        if file.write_all(record.as_bytes()).await.is_err() {
            return;
        }
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

    #[tokio::test]
    async fn tail_timestamps_previous_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let first = store.file("default", "web", "u1", "app", 0);
        std::fs::create_dir_all(first.parent().unwrap()).unwrap();
        std::fs::write(&first, "2026-11-22T03:00:00.000000001Z stdout F old\n").unwrap();
        let second = store.file("default", "web", "u1", "app", 1);
        let body: String = (1..=5).map(|i| format!("2026-11-22T03:00:0{i}.5Z stdout F line {i}\n")).collect();
        std::fs::write(&second, body).unwrap();

        let all = collect(store.read("default", "web", "u1", "app", &LogOptions::default()).unwrap()).await;
        assert_eq!(all, "line 1\nline 2\nline 3\nline 4\nline 5\n");
        let tail = LogOptions { tail_lines: Some(2), timestamps: true, ..Default::default() };
        let tailed = collect(store.read("default", "web", "u1", "app", &tail).unwrap()).await;
        assert_eq!(tailed, "2026-11-22T03:00:04.500000000Z line 4\n2026-11-22T03:00:05.500000000Z line 5\n");
        let previous = LogOptions { previous: true, ..Default::default() };
        assert_eq!(collect(store.read("default", "web", "u1", "app", &previous).unwrap()).await, "old\n");
        let limited = LogOptions { limit_bytes: Some(9), ..Default::default() };
        assert_eq!(collect(store.read("default", "web", "u1", "app", &limited).unwrap()).await, "line 1\nli");
        assert!(matches!(store.read("default", "web", "u1", "other", &LogOptions::default()), Err(LogError::NotStarted { .. })));
    }
}
