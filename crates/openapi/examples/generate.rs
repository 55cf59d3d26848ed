//! Times the first generation of the documents (v3, then the merged v2 in protobuf and JSON) and
//! prints their sizes:
//! `cargo run --release -p frontdoor-openapi --example generate [api/v1]`. With a path argument,
//! also prints that document's JSON.

use std::time::Instant;

fn main() {
    let start = Instant::now();
    let index = frontdoor_openapi::index();
    let elapsed = start.elapsed();
    let mut total = 0;
    for doc in frontdoor_openapi::documents() {
        total += doc.json().len();
        eprintln!("{:32} {:>9} bytes  hash {}…", doc.path(), doc.json().len(), &doc.hash()[..16]);
    }
    eprintln!(
        "{} documents, {total} bytes, generated in {elapsed:?}",
        index["paths"].as_object().map_or(0, |p| p.len())
    );

    let start = Instant::now();
    let v2 = frontdoor_openapi::openapi_v2_protobuf();
    eprintln!("openapi/v2 protobuf: {} bytes, generated in {:?}", v2.len(), start.elapsed());
    let start = Instant::now();
    let v2 = frontdoor_openapi::openapi_v2_json();
    eprintln!("openapi/v2 JSON: {} bytes, generated in {:?}", v2.len(), start.elapsed());

    let manifest = serde_json::json!({"apiVersion": "v1", "kind": "Service", "spec": {"foo": 1}});
    let start = Instant::now();
    let found = frontdoor_openapi::unknown_fields("v1", "Service", &manifest);
    eprintln!("unknown_fields: {found:?} in {:?}", start.elapsed());

    if let Some(path) = std::env::args().nth(1) {
        let doc = frontdoor_openapi::document(&path).expect("no such document");
        println!("{}", String::from_utf8_lossy(doc.json()));
    }
}
