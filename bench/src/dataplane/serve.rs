//! `frontdoor-bench serve-http <port>…`: the pod of step 4, a small HTTP/1.1 server (hyper,
//! keep-alive, a 3-byte body) on each given port, run as a container's command inside the pod's
//! namespaces.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;

pub const SUBCOMMAND: &str = "serve-http";

pub fn serve(ports: &[u16]) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut servers = Vec::new();
        for port in ports {
            let listener = tokio::net::TcpListener::bind(("0.0.0.0", *port)).await.expect("the server binds");
            servers.push(tokio::spawn(accept(listener)));
        }
        for server in servers {
            let _ = server.await;
        }
    });
}

async fn accept(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let answer =
                service_fn(|_| async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok\n")))) });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), answer).await;
        });
    }
}
