//! The seed manifests (`tests/e2e/manifests/*.yaml`) must validate cleanly after defaulting, on
//! create and when applied again over the stored object.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::{ingress, service};

fn manifests() -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/manifests");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("manifests dir").map(|e| e.expect("entry").path()).collect();
    files.sort();
    let mut out = Vec::new();
    for file in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
        let text = std::fs::read_to_string(&file).expect("read manifest");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).expect("YAML document");
            if !value.is_null() {
                out.push((file.display().to_string(), value));
            }
        }
    }
    out
}

/// What the allocator would add after a create.
fn allocate(object: &mut Value) {
    let spec = object["spec"].as_object_mut().expect("spec");
    let ty = spec["type"].as_str().unwrap_or("").to_string();
    if ty != "ExternalName" && !spec.contains_key("clusterIP") {
        spec.insert("clusterIP".into(), json!("10.96.0.42"));
        spec.insert("clusterIPs".into(), json!(["10.96.0.42"]));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        for (i, port) in spec["ports"].as_array_mut().expect("ports").iter_mut().enumerate() {
            if port.get("nodePort").is_none() {
                port["nodePort"] = json!(31000 + i);
            }
        }
    }
}

#[test]
fn seed_manifests_validate_cleanly() {
    let docs = manifests();
    assert!(docs.len() >= 12, "expected the seed manifests, found {}", docs.len());
    for (file, doc) in docs {
        let name = format!("{file}: {}", doc["metadata"]["name"]);
        match doc["kind"].as_str() {
            Some("Service") => {
                let mut created = doc.clone();
                service::default(&mut created, None);
                assert_eq!(service::validate(&created, None), vec![], "{name}");
                allocate(&mut created);
                let mut applied = doc.clone();
                service::default(&mut applied, Some(&created));
                assert_eq!(service::validate(&applied, Some(&created)), vec![], "{name} re-applied");
                assert_eq!(applied["spec"]["clusterIP"], created["spec"]["clusterIP"], "{name} keeps its clusterIP");
                assert_eq!(applied["spec"]["ports"], created["spec"]["ports"], "{name} keeps its node ports");
            }
            Some("Ingress") => {
                assert_eq!(ingress::validate(&doc, None), vec![], "{name}");
                assert_eq!(ingress::validate(&doc, Some(&doc)), vec![], "{name} re-applied");
            }
            other => panic!("{name}: unexpected kind {other:?}"),
        }
    }
}
