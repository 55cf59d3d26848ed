//! Requests reach the backend their host and path pick; 404, 503, 502; endpoints that refuse
//! connections are skipped; a swapped-in table routes the next request.

use std::sync::Arc;

use frontdoor_ingress_routes::RouteTable;
use serde_json::json;
use tokio::net::TcpStream;

use crate::support::*;

#[tokio::test]
async fn requests_go_to_the_backend_their_host_and_path_pick() {
    let (api, web, any) = (Backend::start("api").await, Backend::start("web").await, Backend::start("any").await);
    let mut cluster = Cluster::default();
    cluster
        .service("api", &[api.address], false)
        .service("web", &[web.address], false)
        .service("any", &[any.address], false)
        .service("empty", &[], false);
    cluster.ingress(
        "shop",
        json!({"rules": [
            rule("shop.example", &[("/api", "api"), ("/", "web")]),
            rule("", &[("/any", "any")]),
            rule("down.example", &[("/", "empty")]),
        ]}),
    );
    let proxy = Proxy::start(cluster.table()).await;

    let cases = [
        ("shop.example", "/api/items?x=1", "api"),
        ("SHOP.example:8080", "/api", "api"),
        ("shop.example", "/apiary", "web"),
        ("shop.example", "/", "web"),
        ("other.example", "/any/thing", "any"),
    ];
    for (host, path, backend) in cases {
        let reply = get(proxy.http, host, path).await;
        assert_eq!(reply.status, 200, "{host}{path}: {}", reply.text());
        assert_eq!(reply.backend(), backend, "{host}{path}");
    }
    assert_eq!(api.seen()[0].uri, "/api/items?x=1", "the backend gets the path and query as sent");

    let not_found = get(proxy.http, "other.example", "/nothing").await;
    assert_eq!((not_found.status.as_u16(), not_found.text()), (404, "default backend - 404\n"));
    let down = get(proxy.http, "down.example", "/").await;
    assert_eq!((down.status.as_u16(), down.text()), (503, "503 Service Temporarily Unavailable\n"));

    let expected = [
        r#"nginx_ingress_controller_requests{status="200",method="GET",path="/api",namespace="default",ingress="shop",service="api",host="shop.example"} 2"#,
        r#"nginx_ingress_controller_requests{status="200",method="GET",path="/any",namespace="default",ingress="shop",service="any",host=""} 1"#,
        r#"nginx_ingress_controller_requests{status="404",method="GET",path="",namespace="",ingress="",service="",host=""} 1"#,
        r#"nginx_ingress_controller_requests{status="503",method="GET",path="/",namespace="default",ingress="shop",service="empty",host="down.example"} 1"#,
        r#"nginx_ingress_controller_request_duration_seconds_count{status="200",method="GET",path="/",namespace="default",ingress="shop",service="web",host="shop.example"} 2"#,
    ];
    eventually("the metrics of every request", || {
        let text = proxy.registry.encode();
        expected.iter().all(|line| text.contains(&format!("{line}\n")))
    })
    .await;
}

#[tokio::test]
async fn a_swapped_in_table_routes_the_next_request_even_on_an_open_connection() {
    let (old, new) = (Backend::start("old").await, Backend::start("new").await);
    let table = |service: &str, address| {
        let mut cluster = Cluster::default();
        cluster
            .service(service, &[address], false)
            .ingress("site", json!({"rules": [rule("site.example", &[("/", service)])]}));
        cluster.table()
    };
    let proxy = Proxy::start(table("old", old.address)).await;
    let mut connection = http1(TcpStream::connect(proxy.http).await.unwrap()).await;
    let reply =
        read_whole(connection.send_request(request("site.example", "/").body(empty()).unwrap()).await.unwrap()).await;
    assert_eq!(reply.backend(), "old");

    proxy.routes.store(Arc::new(table("new", new.address)));
    let reply =
        read_whole(connection.send_request(request("site.example", "/").body(empty()).unwrap()).await.unwrap()).await;
    assert_eq!(reply.backend(), "new");
    proxy.routes.store(Arc::new(RouteTable::default()));
    assert_eq!(get(proxy.http, "site.example", "/").await.status, 404);
}

#[tokio::test]
async fn an_endpoint_that_refuses_connections_is_skipped_and_counted() {
    let alive = Backend::start("alive").await;
    let mut cluster = Cluster::default();
    cluster
        .service("flaky", &[dead_address().await, alive.address], false)
        .service("down", &[dead_address().await, dead_address().await], false)
        .ingress(
            "retry",
            json!({"rules": [rule("flaky.example", &[("/", "flaky")]), rule("down.example", &[("/", "down")])]}),
        );
    let proxy = Proxy::start(cluster.table()).await;
    // Endpoints are picked at random: in 30 requests the dead one comes up (all but surely).
    for _ in 0..30 {
        let reply = get(proxy.http, "flaky.example", "/").await;
        assert_eq!((reply.status.as_u16(), reply.backend()), (200, "alive".to_string()));
    }
    let reply = get(proxy.http, "down.example", "/").await;
    assert_eq!((reply.status.as_u16(), reply.text()), (502, "502 Bad Gateway\n"));

    eventually("connect failures counted", || {
        let text = proxy.registry.encode();
        let flaky = r#"frontdoor_ingress_upstream_connect_failures_total{namespace="default",ingress="retry",service="flaky"} "#;
        let down = r#"frontdoor_ingress_upstream_connect_failures_total{namespace="default",ingress="retry",service="down"} 2"#;
        text.contains(flaky) && text.contains(down)
    })
    .await;
}

#[tokio::test]
async fn keep_alive_connections_to_backends_are_reused() {
    let backend = Backend::start("pooled").await;
    let mut cluster = Cluster::default();
    cluster
        .service("pooled", &[backend.address], false)
        .ingress("pool", json!({"rules": [rule("pool.example", &[("/", "pooled")])]}));
    let proxy = Proxy::start(cluster.table()).await;
    for path in ["/", "/bytes/100000", "/", "/echo", "/"] {
        for _ in 0..4 {
            assert_eq!(get(proxy.http, "pool.example", path).await.status, 200);
        }
    }
    assert_eq!(backend.seen().len(), 20);
    assert_eq!(backend.connections(), 1, "one upstream connection served every request in turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_share_pooled_connections_on_every_core() {
    let (one, two) = (Backend::start("one").await, Backend::start("two").await);
    let mut cluster = Cluster::default();
    cluster
        .service("both", &[one.address, two.address], false)
        .ingress("busy", json!({"rules": [rule("busy.example", &[("/", "both")])]}));
    let proxy = Proxy::start(cluster.table()).await;
    let mut clients = Vec::new();
    for client in 0..8 {
        let address = proxy.http;
        clients.push(tokio::spawn(async move {
            let stream = TcpStream::connect(address).await.unwrap();
            if client % 2 == 0 {
                let mut connection = http1(stream).await;
                for at in 0..50 {
                    let path = if at % 5 == 0 { "/bytes/70000" } else { "/" };
                    let sent = request("busy.example", path).body(empty()).unwrap();
                    assert_eq!(read_whole(connection.send_request(sent).await.unwrap()).await.status, 200);
                }
            } else {
                let connection = http2(stream).await;
                let streams: Vec<_> = (0..50)
                    .map(|_| {
                        let mut connection = connection.clone();
                        tokio::spawn(async move {
                            let sent = http::Request::builder().uri("http://busy.example/").body(empty()).unwrap();
                            read_whole(connection.send_request(sent).await.unwrap()).await.status
                        })
                    })
                    .collect();
                for stream in streams {
                    assert_eq!(stream.await.unwrap(), 200);
                }
            }
        }));
    }
    for client in clients {
        tokio::time::timeout(PATIENCE, client).await.unwrap().unwrap();
    }
    assert_eq!(one.seen().len() + two.seen().len(), 400);
    // HTTP/1.1 upstream: at most one connection per request in flight at once to an endpoint,
    // reused by the requests after. The HTTP/1.1 clients' requests (the fast path's pooled
    // sockets: 4 sequential clients, each of either endpoint) and the HTTP/2 streams' (hyper's
    // pooled connections: 4 × 50 concurrent) do not share connections.
    let connections = one.connections() + two.connections();
    assert!(connections <= 4 * 2 + 4 * 50, "{connections} upstream connections for 400 requests");
}
