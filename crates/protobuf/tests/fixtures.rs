//! Real request bodies captured from kubectl 1.33 (see `fixtures/README.md`), each decoded and
//! compared with the JSON that Go's encoding/json produces for the same object.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::path::{Path, PathBuf};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn check(name: &str) {
    let dir = fixtures();
    let body = std::fs::read(dir.join(format!("{name}.pb"))).unwrap();
    let want: Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let got = frontdoor_protobuf::decode(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        got,
        want,
        "{name}: decoded\n{}\nexpected\n{}",
        serde_json::to_string_pretty(&got).unwrap(),
        serde_json::to_string_pretty(&want).unwrap()
    );
    // Every proper prefix of a body is malformed (or, cut at a field boundary, decodes to less):
    // it must never panic.
    for len in 0..body.len() {
        let _ = frontdoor_protobuf::decode(&body[..len]);
    }
}

macro_rules! fixture_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { check(stringify!($name)); })*

        #[test]
        fn every_fixture_has_a_test() {
            let known = [$(stringify!($name)),*];
            for entry in std::fs::read_dir(fixtures()).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "pb") {
                    let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
                    assert!(known.contains(&stem.as_str()), "fixture {stem} has no test");
                    assert!(path.with_extension("json").exists(), "fixture {stem} has no expected JSON");
                }
            }
        }
    };
}

fixture_tests!(
    clusterrole,
    configmap,
    configmap_binary,
    cronjob,
    delete_options,
    deployment,
    deployment_zero,
    ingress,
    job,
    namespace,
    pdb,
    pod_debug_copy,
    pod_debug_node,
    quota,
    role,
    rolebinding,
    secret,
    secret_tls_docker,
    selfsubjectaccessreview,
    service_clusterip,
    service_clusterip_none,
    service_externalname,
    service_loadbalancer,
    service_nodeport,
    serviceaccount,
);
