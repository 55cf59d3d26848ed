//! `pods/exec`, as `kubectl exec` uses it: the query names the command, the container and which
//! of stdin, stdout and stderr to carry. kubectl 1.30+ upgrades to WebSocket with the
//! `v5.channel.k8s.io` protocol (each binary message is a channel byte then data: 0 stdin,
//! 1 stdout, 2 stderr, 3 the final status, 4 resize; `[255, n]` closes channel n); older ones,
//! and newer ones told to, upgrade to SPDY with `v4.channel.k8s.io`, one stream per channel
//! named by its `streamType` header. Either way the last word is a `Status` on the error
//! channel: Success, or NonZeroExitCode with the exit code. The command runs in the pod's
//! namespaces with its container's environment (the node's [`PodAccess`]); with `tty` on a
//! terminal of its own, sized by the resize channel.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use frontdoor_spdy::{Read, Stream};
use futures::{SinkExt, StreamExt};
use http::Request;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::errors::{ApiError, ApiResult};
use crate::registry::ObjectRef;
use crate::upgrade::{self, Asked};
use crate::{handlers, request, ApiState, ExecError, PodAccess};

const V4: &str = "v4.channel.k8s.io";
const V5: &str = "v5.channel.k8s.io";
/// How long the SPDY client has to open the streams the query asked for (upstream's default).
const STREAMS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after a WebSocket upgrade the first message may wait for the client to be ready
/// (its first message, if it sends one earlier, says it is). client-go before 1.34 starts reading
/// the connection before it has set up its channels and discards what comes for a channel it
/// does not have yet (kubernetes#131189): kubectl 1.30–1.33 then lose a command's first output,
/// or the status of one that could not start, and exit 0. A container runtime takes tens of
/// milliseconds to start a process, so a real cluster's first message never comes that early;
/// this node starts one in well under a millisecond.
const CLIENT_READY_WAIT: Duration = Duration::from_millis(100);

/// What the query asks for.
#[derive(Debug, Clone)]
struct Options {
    command: Vec<String>,
    container: String,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

/// Answers a `pods/exec` request: upgrades it and runs the command, or says why not.
pub fn serve(state: &ApiState, at: &ObjectRef<'_>, request: Request<Body>) -> ApiResult<Response> {
    let pod = upgrade::bound_pod(state, at)?;
    let query = request.uri().query();
    let flag = |key: &str| request::query_values(query, key).last().is_some_and(|v| v == "true" || v == "1");
    let command = request::query_values(query, "command");
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let (stdin, stdout, stderr) = (flag("stdin"), flag("stdout"), flag("stderr"));
    if !(stdin || stdout || stderr) {
        return Err(ApiError::bad_request("you must specify at least one of stdin, stdout, stderr"));
    }
    let container = handlers::container_of(&pod, at.name, request::query_values(query, "container").pop().as_deref())?;
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let access = state
        .pod_access
        .get()
        .cloned()
        .ok_or_else(|| ApiError::bad_request("exec is not available: this server runs no node"))?;
    let asked = upgrade::asked(request.headers());
    let protocol = match &asked {
        Asked::WebSocket { protocols, .. } if protocols.iter().any(|p| p == V5) => V5,
        // kubectl falls back to SPDY when this upgrade fails.
        Asked::WebSocket { protocols, .. } => {
            return Err(ApiError::bad_request(format!(
            "unable to upgrade: unable to negotiate protocol: client supports {protocols:?}, server accepts [{V5:?}]"
        )))
        }
        Asked::Spdy(offered) if offered.iter().any(|p| p == V4) => V4,
        Asked::Spdy(offered) => {
            return Err(ApiError::forbidden(format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [{V4:?}]"
            )))
        }
        Asked::Nothing => return Err(ApiError::bad_request("Upgrade request required")),
    };
    // With a terminal there is no separate stderr (kubectl asks for none).
    let tty = flag("tty");
    let options = Options { command, container, stdin, stdout, stderr: stderr && !tty, tty };
    let response = upgrade::switching(&asked, protocol);
    tokio::spawn(async move {
        let Some(io) = upgrade::on_upgrade(request).await else { return };
        match asked {
            Asked::WebSocket { .. } => over_websocket(upgrade::websocket(io).await, pod, access, options).await,
            _ => over_spdy(io, pod, access, options).await,
        }
    });
    Ok(response)
}

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: `[CLOSE, channel]` closes a channel.
const CLOSE: u8 = 255;

/// Where a session's input comes from and its output goes, whatever carries them: output as
/// (channel, bytes) in the order it was read.
struct Io {
    /// Input for the command; ends when the client closes stdin.
    stdin: Option<mpsc::Receiver<Bytes>>,
    /// Terminal sizes (width, height), with a TTY.
    resize: Option<mpsc::Receiver<(u16, u16)>>,
    out: mpsc::Sender<(u8, Bytes)>,
    stdout: bool,
    stderr: bool,
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

/// The command's input, output and error: its terminal (output only), or its pipes.
struct Ends {
    input: Option<Writer>,
    output: Option<Reader>,
    errors: Option<Reader>,
    resize: Option<Box<dyn Fn(u16, u16) + Send + Sync>>,
}

/// Runs the command and returns the final status (upstream's v4 error-channel `Status`).
async fn execute(access: Arc<dyn PodAccess>, pod: Arc<Value>, options: Options, io: Io) -> Value {
    let started = access.exec(&pod, &options.container, options.command.clone(), io.stdin.is_some(), options.tty).await;
    let process = match started {
        Ok(process) => process,
        Err(ExecError::CannotRun(message)) => {
            let channel = if io.stderr {
                Some(STDERR)
            } else if options.tty {
                Some(STDOUT)
            } else {
                None
            };
            if let Some(channel) = channel {
                let _ = io.out.send((channel, Bytes::from(format!("{message}\r\n")))).await;
            }
            return exit_status(126);
        }
        Err(ExecError::Unavailable(message)) => {
            return json!({"metadata": {}, "status": "Failure", "message": format!("Internal error occurred: error executing command in container: {message}"), "reason": "InternalError", "code": 500});
        }
    };
    let (mut child, stop) = (process.child, process.stop);
    let ends = match process.terminal {
        Some(terminal) => Ends {
            input: Some(terminal.input),
            output: Some(terminal.output),
            errors: None,
            resize: Some(terminal.resize),
        },
        None => Ends {
            input: child.stdin.take().map(|p| Box::new(p) as Writer),
            output: child.stdout.take().map(|p| Box::new(p) as Reader),
            errors: child.stderr.take().map(|p| Box::new(p) as Reader),
            resize: None,
        },
    };
    let Ends { input: to_child, output: stdout, errors: stderr, resize } = ends;
    let from_client = io.stdin;
    let input = async move {
        let (Some(mut from_client), Some(mut to_child)) = (from_client, to_child) else { return };
        while let Some(bytes) = from_client.recv().await {
            if to_child.write_all(&bytes).await.is_err() || to_child.flush().await.is_err() {
                return;
            }
        }
        // Closing the child's stdin is how the client's end of input reaches it.
    };
    let sizes = io.resize;
    let resizing = async move {
        let (Some(mut sizes), Some(resize)) = (sizes, resize) else { return };
        while let Some((width, height)) = sizes.recv().await {
            resize(width, height);
        }
    };
    let output = copy_out(stdout, io.stdout.then_some((STDOUT, &io.out)));
    let errors = copy_out(stderr, io.stderr.then_some((STDERR, &io.out)));
    let waited = async {
        let (status, _, _) = tokio::join!(child.wait(), output, errors);
        status
    };
    // Input and sizes end on their own; the session ends when the command has exited and its
    // output is out, or when the client is gone (the command and what it started are then
    // killed).
    let status = tokio::select! {
        status = waited => status,
        _ = async { tokio::join!(input, resizing); std::future::pending::<()>().await } => unreachable!(),
        _ = io.out.closed() => {
            stop();
            return exit_status(137);
        }
    };
    let code = match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
        }
        Err(_) => 1,
    };
    exit_status(code)
}

/// Terminal sizes from a resize channel's bytes: JSON objects `{"Width":…,"Height":…}`, one
/// after another, maybe split across messages.
#[derive(Default)]
struct Sizes(Vec<u8>);

impl Sizes {
    fn feed(&mut self, bytes: &[u8]) -> Vec<(u16, u16)> {
        self.0.extend_from_slice(bytes);
        let mut sizes = Vec::new();
        let mut stream = serde_json::Deserializer::from_slice(&self.0).into_iter::<Value>();
        let mut consumed = 0;
        loop {
            match stream.next() {
                Some(Ok(size)) => {
                    consumed = stream.byte_offset();
                    let dimension = |key: &str| size[key].as_u64().map(|v| v.min(u64::from(u16::MAX)) as u16);
                    if let (Some(width), Some(height)) = (dimension("Width"), dimension("Height")) {
                        sizes.push((width, height));
                    }
                }
                // The rest of a size still to come.
                Some(Err(error)) if error.is_eof() => break,
                // Not JSON: dropped.
                Some(Err(_)) => {
                    consumed = self.0.len();
                    break;
                }
                None => break,
            }
        }
        self.0.drain(..consumed);
        sizes
    }
}

/// Copies a pipe of the child's to the client's channel until it ends (or the client is gone);
/// output nobody asked for is read and dropped.
async fn copy_out(pipe: Option<impl AsyncRead + Unpin>, to: Option<(u8, &mpsc::Sender<(u8, Bytes)>)>) {
    let Some(pipe) = pipe else { return };
    let mut chunks = std::pin::pin!(upgrade::chunks(pipe));
    while let Some(bytes) = chunks.next().await {
        if let Some((channel, to)) = to {
            if to.send((channel, bytes)).await.is_err() {
                return;
            }
        }
    }
}

fn exit_status(code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: exit status {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// v4 over SPDY: waits for the streams the query asked for, then runs.
async fn over_spdy<IO>(io: IO, pod: Arc<Value>, access: Arc<dyn PodAccess>, options: Options)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (streams_tx, mut streams) = mpsc::channel(8);
    let connection = tokio::spawn(frontdoor_spdy::serve(io, streams_tx));
    let expected = 1
        + usize::from(options.stdin)
        + usize::from(options.stdout)
        + usize::from(options.stderr)
        + usize::from(options.tty);
    let mut opened: Vec<Stream> = Vec::new();
    let gathered = tokio::time::timeout(STREAMS_TIMEOUT, async {
        while opened.len() < expected {
            match streams.recv().await {
                Some(stream) => opened.push(stream),
                None => return false,
            }
        }
        true
    })
    .await;
    let mut take =
        |kind: &str| opened.iter().position(|s| s.header("streamtype") == Some(kind)).map(|i| opened.swap_remove(i));
    let (error, stdin, stdout, stderr, resize) =
        (take("error"), take("stdin"), take("stdout"), take("stderr"), take("resize"));
    let Some(error) = error.filter(|_| gathered == Ok(true)) else {
        tracing::debug!("exec: the client did not open the streams it asked for");
        drop(streams);
        let _ = connection.await;
        return;
    };
    // Output to its stream, in order; each output stream ends before the status is written.
    let (out, mut outgoing) = mpsc::channel::<(u8, Bytes)>(16);
    let (stdout, stderr) = (stdout.map(|s| s.sender()), stderr.map(|s| s.sender()));
    let (wants_stdout, wants_stderr) = (stdout.is_some(), stderr.is_some());
    let connection_gone = error.sender();
    let writer = tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = outgoing.recv() => next,
                // Dropping `outgoing` tells the session the client is gone.
                _ = connection_gone.closed() => return,
            };
            let Some((channel, bytes)) = next else { break };
            let stream = if channel == STDOUT { &stdout } else { &stderr };
            if let Some(stream) = stream {
                if stream.send(bytes).await.is_err() {
                    return;
                }
            }
        }
        for stream in [stdout, stderr].into_iter().flatten() {
            let _ = stream.finish().await;
        }
    });
    let stdin = stdin.map(|mut stream| {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        tokio::spawn(async move {
            while let Read::Data(bytes) = stream.read().await {
                if tx.send(bytes).await.is_err() {
                    return;
                }
            }
        });
        rx
    });
    let resize = resize.map(|mut stream| {
        let (tx, rx) = mpsc::channel::<(u16, u16)>(4);
        tokio::spawn(async move {
            let mut sizes = Sizes::default();
            while let Read::Data(bytes) = stream.read().await {
                for size in sizes.feed(&bytes) {
                    if tx.send(size).await.is_err() {
                        return;
                    }
                }
            }
        });
        rx
    });
    let status =
        execute(access, pod, options, Io { stdin, resize, out, stdout: wants_stdout, stderr: wants_stderr }).await;
    let _ = writer.await;
    let sender = error.sender();
    let _ = sender.send(Bytes::from(status.to_string())).await;
    let _ = sender.finish().await;
    drop(streams);
    let _ = connection.await;
}

/// v5 over WebSocket: channels in binary messages.
async fn over_websocket<IO>(
    socket: tokio_tungstenite::WebSocketStream<IO>,
    pod: Arc<Value>,
    access: Arc<dyn PodAccess>,
    options: Options,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let upgraded = tokio::time::Instant::now();
    let (mut sink, mut messages) = socket.split();
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<(u16, u16)>(4);
    let (heard_tx, heard) = tokio::sync::watch::channel(false);
    // Reads the client's messages: stdin until it closes the channel, terminal sizes (reading
    // also answers the client's pings).
    let reader = tokio::spawn(async move {
        let mut stdin = Some(stdin_tx);
        let mut sizes = Sizes::default();
        while let Some(Ok(message)) = messages.next().await {
            let bytes = match message {
                Message::Binary(bytes) => bytes,
                Message::Close(_) => break,
                _ => continue,
            };
            heard_tx.send_replace(true);
            match (bytes.first(), bytes.get(1)) {
                (Some(&STDIN), _) => {
                    if let Some(tx) = &stdin {
                        if tx.send(bytes.slice(1..)).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                (Some(&CLOSE), Some(&STDIN)) => stdin = None,
                (Some(&RESIZE), _) => {
                    for size in sizes.feed(&bytes[1..]) {
                        let _ = resize_tx.send(size).await;
                    }
                }
                _ => {}
            }
        }
    });
    let (out, mut outgoing) = mpsc::channel::<(u8, Bytes)>(16);
    let io = Io {
        stdin: options.stdin.then_some(stdin_rx),
        resize: options.tty.then_some(resize_rx),
        out,
        stdout: options.stdout,
        stderr: options.stderr,
    };
    let session = tokio::spawn(execute(access, pod, options, io));
    // Output in order until the session ends, then the status, then the close.
    let framed = |channel: u8, bytes: &[u8]| Message::Binary([&[channel][..], bytes].concat().into());
    let mut reader = reader;
    let mut gone = false;
    // Until the first message goes: whether the client has spoken yet.
    let mut not_ready = Some(heard);
    loop {
        let next = tokio::select! {
            next = outgoing.recv() => next,
            // The client closed or went away: dropping `outgoing` ends the session.
            _ = &mut reader, if !gone => {
                gone = true;
                break;
            }
        };
        let Some((channel, bytes)) = next else { break };
        client_ready(upgraded, &mut not_ready).await;
        if sink.send(framed(channel, &bytes)).await.is_err() {
            gone = true;
            break;
        }
    }
    drop(outgoing);
    if let Ok(status) = session.await {
        if !gone {
            client_ready(upgraded, &mut not_ready).await;
            let _ = sink.send(framed(ERROR, status.to_string().as_bytes())).await;
        }
    }
    // A normal closure: the client reads it as the end of every channel.
    let normal = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(normal))).await;
    let _ = sink.close().await;
    reader.abort();
}

/// Returns once the WebSocket client has sent a message or [`CLIENT_READY_WAIT`] has passed
/// since the upgrade; takes `not_ready`, so at once for every message after the first.
async fn client_ready(upgraded: tokio::time::Instant, not_ready: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    if let Some(mut heard) = not_ready.take() {
        let _ = tokio::time::timeout_at(upgraded + CLIENT_READY_WAIT, heard.wait_for(|heard| *heard)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_message_waits_for_the_client_to_be_ready() {
        // Nothing heard from the client: its channels may not exist yet, so the wait runs out.
        let (_heard_tx, heard) = tokio::sync::watch::channel(false);
        let upgraded = tokio::time::Instant::now();
        let mut not_ready = Some(heard);
        client_ready(upgraded, &mut not_ready).await;
        assert!(upgraded.elapsed() >= CLIENT_READY_WAIT);
        assert!(not_ready.is_none(), "the wait is taken once");
        // A message from the client ends the wait, however long it had left.
        let (heard_tx, heard) = tokio::sync::watch::channel(false);
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        let waiting = tokio::spawn(async move { client_ready(far, &mut Some(heard)).await });
        heard_tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("ready once heard").unwrap();
        // A client that went away holds nothing up either.
        let (heard_tx, heard) = tokio::sync::watch::channel(false);
        drop(heard_tx);
        tokio::time::timeout(Duration::from_secs(30), client_ready(far, &mut Some(heard)))
            .await
            .expect("ready once gone");
    }

    #[test]
    fn terminal_sizes_are_read_however_they_are_split() {
        let mut sizes = Sizes::default();
        assert_eq!(sizes.feed(b"{\"Width\":80,\"Height\":24}\n{\"Width\":1"), vec![(80, 24)]);
        assert_eq!(sizes.feed(b"01,\"Height\":33}\n"), vec![(101, 33)]);
        assert_eq!(sizes.feed(b"not json"), vec![]);
        assert_eq!(
            sizes.feed(b"{\"Width\":70000,\"Height\":2}"),
            vec![(u16::MAX, 2)],
            "garbage is dropped, sizes are clamped"
        );
    }

    #[test]
    fn exit_codes_become_upstreams_status() {
        assert_eq!(exit_status(0), json!({"metadata": {}, "status": "Success"}));
        let failed = exit_status(3);
        assert_eq!(
            (failed["reason"].as_str(), failed["details"]["causes"][0]["message"].as_str()),
            (Some("NonZeroExitCode"), Some("3"))
        );
        assert_eq!(failed["message"], "command terminated with non-zero exit code: exit status 3");
    }
}
