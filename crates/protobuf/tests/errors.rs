//! Bad bodies are errors with readable messages, never panics.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use frontdoor_protobuf::{decode, DecodeError};

/// Encodes a varint.
fn varint(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A length-delimited field.
fn field(number: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(u64::from(number) << 3 | 2, &mut out);
    varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

/// A varint field.
fn varint_field(number: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(u64::from(number) << 3, &mut out);
    varint(value, &mut out);
    out
}

fn body(api_version: &str, kind: &str, raw: &[u8], encoding: &str, content_type: &str) -> Vec<u8> {
    let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
    let unknown =
        [field(1, &type_meta), field(2, raw), field(3, encoding.as_bytes()), field(4, content_type.as_bytes())]
            .concat();
    [b"k8s\0".as_slice(), &unknown].concat()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap()
}

#[test]
fn json_and_empty_bodies_are_not_protobuf() {
    assert!(matches!(decode(b"{\"kind\":\"ConfigMap\"}"), Err(DecodeError::NotProtobuf)));
    assert!(matches!(decode(b""), Err(DecodeError::NotProtobuf)));
    assert!(matches!(decode(b"k8s"), Err(DecodeError::NotProtobuf)));
}

#[test]
fn envelope_problems() {
    let err = decode(&body("example.com/v1", "Widget", &[], "", "")).unwrap_err();
    assert!(matches!(err, DecodeError::UnknownKind { .. }));
    assert_eq!(err.to_string(), r#"no protobuf decoding is known for kind "Widget" in "example.com/v1""#);

    assert!(matches!(decode(&body("", "", &[], "", "")), Err(DecodeError::MissingTypeMeta)));
    assert!(matches!(decode(b"k8s\0"), Err(DecodeError::MissingTypeMeta)));

    let err = decode(&body("v1", "ConfigMap", &[], "gzip", "")).unwrap_err();
    assert_eq!(err.to_string(), r#"unsupported contentEncoding "gzip" in the protobuf envelope"#);

    let err = decode(&body("v1", "ConfigMap", &[], "", "application/cbor")).unwrap_err();
    assert!(matches!(err, DecodeError::UnsupportedContentType(_)));
}

#[test]
fn an_envelope_may_carry_json() {
    let json = br#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c"}}"#;
    let value = decode(&body("v1", "ConfigMap", json, "", "application/json")).unwrap();
    assert_eq!(value["metadata"]["name"], "c");
}

#[test]
fn delete_options_decode_under_any_group_version() {
    let raw = varint_field(1, 15); // gracePeriodSeconds
    let value = decode(&body("apps/v1", "DeleteOptions", &raw, "", "")).unwrap();
    assert_eq!(value, serde_json::json!({"kind": "DeleteOptions", "apiVersion": "apps/v1", "gracePeriodSeconds": 15}));
}

#[test]
fn wrong_wire_types_name_the_field() {
    // ConfigMap.data (2) as a varint.
    let err = decode(&body("v1", "ConfigMap", &varint_field(2, 1), "", "")).unwrap_err();
    assert_eq!(err.to_string(), "malformed protobuf at data: expected a length-delimited value, found varint");

    // Deployment.spec.template.spec.containers[1].ports[0].containerPort (3) as a string.
    let port = field(3, b"80");
    let good = [field(1, b"a")].concat();
    let bad = [field(1, b"b"), field(6, &port)].concat();
    let pod_spec = [field(2, &good), field(2, &bad)].concat();
    let template = field(2, &pod_spec);
    let spec = field(3, &template);
    let deployment = field(2, &spec);
    let err = decode(&body("apps/v1", "Deployment", &deployment, "", "")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed protobuf at spec.template.spec.containers[1].ports[0].containerPort: expected a varint, found length-delimited"
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let raw =
        [field(99, b"future"), varint_field(98, 7), field(2, &[field(1, b"k"), field(2, b"v")].concat())].concat();
    let value = decode(&body("v1", "ConfigMap", &raw, "", "")).unwrap();
    assert_eq!(value, serde_json::json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"k": "v"}}));
}

#[test]
fn impossible_int_or_string_is_an_error() {
    // Service.spec.ports[0].targetPort = {type: 7}
    let target = varint_field(1, 7);
    let port = field(4, &target);
    let spec = field(1, &port);
    let err = decode(&body("v1", "Service", &field(2, &spec), "", "")).unwrap_err();
    assert_eq!(err.to_string(), "malformed protobuf at spec.ports[0].targetPort: IntOrString has impossible type 7");
}

#[test]
fn nested_objects_decode() {
    let mut object = body("v1", "ConfigMap", &field(2, &[field(1, b"k"), field(2, b"v")].concat()), "", "");
    for _ in 0..5 {
        object = body("apps/v1", "ControllerRevision", &field(2, &field(1, &object)), "", "");
    }
    let mut value = decode(&object).unwrap();
    for _ in 0..5 {
        value = value["data"].take();
    }
    assert_eq!(value, serde_json::json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"k": "v"}}));
}

#[test]
fn nesting_is_bounded() {
    // ControllerRevision.data (2) is a RawExtension (raw = 1) holding another envelope, 500 deep.
    let mut object = body("v1", "ConfigMap", &[], "", "");
    for _ in 0..500 {
        let raw = field(2, &field(1, &object));
        object = body("apps/v1", "ControllerRevision", &raw, "", "");
    }
    let result = decode(&object);
    assert!(matches!(result, Err(DecodeError::TooDeep)), "{result:?}");
}

#[test]
fn truncated_and_corrupted_fixtures_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "pb") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let original = fixture(&name);
        for len in 0..original.len() {
            let _ = decode(&original[..len]);
        }
        for _ in 0..2000 {
            let mut body = original.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % body.len();
                body[i] = next() as u8;
            }
            let _ = decode(&body);
        }
    }
}

#[test]
fn every_catalogue_kind_is_supported() {
    for resource in frontdoor_resources::all() {
        assert!(
            frontdoor_protobuf::supports(&resource.api_version(), resource.kind),
            "{} {}",
            resource.api_version(),
            resource.kind
        );
        // Connect subresources (`pods/portforward`: PodPortForwardOptions) take their options
        // in the query and upgrade the connection: no body to decode.
        for sub in resource.subresources.iter().filter(|sub| !sub.kind.ends_with("Options")) {
            let api_version = frontdoor_resources::group_version_string(sub.group, sub.version);
            assert!(frontdoor_protobuf::supports(&api_version, sub.kind), "{api_version} {}", sub.kind);
        }
    }
    assert!(frontdoor_protobuf::supports("authorization.k8s.io/v1", "SelfSubjectAccessReview"));
    assert!(frontdoor_protobuf::supports("v1", "DeleteOptions"));
    assert!(frontdoor_protobuf::kinds().count() >= 40);
}
