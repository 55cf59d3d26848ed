//! The `paths` of a group-version's document: one collection and one item path per resource, plus
//! its subresources, with an operation per verb shaped like kube-apiserver's.
//!
//! kubectl reads two things here: that a kind's `patch` operation lists the `fieldValidation`
//! query parameter (then it leaves validation to the server), and that its request body accepts
//! `application/strategic-merge-patch+json` (then it computes strategic merge patches from the
//! component schemas).

use frontdoor_resources::{ResourceType, Subresource};
use serde_json::{json, Map, Value};

use crate::kinds;
use crate::schemas::Schemas;

/// Builds the paths of one group-version, keyed by URL template, in catalogue order.
pub(crate) fn for_group_version(schemas: &Schemas, group: &str, version: &str) -> Map<String, Value> {
    let mut paths = Map::new();
    for resource in frontdoor_resources::in_group_version(group, version) {
        Resource::new(schemas, resource).add_paths(&mut paths);
    }
    paths
}

/// One resource, with the names its operations are built from.
struct Resource<'a> {
    schemas: &'a Schemas,
    r: &'static ResourceType,
    /// Schema name of the kind, if k8s-openapi knows it.
    schema: Option<&'a str>,
    list_schema: Option<String>,
    /// `/api/v1` or `/apis/apps/v1`.
    prefix: String,
    /// `CoreV1`, `AppsV1`, `NetworkingV1`: the middle of upstream's operation ids.
    op_group: String,
    /// `core_v1`, `apps_v1`.
    tag: String,
}

impl<'a> Resource<'a> {
    fn new(schemas: &'a Schemas, r: &'static ResourceType) -> Self {
        let kind = schemas.kind(r.group, r.version, r.kind);
        let prefix =
            if r.group.is_empty() { format!("/api/{}", r.version) } else { format!("/apis/{}/{}", r.group, r.version) };
        let group_words: Vec<&str> =
            if r.group.is_empty() { vec!["core"] } else { r.group.trim_end_matches(".k8s.io").split('.').collect() };
        let camel: String = group_words.iter().map(|w| capitalize(w)).collect();
        let lower_camel = match camel.chars().next() {
            Some(first) => first.to_lowercase().chain(camel.chars().skip(1)).collect::<String>(),
            None => String::new(),
        };
        Resource {
            schemas,
            r,
            schema: kind.map(|k| k.schema.as_str()),
            list_schema: kind.and_then(|k| k.list_schema()),
            prefix,
            op_group: format!("{camel}{}", capitalize(r.version)),
            tag: format!("{lower_camel}_{}", r.version),
        }
    }

    fn has(&self, verb: &str) -> bool {
        self.r.verbs.contains(&verb)
    }

    /// `/api/v1/namespaces/{namespace}/services` or `/api/v1/nodes`.
    fn collection_path(&self) -> String {
        if self.r.namespaced {
            format!("{}/namespaces/{{namespace}}/{}", self.prefix, self.r.plural)
        } else {
            format!("{}/{}", self.prefix, self.r.plural)
        }
    }

    /// `Namespaced` for namespaced resources: upstream's operation ids say so.
    fn scope(&self) -> &'static str {
        if self.r.namespaced {
            "Namespaced"
        } else {
            ""
        }
    }

    fn add_paths(&self, paths: &mut Map<String, Value>) {
        let kind = self.r.kind;
        let gvk = json!({ "group": self.r.group, "kind": kind, "version": self.r.version });
        let scope = self.scope();
        let collection = self.collection_path();
        let item = format!("{collection}/{{name}}");

        let mut ops = Map::new();
        if self.has("list") {
            let id = format!("list{}{scope}{kind}", self.op_group);
            let op = self
                .op("list", &id, &format!("list or watch objects of kind {kind}"), &gvk)
                .params(list_params())
                .ok(&["200"], self.list_schema.as_deref(), LIST_MEDIA);
            ops.insert("get".into(), op.done());
        }
        if self.has("create") {
            let id = format!("create{}{scope}{kind}", self.op_group);
            let op = self
                .op("post", &id, &format!("create a {kind}"), &gvk)
                .params(write_params(false))
                .body(&[("*/*", self.schema)])
                .ok(&["200", "201", "202"], self.schema, OBJECT_MEDIA);
            ops.insert("post".into(), op.done());
        }
        if self.has("deletecollection") {
            let id = format!("delete{}Collection{scope}{kind}", self.op_group);
            let op = self
                .op("deletecollection", &id, &format!("delete collection of {kind}"), &gvk)
                .params(delete_collection_params())
                .body(&[("*/*", Some(kinds::DELETE_OPTIONS))])
                .ok(&["200"], Some(kinds::STATUS), OBJECT_MEDIA);
            ops.insert("delete".into(), op.done());
        }
        if !ops.is_empty() {
            ops.insert("parameters".into(), Value::Array(self.path_params(false)));
            paths.insert(collection, Value::Object(ops));
        }

        let mut ops = Map::new();
        if self.has("get") {
            let id = format!("read{}{scope}{kind}", self.op_group);
            let op = self.op("get", &id, &format!("read the specified {kind}"), &gvk).ok(
                &["200"],
                self.schema,
                OBJECT_MEDIA,
            );
            ops.insert("get".into(), op.done());
        }
        if self.has("update") {
            let id = format!("replace{}{scope}{kind}", self.op_group);
            let op = self
                .op("put", &id, &format!("replace the specified {kind}"), &gvk)
                .params(write_params(false))
                .body(&[("*/*", self.schema)])
                .ok(&["200", "201"], self.schema, OBJECT_MEDIA);
            ops.insert("put".into(), op.done());
        }
        if self.has("patch") {
            let id = format!("patch{}{scope}{kind}", self.op_group);
            let op = self
                .op("patch", &id, &format!("partially update the specified {kind}"), &gvk)
                .params(write_params(true))
                .body(&patch_bodies())
                .ok(&["200", "201"], self.schema, OBJECT_MEDIA);
            ops.insert("patch".into(), op.done());
        }
        if self.has("delete") {
            let id = format!("delete{}{scope}{kind}", self.op_group);
            let op = self
                .op("delete", &id, &format!("delete a {kind}"), &gvk)
                .params(delete_params())
                .body(&[("*/*", Some(kinds::DELETE_OPTIONS))])
                .ok(&["200", "202"], Some(kinds::STATUS), OBJECT_MEDIA);
            ops.insert("delete".into(), op.done());
        }
        if !ops.is_empty() {
            ops.insert("parameters".into(), Value::Array(self.path_params(true)));
            paths.insert(item.clone(), Value::Object(ops));
        }

        for sub in self.r.subresources {
            if let Some(ops) = self.subresource_ops(sub) {
                paths.insert(format!("{item}/{}", sub.name), Value::Object(ops));
            }
        }

        // Namespaced kinds can also be listed across all namespaces.
        if self.r.namespaced && self.has("list") {
            let id = format!("list{}{kind}ForAllNamespaces", self.op_group);
            let op = self.op("list", &id, &format!("list or watch objects of kind {kind}"), &gvk).ok(
                &["200"],
                self.list_schema.as_deref(),
                LIST_MEDIA,
            );
            let mut params = list_params();
            params.push(pretty_param());
            let ops = json!({ "get": op.done(), "parameters": params });
            paths.insert(format!("{}/{}", self.prefix, self.r.plural), ops);
        }
    }

    fn subresource_ops(&self, sub: &Subresource) -> Option<Map<String, Value>> {
        let kind = self.r.kind;
        let scope = self.scope();
        let gvk = json!({ "group": sub.group, "kind": sub.kind, "version": sub.version });
        let schema = self.subresource_schema(sub);
        let suffix = capitalize(sub.name);
        let mut ops = Map::new();
        if sub.name == "log" {
            let id = format!("read{}{scope}{kind}Log", self.op_group);
            let op = self
                .op("get", &id, &format!("read log of the specified {kind}"), &gvk)
                .params(log_params())
                .text_response();
            ops.insert("get".into(), op.done());
        } else {
            if sub.verbs.contains(&"get") {
                let id = format!("read{}{scope}{kind}{suffix}", self.op_group);
                let op = self.op("get", &id, &format!("read {} of the specified {kind}", sub.name), &gvk).ok(
                    &["200"],
                    schema,
                    OBJECT_MEDIA,
                );
                ops.insert("get".into(), op.done());
            }
            if sub.verbs.contains(&"update") {
                let id = format!("replace{}{scope}{kind}{suffix}", self.op_group);
                let op = self
                    .op("put", &id, &format!("replace {} of the specified {kind}", sub.name), &gvk)
                    .params(write_params(false))
                    .body(&[("*/*", schema)])
                    .ok(&["200", "201"], schema, OBJECT_MEDIA);
                ops.insert("put".into(), op.done());
            }
            if sub.verbs.contains(&"patch") {
                let id = format!("patch{}{scope}{kind}{suffix}", self.op_group);
                let op = self
                    .op("patch", &id, &format!("partially update {} of the specified {kind}", sub.name), &gvk)
                    .params(write_params(true))
                    .body(&patch_bodies())
                    .ok(&["200", "201"], schema, OBJECT_MEDIA);
                ops.insert("patch".into(), op.done());
            }
        }
        if ops.is_empty() {
            return None;
        }
        ops.insert("parameters".into(), Value::Array(self.path_params(true)));
        Some(ops)
    }

    /// The parameters every operation on a path shares: the path's names and `pretty`.
    fn path_params(&self, item: bool) -> Vec<Value> {
        let mut params = Vec::new();
        if item {
            params.push(path_param("name", &format!("name of the {}", self.r.kind)));
        }
        if self.r.namespaced {
            params.push(path_param("namespace", "object name and auth scope, such as for teams and projects"));
        }
        params.push(pretty_param());
        params
    }

    /// The schema a subresource speaks: the parent's own for `status`, `Scale` for `scale`.
    fn subresource_schema(&self, sub: &Subresource) -> Option<&'a str> {
        if (sub.group, sub.version, sub.kind) == (self.r.group, self.r.version, self.r.kind) {
            return self.schema;
        }
        self.schemas.name_for(sub.group, sub.version, sub.kind)
    }

    fn op(&self, action: &str, id: &str, description: &str, gvk: &Value) -> Operation {
        let mut op = Map::new();
        op.insert("description".into(), json!(description));
        op.insert("operationId".into(), json!(id));
        op.insert("tags".into(), json!([self.tag]));
        op.insert("x-kubernetes-action".into(), json!(action));
        op.insert("x-kubernetes-group-version-kind".into(), gvk.clone());
        Operation(op)
    }
}

/// An operation under construction. Keys are inserted in upstream's (alphabetical) order by
/// [`Operation::done`].
struct Operation(Map<String, Value>);

const OBJECT_MEDIA: &[&str] = &["application/json", "application/yaml"];
const LIST_MEDIA: &[&str] = &["application/json", "application/json;stream=watch", "application/yaml"];

impl Operation {
    fn params(mut self, params: Vec<Value>) -> Self {
        self.0.insert("parameters".into(), Value::Array(params));
        self
    }

    /// A request body accepting each media type, with the schema it carries.
    fn body(mut self, media: &[(&str, Option<&str>)]) -> Self {
        let content: Map<String, Value> =
            media.iter().map(|(m, schema)| (m.to_string(), schema_ref(*schema))).collect();
        self.0.insert("requestBody".into(), json!({ "content": content, "required": true }));
        self
    }

    /// Responses with these status codes, each returning `schema` in the given media types.
    fn ok(mut self, codes: &[&str], schema: Option<&str>, media: &[&str]) -> Self {
        let mut responses = Map::new();
        for code in codes {
            let content: Map<String, Value> = media.iter().map(|m| (m.to_string(), schema_ref(schema))).collect();
            let description = match *code {
                "201" => "Created",
                "202" => "Accepted",
                _ => "OK",
            };
            responses.insert(code.to_string(), json!({ "content": content, "description": description }));
        }
        responses.insert("401".into(), json!({ "description": "Unauthorized" }));
        self.0.insert("responses".into(), Value::Object(responses));
        self
    }

    /// A plain-text response (logs).
    fn text_response(mut self) -> Self {
        let string = json!({ "schema": { "type": "string" } });
        self.0.insert(
            "responses".into(),
            json!({
                "200": { "content": { "text/plain": string }, "description": "OK" },
                "401": { "description": "Unauthorized" },
            }),
        );
        self
    }

    fn done(self) -> Value {
        let mut entries: Vec<(String, Value)> = self.0.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Object(entries.into_iter().collect())
    }
}

fn schema_ref(schema: Option<&str>) -> Value {
    match schema {
        Some(name) => json!({ "schema": { "$ref": format!("#/components/schemas/{name}") } }),
        None => json!({ "schema": { "type": "object" } }),
    }
}

/// The four patch types kube-apiserver accepts; all carry a `meta.v1.Patch`.
fn patch_bodies() -> [(&'static str, Option<&'static str>); 4] {
    [
        ("application/apply-patch+yaml", Some(kinds::PATCH)),
        ("application/json-patch+json", Some(kinds::PATCH)),
        ("application/merge-patch+json", Some(kinds::PATCH)),
        ("application/strategic-merge-patch+json", Some(kinds::PATCH)),
    ]
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "description": description, "in": "path", "name": name, "required": true, "schema": { "type": "string" } })
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({ "description": description, "in": "query", "name": name, "schema": { "type": ty } })
}

fn pretty_param() -> Value {
    query("pretty", "string", "If 'true', the output is pretty printed.")
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "string",
        "When present, modifications are not persisted. The only valid value is All: every dry-run stage is processed.",
    )
}

/// Parameters of create, replace and (with `patch`) patch.
fn write_params(patch: bool) -> Vec<Value> {
    let mut params = vec![
        dry_run(),
        query(
            "fieldManager",
            "string",
            "Name of the actor making the change, at most 128 printable characters. Required for apply patches (application/apply-patch+yaml).",
        ),
        query(
            "fieldValidation",
            "string",
            "How the server treats unknown or duplicate fields in the request body. Ignore: drop them silently. Warn: drop them and report each in a Warning response header (the default). Strict: reject the request with a BadRequest error listing them.",
        ),
    ];
    if patch {
        params.push(query(
            "force",
            "boolean",
            "Force an apply patch: take ownership of fields other managers own. Must be unset for other patch types.",
        ));
    }
    params
}

fn grace_period() -> Value {
    query(
        "gracePeriodSeconds",
        "integer",
        "Seconds before the object is deleted; zero means immediately. Unset uses the kind's default.",
    )
}

fn propagation() -> Value {
    query(
        "propagationPolicy",
        "string",
        "Whether and how dependents are garbage collected: Orphan, Background or Foreground.",
    )
}

fn orphan() -> Value {
    query("orphanDependents", "boolean", "Deprecated, use propagationPolicy: whether dependents are orphaned.")
}

fn delete_params() -> Vec<Value> {
    vec![dry_run(), grace_period(), orphan(), propagation()]
}

fn selectors() -> [Value; 2] {
    [
        query(
            "fieldSelector",
            "string",
            "Restrict the returned objects to those whose fields match this selector. Defaults to everything.",
        ),
        query(
            "labelSelector",
            "string",
            "Restrict the returned objects to those whose labels match this selector. Defaults to everything.",
        ),
    ]
}

fn continue_param() -> Value {
    query("continue", "string", "The continue token of a previous, limited list call, to fetch the next chunk.")
}

fn paging() -> [Value; 5] {
    [
        query("limit", "integer", "Maximum number of objects to return; when more exist the list metadata carries a continue token."),
        query("resourceVersion", "string", "Constrains which resource versions the request may be served from."),
        query("resourceVersionMatch", "string", "How resourceVersion applies to a list call: Exact or NotOlderThan."),
        query("sendInitialEvents", "boolean", "With watch=true, start the stream with synthetic ADDED events for the current objects, ended by a bookmark."),
        query("timeoutSeconds", "integer", "Timeout for the list or watch call."),
    ]
}

fn list_params() -> Vec<Value> {
    let mut params = vec![
        query("allowWatchBookmarks", "boolean", "Ask for BOOKMARK watch events. Servers may ignore the request."),
        continue_param(),
    ];
    params.extend(selectors());
    params.extend(paging());
    params.push(query("watch", "boolean", "Watch for changes and stream them as added, modified and deleted events."));
    params.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    params
}

fn delete_collection_params() -> Vec<Value> {
    let mut params = vec![continue_param(), dry_run(), grace_period(), orphan(), propagation()];
    params.extend(selectors());
    params.extend(paging());
    params.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    params
}

fn log_params() -> Vec<Value> {
    vec![
        query(
            "container",
            "string",
            "The container whose logs to return. Defaults to the only container if there is one.",
        ),
        query("follow", "boolean", "Follow the log stream of the pod."),
        query("limitBytes", "integer", "Stop after this many bytes of log output."),
        query("previous", "boolean", "Return the logs of the previous, terminated container instance."),
        query("sinceSeconds", "integer", "Only return logs newer than this many seconds."),
        query("tailLines", "integer", "Only return this many lines from the end of the log."),
        query("timestamps", "boolean", "Prefix every line of log output with an RFC3339 timestamp."),
    ]
}
