//! The OpenAPI v2 document, read back from its protobuf bytes the way kubectl 1.27 reads it.
//!
//! Field numbers are gnostic's `openapiv2/OpenAPIv2.proto`; the constants name the ones walked.

use serde_json::{json, Value};

use crate::gnostic::read::{parse, Msg};

// Document
const DOC_SWAGGER: u32 = 1;
const DOC_INFO: u32 = 2;
const DOC_PATHS: u32 = 8;
const DOC_DEFINITIONS: u32 = 9;
// Paths / PathItem
const PATHS_PATH: u32 = 2;
const ITEM_GET: u32 = 2;
const ITEM_POST: u32 = 4;
const ITEM_PATCH: u32 = 8;
const ITEM_PARAMETERS: u32 = 9;
// Operation
const OP_DESCRIPTION: u32 = 3;
const OP_OPERATION_ID: u32 = 5;
const OP_PRODUCES: u32 = 6;
const OP_CONSUMES: u32 = 7;
const OP_PARAMETERS: u32 = 8;
const OP_RESPONSES: u32 = 9;
const OP_VENDOR: u32 = 13;
// Schema
const S_REF: u32 = 1;
const S_FORMAT: u32 = 2;
const S_DESCRIPTION: u32 = 4;
const S_ADDITIONAL: u32 = 21;
const S_TYPE: u32 = 22;
const S_ITEMS: u32 = 23;
const S_ALL_OF: u32 = 24;
const S_PROPERTIES: u32 = 25;
const S_VENDOR: u32 = 31;

fn document() -> Msg<'static> {
    parse(crate::openapi_v2_protobuf()).expect("the document parses")
}

fn path_items(doc: &Msg<'static>) -> Vec<(&'static str, Msg<'static>)> {
    doc.msg(DOC_PATHS).expect("paths").named(PATHS_PATH)
}

fn definitions(doc: &Msg<'static>) -> Vec<(&'static str, Msg<'static>)> {
    doc.msg(DOC_DEFINITIONS).expect("definitions").named(1)
}

fn definition(doc: &Msg<'static>, name: &str) -> Msg<'static> {
    definitions(doc).into_iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no definition {name}")).1
}

fn property(schema: &Msg<'static>, name: &str) -> Msg<'static> {
    let props = schema.msg(S_PROPERTIES).expect("properties").named(1);
    props.into_iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no property {name}")).1
}

fn types(schema: &Msg<'_>) -> Vec<String> {
    schema.msg(S_TYPE).map(|t| t.strings(1).into_iter().map(String::from).collect()).unwrap_or_default()
}

/// A vendor extension's value, parsed (the YAML is JSON).
fn extension(exts: &[(&str, &str)], name: &str) -> Option<Value> {
    exts.iter().find(|(n, _)| *n == name).map(|(_, yaml)| serde_json::from_str(yaml).expect("extension is JSON"))
}

/// A non-body parameter's name and location, or ("body", "body") for the body parameter.
fn parameter(item: &Msg<'_>) -> (String, String) {
    let p = item.msg(1).expect("ParametersItem.parameter");
    if let Some(body) = p.msg(1) {
        return (body.string(2).to_string(), body.string(3).to_string());
    }
    let non_body = p.msg(2).expect("NonBodyParameter");
    let sub = (1..=4).find_map(|f| non_body.msg(f)).expect("a sub-schema");
    (sub.string(4).to_string(), sub.string(2).to_string())
}

/// client-go's `supportsQueryParam` (cli-runtime 1.27 `query_param_verifier.go`): the first path
/// whose PATCH carries the kind's group-version-kind decides.
fn supports_query_param(doc: &Msg<'static>, gvk: &Value, param: &str) -> Option<bool> {
    for (_, item) in path_items(doc) {
        let Some(patch) = item.msg(ITEM_PATCH) else { continue };
        if extension(&patch.extensions(OP_VENDOR), "x-kubernetes-group-version-kind").as_ref() != Some(gvk) {
            continue;
        }
        let query = patch
            .msgs(OP_PARAMETERS)
            .iter()
            .any(|p| p.msg(1).and_then(|p| p.msg(2)).and_then(|nb| nb.msg(3)).is_some_and(|q| q.string(4) == param));
        return Some(query);
    }
    None
}

#[test]
fn document_is_swagger_2_with_info_and_is_built_once() {
    let doc = document();
    assert_eq!(doc.string(DOC_SWAGGER), "2.0");
    let info = doc.msg(DOC_INFO).unwrap();
    assert_eq!(info.string(1), "Kubernetes");
    assert_eq!(info.string(2), crate::KUBERNETES_VERSION);
    assert!(std::ptr::eq(crate::openapi_v2_protobuf(), crate::openapi_v2_protobuf()));
    // The JSON rendering is the same document.
    let json: Value = serde_json::from_slice(crate::openapi_v2_json()).unwrap();
    assert_eq!(json["swagger"], "2.0");
    assert_eq!(json["paths"].as_object().unwrap().len(), path_items(&doc).len());
    assert_eq!(json["definitions"].as_object().unwrap().len(), definitions(&doc).len());
}

#[test]
fn service_patch_takes_field_validation_and_strategic_merge_patches() {
    let doc = document();
    let (_, item) = path_items(&doc)
        .into_iter()
        .find(|(p, _)| *p == "/api/v1/namespaces/{namespace}/services/{name}")
        .expect("service item path");
    let patch = item.msg(ITEM_PATCH).expect("patch operation");
    assert_eq!(patch.string(OP_OPERATION_ID), "patchCoreV1NamespacedService");
    assert!(patch.string(OP_DESCRIPTION).contains("partially update"));
    let exts = patch.extensions(OP_VENDOR);
    assert_eq!(extension(&exts, "x-kubernetes-action"), Some(json!("patch")));
    assert_eq!(
        extension(&exts, "x-kubernetes-group-version-kind"),
        Some(json!({"group": "", "kind": "Service", "version": "v1"}))
    );
    let params: Vec<(String, String)> = patch.msgs(OP_PARAMETERS).iter().map(parameter).collect();
    let expect = |name: &str, at: &str| (name.to_string(), at.to_string());
    assert_eq!(
        params,
        [
            expect("body", "body"),
            expect("dryRun", "query"),
            expect("fieldManager", "query"),
            expect("fieldValidation", "query"),
            expect("force", "query")
        ]
    );
    // The body parameter is required and carries meta.v1.Patch.
    let body = patch.msgs(OP_PARAMETERS)[0].msg(1).unwrap().msg(1).unwrap();
    assert_eq!(body.varint(4), Some(1));
    assert_eq!(body.msg(5).unwrap().string(S_REF), "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch");
    // kubectl's GetConsumes: strategic merge patch is offered, so apply computes one.
    let consumes = patch.strings(OP_CONSUMES);
    assert!(consumes.contains(&"application/strategic-merge-patch+json"), "{consumes:?}");
    assert!(consumes.contains(&"application/apply-patch+yaml"));
    assert!(patch.strings(OP_PRODUCES).contains(&"application/json"));
    // 200 returns a Service.
    let responses = patch.msg(OP_RESPONSES).unwrap().named(1);
    let (code, ok) = &responses[0];
    assert_eq!(*code, "200");
    let response = ok.msg(1).expect("Response");
    assert_eq!(response.string(1), "OK");
    assert_eq!(response.msg(2).unwrap().msg(1).unwrap().string(S_REF), "#/definitions/io.k8s.api.core.v1.Service");
    // Path-level parameters: name, namespace (path, required) and pretty.
    let path_params: Vec<(String, String)> = item.msgs(ITEM_PARAMETERS).iter().map(parameter).collect();
    assert_eq!(path_params, [expect("name", "path"), expect("namespace", "path"), expect("pretty", "query")]);
    let name = item.msgs(ITEM_PARAMETERS)[0].msg(1).unwrap().msg(2).unwrap().msg(4).unwrap();
    assert_eq!(name.varint(1), Some(1), "path parameters are required");
    assert_eq!(name.string(5), "string", "PathParameterSubSchema.type");
}

#[test]
fn every_served_kind_supports_field_validation_as_client_go_checks_it() {
    let doc = document();
    for r in frontdoor_resources::all().iter().filter(|r| r.verbs.contains(&"patch")) {
        let gvk = json!({"group": r.group, "kind": r.kind, "version": r.version});
        assert_eq!(supports_query_param(&doc, &gvk, "fieldValidation"), Some(true), "{gvk}");
    }
    let unknown = json!({"group": "example.com", "kind": "Widget", "version": "v1"});
    assert_eq!(supports_query_param(&doc, &unknown, "fieldValidation"), None);
}

#[test]
fn collections_list_create_and_log_have_v2_shapes() {
    let doc = document();
    let items = path_items(&doc);
    let find = |path: &str| items.iter().find(|(p, _)| *p == path).unwrap_or_else(|| panic!("{path}")).1.clone();
    let deployments = find("/apis/apps/v1/namespaces/{namespace}/deployments");
    let list = deployments.msg(ITEM_GET).unwrap();
    assert_eq!(list.string(OP_OPERATION_ID), "listAppsV1NamespacedDeployment");
    assert!(list.strings(OP_PRODUCES).contains(&"application/json;stream=watch"));
    assert!(list.strings(OP_CONSUMES).is_empty());
    let ok = &list.msg(OP_RESPONSES).unwrap().named(1)[0].1;
    let list_schema = ok.msg(1).unwrap().msg(2).unwrap().msg(1).unwrap();
    assert_eq!(list_schema.string(S_REF), "#/definitions/io.k8s.api.apps.v1.DeploymentList");
    let create = deployments.msg(ITEM_POST).unwrap();
    assert_eq!(create.strings(OP_CONSUMES), ["*/*"]);
    let log = find("/api/v1/namespaces/{namespace}/pods/{name}/log").msg(ITEM_GET).unwrap();
    assert_eq!(log.strings(OP_PRODUCES), ["text/plain"]);
    let ok = &log.msg(OP_RESPONSES).unwrap().named(1)[0].1;
    assert_eq!(types(&ok.msg(1).unwrap().msg(2).unwrap().msg(1).unwrap()), ["string"]);
    // Typed query parameters keep their type.
    let limit = list.msgs(OP_PARAMETERS).into_iter().find(|p| parameter(p).0 == "limit").unwrap();
    assert_eq!(limit.msg(1).unwrap().msg(2).unwrap().msg(3).unwrap().string(6), "integer");
}

#[test]
fn service_definition_is_tagged_described_and_references_its_spec() {
    let doc = document();
    let service = definition(&doc, "io.k8s.api.core.v1.Service");
    assert_eq!(types(&service), ["object"]);
    assert_eq!(
        extension(&service.extensions(S_VENDOR), "x-kubernetes-group-version-kind"),
        Some(json!([{"group": "", "kind": "Service", "version": "v1"}]))
    );
    let spec = property(&service, "spec");
    assert_eq!(spec.string(S_REF), "#/definitions/io.k8s.api.core.v1.ServiceSpec");
    assert!(spec.string(S_DESCRIPTION).contains("Spec defines the behavior of a service"));
    assert!(spec.msg(S_ALL_OF).is_none() && spec.msg(S_TYPE).is_none(), "a $ref stands alone");
    let ports = property(&definition(&doc, "io.k8s.api.core.v1.ServiceSpec"), "ports");
    let exts = ports.extensions(S_VENDOR);
    assert_eq!(extension(&exts, "x-kubernetes-patch-merge-key"), Some(json!("port")));
    assert_eq!(extension(&exts, "x-kubernetes-patch-strategy"), Some(json!("merge")));
    assert_eq!(extension(&exts, "x-kubernetes-list-map-keys"), Some(json!(["port", "protocol"])));
    let list = definition(&doc, "io.k8s.api.core.v1.ServiceList");
    assert_eq!(
        extension(&list.extensions(S_VENDOR), "x-kubernetes-group-version-kind"),
        Some(json!([{"group": "", "kind": "ServiceList", "version": "v1"}]))
    );
}

#[test]
fn containers_merge_by_name_and_ports_by_container_port() {
    let doc = document();
    let pod_spec = definition(&doc, "io.k8s.api.core.v1.PodSpec");
    let containers = property(&pod_spec, "containers");
    assert_eq!(types(&containers), ["array"]);
    let exts = containers.extensions(S_VENDOR);
    assert_eq!(extension(&exts, "x-kubernetes-patch-merge-key"), Some(json!("name")));
    assert_eq!(extension(&exts, "x-kubernetes-patch-strategy"), Some(json!("merge")));
    let item = containers.msg(S_ITEMS).unwrap().msgs(1);
    assert_eq!(item.len(), 1);
    assert_eq!(item[0].string(S_REF), "#/definitions/io.k8s.api.core.v1.Container");
    let volumes = property(&pod_spec, "volumes");
    let strategy = extension(&volumes.extensions(S_VENDOR), "x-kubernetes-patch-strategy");
    assert_eq!(strategy, Some(json!("merge,retainKeys")));
    let container = definition(&doc, "io.k8s.api.core.v1.Container");
    let ports = property(&container, "ports");
    assert_eq!(extension(&ports.extensions(S_VENDOR), "x-kubernetes-patch-merge-key"), Some(json!("containerPort")));
    let port = definition(&doc, "io.k8s.api.core.v1.ContainerPort");
    assert!(property(&port, "containerPort").string(S_DESCRIPTION).contains("port"));
    assert_eq!(types(&property(&port, "containerPort")), ["integer"]);
    // Maps: labels are an object of strings.
    let labels = property(&definition(&doc, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"), "labels");
    assert_eq!(types(&labels), ["object"]);
    assert_eq!(types(&labels.msg(S_ADDITIONAL).unwrap().msg(1).unwrap()), ["string"]);
}

#[test]
fn int_or_string_and_quantity_are_strings_as_upstream_publishes_them() {
    let doc = document();
    let int_or_string = definition(&doc, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    assert_eq!(types(&int_or_string), ["string"]);
    assert_eq!(int_or_string.string(S_FORMAT), "int-or-string");
    assert_eq!(types(&definition(&doc, "io.k8s.apimachinery.pkg.api.resource.Quantity")), ["string"]);
}

/// What kube-openapi's `proto.NewOpenAPIData` (kubectl 1.27) rejects, checked on every schema of
/// every definition: one bad schema would fail the whole document, and `kubectl apply` with it.
fn check_parsable(schema: &Msg<'_>, names: &std::collections::HashSet<&str>, path: &str, errors: &mut Vec<String>) {
    let ty = types(schema);
    let reference = schema.string(S_REF);
    if !reference.is_empty() {
        if schema.msg(S_PROPERTIES).is_some_and(|p| !p.0.is_empty()) {
            errors.push(format!("{path}: unallowed embedded type definition"));
        }
        if !ty.is_empty() {
            errors.push(format!("{path}: definition reference can't have a type"));
        }
        match reference.strip_prefix("#/definitions/") {
            Some(name) if names.contains(name) => {}
            _ => errors.push(format!("{path}: unresolvable reference {reference}")),
        }
        return;
    }
    match ty.as_slice() {
        [] => {}
        [t] if t == "object" => {}
        [t] if t == "array" => {
            let items = schema.msg(S_ITEMS).map(|i| i.msgs(1)).unwrap_or_default();
            if items.len() != 1 {
                errors.push(format!("{path}: array should have exactly one sub-item"));
            }
        }
        [t] if ["string", "number", "integer", "boolean"].contains(&t.as_str()) => {
            if schema.msg(S_PROPERTIES).is_some() {
                errors.push(format!("{path}: properties on a {t}"));
            }
        }
        other => errors.push(format!("{path}: unsupported type {other:?}")),
    }
    for (name, property) in schema.msg(S_PROPERTIES).map(|p| p.named(1)).unwrap_or_default() {
        check_parsable(&property, names, &format!("{path}.{name}"), errors);
    }
    for item in schema.msg(S_ITEMS).map(|i| i.msgs(1)).unwrap_or_default() {
        check_parsable(&item, names, &format!("{path}[]"), errors);
    }
    if let Some(additional) = schema.msg(S_ADDITIONAL).and_then(|a| a.msg(1)) {
        check_parsable(&additional, names, &format!("{path}{{}}"), errors);
    }
    // Every extension must be parsable YAML (here: JSON) for kube-openapi to keep it.
    for (name, yaml) in schema.extensions(S_VENDOR) {
        if serde_json::from_str::<Value>(yaml).is_err() {
            errors.push(format!("{path}: extension {name} is not JSON: {yaml}"));
        }
    }
}

#[test]
fn every_definition_is_parsable_by_kube_openapi() {
    let doc = document();
    let defs = definitions(&doc);
    assert!(defs.len() > 100, "{}", defs.len());
    let names: std::collections::HashSet<&str> = defs.iter().map(|(n, _)| *n).collect();
    let mut errors = Vec::new();
    for (name, schema) in &defs {
        check_parsable(schema, &names, name, &mut errors);
    }
    // References from the paths resolve too.
    for (path, item) in path_items(&doc) {
        for field in 2..=8 {
            let Some(op) = item.msg(field) else { continue };
            for p in op.msgs(OP_PARAMETERS) {
                if let Some(body) = p.msg(1).and_then(|p| p.msg(1)) {
                    check_parsable(&body.msg(5).unwrap(), &names, &format!("{path} body"), &mut errors);
                }
            }
            for (code, response) in op.msg(OP_RESPONSES).unwrap().named(1) {
                if let Some(s) = response.msg(1).and_then(|r| r.msg(2)).and_then(|s| s.msg(1)) {
                    check_parsable(&s, &names, &format!("{path} {code}"), &mut errors);
                }
            }
        }
    }
    assert!(errors.is_empty(), "{errors:#?}");
    // Every served kind can be looked up by its group-version-kind, as kubectl's
    // `LookupResource` does.
    for r in frontdoor_resources::all() {
        let want = json!({"group": r.group, "kind": r.kind, "version": r.version});
        let tagged = defs.iter().filter(|(_, s)| {
            extension(&s.extensions(S_VENDOR), "x-kubernetes-group-version-kind")
                .and_then(|v| v.as_array().cloned())
                .is_some_and(|gvks| gvks.contains(&want))
        });
        assert_eq!(tagged.count(), 1, "{want}");
    }
}

#[test]
fn wire_encoding_matches_protobuf() {
    // Known encodings: a varint field, a string, a negative int64, a double, `false` in a oneof.
    let schema = json!({
        "description": "é",
        "maxLength": 300,
        "minLength": -1,
        "maximum": 1.5,
        "additionalProperties": false,
    });
    let encoded = crate::gnostic::encode(&json!({ "definitions": { "A": schema } }));
    let named = parse(&encoded).unwrap().msg(DOC_DEFINITIONS).unwrap().msg(1).unwrap();
    assert_eq!(named.string(1), "A");
    let decoded = named.msg(2).unwrap();
    assert_eq!(decoded.double(7), Some(1.5));
    assert_eq!(decoded.varint(12), Some(u64::MAX), "-1 as int64");
    let schema_bytes = named.all_bytes(2).next().unwrap();
    let mut want = vec![0x22, 2, 0xc3, 0xa9]; // field 4, length 2, UTF-8 é
    want.extend([0x39]); // field 7, wire type 1
    want.extend(1.5f64.to_le_bytes());
    want.extend([0x58, 0xac, 0x02]); // field 11: 300
    want.extend([0x60, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]); // field 12: -1
    want.extend([0xaa, 0x01, 2, 0x10, 0x00]); // field 21 (two-byte key), AdditionalPropertiesItem{boolean: false}
    assert_eq!(schema_bytes, want.as_slice());
}
