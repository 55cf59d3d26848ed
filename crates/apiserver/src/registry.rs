//! The registry: the verbs on objects (create, update, patch, delete, get, list), independent of
//! HTTP. Handlers call it for requests; the server's own lifecycle tasks (namespace finalizer,
//! garbage collector, bootstrap objects) call it too, so every write follows the same rules.

use std::sync::Arc;

use serde_json::{json, Value};

use frontdoor_resources::{self as resources, ResourceType};
use frontdoor_store::{Batch, Precondition, Revision, Store, StoreError, Stored};

use crate::allocation::{self, Plan, ServiceNetwork};
use crate::errors::{ApiError, ApiResult, Cause};
use crate::request::{collection_prefix, object_key};
use crate::{kinds, patch, validation};

/// How many times a patch is retried when the object changes underneath it.
const PATCH_RETRIES: usize = 5;
/// Attempts of a write without preconditions (an unconditional PUT or DELETE) that keeps losing
/// races to other writers; upstream's GuaranteedUpdate retries without bound.
const UNCONDITIONAL_RETRIES: usize = 100;

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    /// Unknown fields found by `fieldValidation=Strict|Warn` are handled by the caller.
    pub subresource: Option<String>,
}

/// `DeleteOptions` as far as they matter here.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub grace_period_seconds: Option<i64>,
}

#[derive(Clone)]
pub struct Registry {
    pub store: Store,
    pub network: Arc<ServiceNetwork>,
}

/// How often a write is retried when a ClusterIP or NodePort we chose was taken concurrently.
const ALLOCATION_RETRIES: usize = 8;

/// Where an object lives: resource, namespace (for namespaced kinds) and name.
#[derive(Debug, Clone)]
pub struct ObjectRef<'a> {
    pub resource: &'static ResourceType,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

impl ObjectRef<'_> {
    fn key(&self) -> String {
        object_key(self.resource, self.namespace, self.name)
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn stamp(mut object: Value, revision: Revision) -> Value {
    object["metadata"]["resourceVersion"] = json!(revision.to_string());
    object
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str)
}

fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Whether writes of the kind hold allocations (a Service's ClusterIPs and NodePorts), planned
/// with each attempt and retried when another write took a chosen value first.
fn allocates(resource: &ResourceType) -> bool {
    resource.kind == "Service" && resource.group.is_empty()
}

/// Whether an update changes nothing but `metadata.resourceVersion` or `managedFields` (then
/// it is not written, as upstream skips no-op updates). Compares in place, without copies.
fn unchanged(next: &Value, current: &Value) -> bool {
    let (Some(a), Some(b)) = (next.as_object(), current.as_object()) else { return next == current };
    let ignored = |key: &str| matches!(key, "resourceVersion" | "managedFields");
    let same_metadata =
        |x: Option<&Value>, y: Option<&Value>| match (x.and_then(Value::as_object), y.and_then(Value::as_object)) {
            (Some(x), Some(y)) => {
                x.iter().filter(|(k, _)| !ignored(k)).count() == y.iter().filter(|(k, _)| !ignored(k)).count()
                    && x.iter().filter(|(k, _)| !ignored(k)).all(|(k, v)| y.get(k) == Some(v))
            }
            (x, y) => x == y,
        };
    a.len() == b.len()
        && a.iter().all(|(key, value)| match key.as_str() {
            "metadata" => same_metadata(Some(value), b.get("metadata")),
            _ => b.get(key) == Some(value),
        })
}

const GENERATE_NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub(crate) fn generated_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..5).map(|_| GENERATE_NAME_CHARS[rng.random_range(0..GENERATE_NAME_CHARS.len())] as char).collect()
}

impl Registry {
    pub fn new(store: Store, network: ServiceNetwork) -> Registry {
        Registry { store, network: Arc::new(network) }
    }

    /// The allocation plan of a Service write (`None` for other kinds).
    fn plan(&self, resource: &ResourceType, old: Option<&Value>, new: Option<&mut Value>) -> ApiResult<Option<Plan>> {
        if !allocates(resource) {
            return Ok(None);
        }
        match new {
            Some(new) => allocation::plan(&self.network, &self.store, old, new).map(Some),
            None => Ok(old.map(allocation::release_all)),
        }
    }

    /// Commits `batch` plus the plan's writes; on a clash over a value we chose, asks for a retry
    /// (`Ok(None)`); a clash over a value the user asked for is their error.
    async fn commit_with_plan(
        &self,
        resource: &ResourceType,
        name: &str,
        mut batch: Batch,
        plan: Option<&Plan>,
    ) -> ApiResult<Option<(Revision, Vec<Option<Stored>>)>> {
        let service_ref = batch.writes.first().map(|w| w.key.clone()).unwrap_or_default();
        if let Some(plan) = plan {
            batch.writes.extend(plan.writes(&service_ref));
        }
        match self.store.commit(batch).await {
            Ok(done) => Ok(Some(done)),
            Err(StoreError::AlreadyExists(key)) if Plan::is_allocation(&key) => {
                match plan.and_then(|p| p.clash(&key, name)) {
                    Some(error) => Err(error),
                    None => Ok(None),
                }
            }
            Err(e) => Err(ApiError::from_store(e, resource, name)),
        }
    }

    pub fn get(&self, at: &ObjectRef) -> ApiResult<Stored> {
        self.store.get(&at.key()).ok_or_else(|| ApiError::not_found(at.resource, at.name))
    }

    /// Lists a collection (one namespace or all), in key order.
    pub fn list(&self, resource: &ResourceType, namespace: Option<&str>) -> (Revision, Vec<Stored>) {
        let (revision, items) = self.store.list(&collection_prefix(resource, namespace), None, 0);
        (revision, items.into_iter().map(|(_, s)| s).collect())
    }

    /// Checks and fills in the object's identity (apiVersion, kind, namespace, name) from the URL.
    fn normalize_identity(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        object: &mut Value,
    ) -> ApiResult<()> {
        if !object.is_object() {
            return Err(ApiError::bad_request("the body of the request must be an object"));
        }
        let api_version = resource.api_version();
        if let Some(given) = object.get("apiVersion").and_then(Value::as_str) {
            if given != api_version {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({given}) does not match the expected API version ({api_version})"
                )));
            }
        }
        if let Some(given) = object.get("kind").and_then(Value::as_str) {
            if given != resource.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({given}) does not match the expected kind ({})",
                    resource.kind
                )));
            }
        }
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(resource.kind);
        object_shape(object).map_err(ApiError::bad_request)?;
        if !object.get("metadata").is_some_and(Value::is_object) {
            object["metadata"] = json!({});
        }
        if resource.namespaced {
            if let Some(ns) = namespace {
                match meta_str(object, "namespace") {
                    Some(given) if !given.is_empty() && given != ns => {
                        return Err(ApiError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ))
                    }
                    _ => object["metadata"]["namespace"] = json!(ns),
                }
            }
        }
        Ok(())
    }

    /// The type check: the object decodes as its kind (a status write: its status does). Runs
    /// before defaulting and preparation, which may then rely on every field's shape.
    fn check_types(&self, resource: &ResourceType, object: &Value, status: bool) -> ApiResult<()> {
        let types =
            if status { kinds::check_status_types(resource, object) } else { kinds::check_types(resource, object) };
        types.map_err(|e| {
            ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
                kind = resource.kind,
                version = resource.version
            ))
        })
    }

    /// Metadata rules and the kind's own validation (`old` on update; `status` for a
    /// status-subresource write), on an object that passed [`Registry::check_types`].
    fn validate(&self, resource: &ResourceType, object: &Value, old: Option<&Value>, status: bool) -> ApiResult<()> {
        let mut causes = validation::validate_metadata(object, kinds::name_rule(resource), resource.namespaced);
        causes.extend(kinds::validate(resource, object, old, status));
        self.invalid_if_any(resource, object, causes)
    }

    fn invalid_if_any(&self, resource: &ResourceType, object: &Value, causes: Vec<Cause>) -> ApiResult<()> {
        if causes.is_empty() {
            return Ok(());
        }
        let name = meta_str(object, "name").unwrap_or("");
        Err(ApiError::invalid(resource.kind, resource.group, name, causes))
    }

    /// New content may only go into a namespace that exists and is not terminating.
    fn check_namespace_open(&self, resource: &ResourceType, namespace: Option<&str>, name: &str) -> ApiResult<()> {
        let (true, Some(ns)) = (resource.namespaced, namespace) else { return Ok(()) };
        let namespaces = resources::lookup("", "v1", "namespaces").expect("namespaces are served");
        let Some(found) = self.store.get(&object_key(namespaces, None, ns)) else {
            return Err(ApiError::not_found(namespaces, ns));
        };
        if found.value.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                resource.qualified_plural(),
                name
            )));
        }
        Ok(())
    }

    /// Creates an object in `namespace` (from the URL). Returns the stored object.
    pub async fn create(
        &self,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        options: &WriteOptions,
    ) -> ApiResult<Stored> {
        self.normalize_identity(resource, namespace, &mut object)?;
        strings_not_null(resource, &mut object);
        self.check_types(resource, &object, false)?;
        if resource.namespaced && meta_str(&object, "namespace").is_none_or(str::is_empty) {
            object["metadata"]["namespace"] = json!("default");
        }
        if meta_str(&object, "name").is_none_or(str::is_empty) {
            if let Some(prefix) = meta_str(&object, "generateName").filter(|p| !p.is_empty()) {
                object["metadata"]["name"] = json!(format!("{prefix}{}", generated_suffix()));
            }
        }
        if meta_str(&object, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
            return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
        }
        let metadata = object["metadata"].as_object_mut().expect("normalized");
        metadata.remove("resourceVersion");
        metadata.remove("deletionTimestamp");
        metadata.remove("deletionGracePeriodSeconds");
        metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        metadata.insert("creationTimestamp".into(), json!(now_rfc3339()));
        kinds::prepare_for_create(resource, &mut object);
        kinds::default(resource, &mut object, None, false);
        self.admit_default_ingress_class(resource, &mut object);
        self.admit_service_account(resource, &mut object).await?;
        self.validate(resource, &object, None, false)?;
        let namespace = meta_str(&object, "namespace").map(String::from);
        let name = meta_str(&object, "name").unwrap_or("").to_string();
        self.check_namespace_open(resource, namespace.as_deref(), &name)?;
        let key = object_key(resource, namespace.as_deref(), &name);
        if self.store.get(&key).is_some() {
            return Err(ApiError::already_exists(resource, &name));
        }
        for _ in 0..ALLOCATION_RETRIES {
            // As in `write_update`: only a kind that allocates can be retried.
            let mut attempt = if allocates(resource) { object.clone() } else { std::mem::take(&mut object) };
            let plan = self.plan(resource, None, Some(&mut attempt))?;
            if options.dry_run {
                return Ok(unstored(attempt));
            }
            let batch = Batch::new().put(key.clone(), Precondition::Absent, Box::new(move |rev| stamp(attempt, rev)));
            if let Some((revision, stored)) = self.commit_with_plan(resource, &name, batch, plan.as_ref()).await? {
                return Ok(stored
                    .into_iter()
                    .next()
                    .flatten()
                    .unwrap_or_else(|| unstored(json!({"metadata": {"resourceVersion": revision.to_string()}}))));
            }
        }
        Err(ApiError::internal("failed to allocate: too many concurrent allocations, try again"))
    }

    /// The DefaultIngressClass admission plugin: a new Ingress that names no class (neither
    /// `spec.ingressClassName` nor the legacy `kubernetes.io/ingress.class` annotation) gets the
    /// default IngressClass (annotated `ingressclass.kubernetes.io/is-default-class: "true"`; the
    /// newest when several are, as upstream since 1.28).
    fn admit_default_ingress_class(&self, resource: &ResourceType, object: &mut Value) {
        if (resource.group, resource.kind) != ("networking.k8s.io", "Ingress") {
            return;
        }
        let named = object.pointer("/spec/ingressClassName").is_some_and(|v| !v.is_null())
            || object.pointer("/metadata/annotations/kubernetes.io~1ingress.class").is_some();
        if named {
            return;
        }
        let Some(classes) = resources::lookup("networking.k8s.io", "v1", "ingressclasses") else { return };
        let (_, classes) = self.list(classes, None);
        let default = classes
            .iter()
            .filter(|c| {
                c.value.pointer("/metadata/annotations/ingressclass.kubernetes.io~1is-default-class")
                    == Some(&json!("true"))
            })
            .max_by_key(|c| {
                let created = c.value.pointer("/metadata/creationTimestamp").and_then(Value::as_str);
                (created.unwrap_or_default().to_string(), c.revision)
            });
        if let Some(name) = default.and_then(|c| c.value.pointer("/metadata/name")).cloned() {
            if !object.get("spec").is_some_and(Value::is_object) {
                object["spec"] = json!({});
            }
            object["spec"]["ingressClassName"] = name;
        }
    }

    /// Replaces an object (PUT), or its status or scale subresource.
    pub async fn update(&self, at: &ObjectRef<'_>, object: Value, options: &WriteOptions) -> ApiResult<Stored> {
        let requested_rv = object.pointer("/metadata/resourceVersion").and_then(Value::as_str);
        if requested_rv.is_some_and(|rv| !rv.is_empty()) {
            return self.update_once(at, object, options).await;
        }
        // An unconditional update (no resourceVersion) applies to whatever version is current:
        // a write that raced it is retried from fresh state, as upstream's GuaranteedUpdate does.
        let mut attempt = 1;
        loop {
            match self.update_once(at, object.clone(), options).await {
                Err(e) if e.reason == "Conflict" && attempt < UNCONDITIONAL_RETRIES => attempt += 1,
                answer => return answer,
            }
        }
    }

    async fn update_once(&self, at: &ObjectRef<'_>, mut object: Value, options: &WriteOptions) -> ApiResult<Stored> {
        let resource = at.resource;
        if options.subresource.as_deref() != Some("scale") {
            self.normalize_identity(resource, at.namespace, &mut object)?;
            if let Some(given) = meta_str(&object, "name") {
                if given != at.name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({given}) does not match the name on the URL ({})",
                        at.name
                    )));
                }
            }
            object["metadata"]["name"] = json!(at.name);
        }
        let current = self.get(at)?;
        let requested_rv = match options.subresource.as_deref() {
            Some("scale") => object.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(String::from),
            _ => meta_str(&object, "resourceVersion").map(String::from),
        };
        if let Some(rv) = requested_rv.filter(|rv| !rv.is_empty()) {
            if rv != current.revision.to_string() {
                return Err(ApiError::modified(resource, at.name));
            }
        }
        let next = match options.subresource.as_deref() {
            Some("status") => kinds::prepare_for_status_update(resource, &current.value, object),
            Some("scale") => scale_into(resource, &current.value, &object)?,
            _ => {
                let mut next = object;
                kinds::prepare_for_update(resource, &current.value, &mut next);
                next
            }
        };
        self.write_update(at, &current, next, options).await
    }

    /// Checks and commits `next` as the new version of `current`.
    async fn write_update(
        &self,
        at: &ObjectRef<'_>,
        current: &Stored,
        mut next: Value,
        options: &WriteOptions,
    ) -> ApiResult<Stored> {
        let resource = at.resource;
        let status = options.subresource.as_deref() == Some("status");
        object_shape(&next).map_err(ApiError::bad_request)?;
        strings_not_null(resource, &mut next);
        self.check_types(resource, &next, status)?;
        // Identity and system fields never change through an update.
        for field in
            ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace", "name"]
        {
            match current.value["metadata"].get(field) {
                Some(v) => next["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = next["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        next["apiVersion"] = json!(resource.api_version());
        next["kind"] = json!(resource.kind);
        kinds::default(resource, &mut next, Some(&current.value), status);
        self.validate(resource, &next, Some(&current.value), status)?;
        if unchanged(&next, &current.value) {
            return Ok(current.clone());
        }
        let key = at.key();
        let namespace_finalizing =
            next.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty())
                && resource.kind == "Namespace";
        // Removing the last finalizer of an object being deleted completes its deletion. (A pod
        // in graceful termination has none: it is deleted by the node's grace-0 delete, and its
        // status updates meanwhile are ordinary updates.)
        let deletes = current.value.pointer("/metadata/deletionTimestamp").is_some()
            && !finalizers(&current.value).is_empty()
            && finalizers(&next).is_empty()
            && !namespace_finalizing;
        for _ in 0..ALLOCATION_RETRIES {
            // Each attempt starts from `next`; a kind that allocates nothing has one attempt only
            // (a clash is over an allocation), so it needs no copy.
            let mut attempt = if allocates(resource) { next.clone() } else { std::mem::take(&mut next) };
            let plan = if deletes {
                self.plan(resource, Some(&current.value), None)?
            } else {
                self.plan(resource, Some(&current.value), Some(&mut attempt))?
            };
            if options.dry_run {
                return Ok(unstored(attempt));
            }
            let final_state = deletes.then(|| attempt.clone());
            let batch = if deletes {
                Batch::new().delete(
                    key.clone(),
                    Precondition::AtRevision(current.revision),
                    Box::new(move |rev| stamp(attempt, rev)),
                )
            } else {
                Batch::new().put(
                    key.clone(),
                    Precondition::AtRevision(current.revision),
                    Box::new(move |rev| stamp(attempt, rev)),
                )
            };
            if let Some((revision, stored)) = self.commit_with_plan(resource, at.name, batch, plan.as_ref()).await? {
                // A write that removed the last finalizer deleted the object: answer with its final state.
                return Ok(stored
                    .into_iter()
                    .next()
                    .flatten()
                    .unwrap_or_else(|| unstored(stamp(final_state.unwrap_or_default(), revision))));
            }
        }
        Err(ApiError::internal("failed to allocate: too many concurrent allocations, try again"))
    }

    /// Applies a patch of `content_type` to an object or its subresource, retrying on conflicts.
    pub async fn patch(
        &self,
        at: &ObjectRef<'_>,
        content_type: &str,
        patch_body: &Value,
        options: &WriteOptions,
    ) -> ApiResult<Stored> {
        let resource = at.resource;
        for _ in 0..PATCH_RETRIES {
            let current = match self.get(at) {
                Ok(c) => c,
                Err(e) if content_type == patch::APPLY && options.subresource.is_none() => {
                    let _ = e;
                    let mut object = patch_body.clone();
                    object_shape(&object).map_err(ApiError::bad_request)?;
                    if !object.get("metadata").is_some_and(Value::is_object) {
                        object["metadata"] = json!({});
                    }
                    object["metadata"]["name"] = json!(at.name);
                    return self.create(resource, at.namespace, object, options).await;
                }
                Err(e) => return Err(e),
            };
            let (base, is_scale) = match options.subresource.as_deref() {
                Some("scale") => (scale_of(resource, &current)?, true),
                _ => ((*current.value).clone(), false),
            };
            let patched = patch::apply(content_type, &resource.api_version(), resource.kind, base, patch_body)?;
            object_shape(&patched)
                .map_err(|e| ApiError::bad_request(format!("the patched object is not valid: {e}")))?;
            let requested_rv = patched.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(String::from);
            if let Some(rv) = requested_rv.filter(|rv| *rv != current.revision.to_string() && !rv.is_empty()) {
                let _ = rv;
                return Err(ApiError::modified(resource, at.name));
            }
            let next = if is_scale {
                scale_into(resource, &current.value, &patched)?
            } else {
                match options.subresource.as_deref() {
                    Some("status") => kinds::prepare_for_status_update(resource, &current.value, patched),
                    _ => {
                        let mut next = patched;
                        kinds::prepare_for_update(resource, &current.value, &mut next);
                        next
                    }
                }
            };
            match self.write_update(at, &current, next, options).await {
                Err(e) if e.reason == "Conflict" && patch_body.pointer("/metadata/resourceVersion").is_none() => {
                    continue
                }
                other => return other,
            }
        }
        Err(ApiError::modified(resource, at.name))
    }

    /// Binds a pod to a node (the `pods/binding` subresource a scheduler posts): sets
    /// `spec.nodeName` once; a pod already bound elsewhere is a conflict, as upstream.
    pub async fn bind(&self, at: &ObjectRef<'_>, node: &str, dry_run: bool) -> ApiResult<()> {
        if node.is_empty() {
            return Err(ApiError::invalid("Binding", "", at.name, vec![Cause::required("target.name", "")]));
        }
        for _ in 0..PATCH_RETRIES {
            let current = self.get(at)?;
            match current.value.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                Some(bound) => {
                    return Err(ApiError::conflict(
                        at.resource,
                        at.name,
                        &format!("pod {} is already assigned to node \"{bound}\"", at.name),
                    ));
                }
                None if current.value.pointer("/metadata/deletionTimestamp").is_some() => {
                    return Err(ApiError::conflict(
                        at.resource,
                        at.name,
                        &format!("pod {} is being deleted, cannot be assigned to a host", at.name),
                    ));
                }
                None if current
                    .value
                    .pointer("/spec/schedulingGates")
                    .and_then(Value::as_array)
                    .is_some_and(|gates| !gates.is_empty()) =>
                {
                    return Err(ApiError::internal(format!("pod {} has non-empty .spec.schedulingGates", at.name)));
                }
                None => {}
            }
            if dry_run {
                return Ok(());
            }
            let mut next = (*current.value).clone();
            next["spec"]["nodeName"] = json!(node);
            mark_scheduled(&mut next);
            let batch = Batch::new().put(
                at.key(),
                Precondition::AtRevision(current.revision),
                Box::new(move |rev| stamp(next, rev)),
            );
            match self.store.commit(batch).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, at.resource, at.name)),
            }
        }
        Err(ApiError::modified(at.resource, at.name))
    }

    /// The namespace finalizer's last step: clear `spec.finalizers` and, with no other
    /// finalizers left, remove the namespace.
    pub async fn finalize(&self, at: &ObjectRef<'_>, mut next: Value) -> ApiResult<()> {
        let current = self.get(at)?;
        let key = at.key();
        next["metadata"]["resourceVersion"] = json!(current.revision.to_string());
        let batch = if finalizers(&current.value).is_empty() {
            Batch::new().delete(key, Precondition::AtRevision(current.revision), Box::new(move |rev| stamp(next, rev)))
        } else {
            Batch::new().put(key, Precondition::AtRevision(current.revision), Box::new(move |rev| stamp(next, rev)))
        };
        self.store.commit(batch).await.map_err(|e| ApiError::from_store(e, at.resource, at.name))?;
        Ok(())
    }

    /// Deletes an object: at once, or by marking it (deletionTimestamp) when finalizers remain.
    pub async fn delete(&self, at: &ObjectRef<'_>, options: &DeleteOptions) -> ApiResult<Value> {
        // Without preconditions the caller asked for the object gone whatever its version: a
        // write that raced this one is no reason to refuse (upstream retries from fresh state).
        let unconditional = options.precondition_uid.is_none() && options.precondition_resource_version.is_none();
        let mut attempt = 1;
        loop {
            match self.delete_once(at, options).await {
                Err(e) if unconditional && e.reason == "Conflict" && attempt < UNCONDITIONAL_RETRIES => attempt += 1,
                answer => return answer,
            }
        }
    }

    async fn delete_once(&self, at: &ObjectRef<'_>, options: &DeleteOptions) -> ApiResult<Value> {
        let resource = at.resource;
        let current = self.get(at)?;
        if let Some(uid) = &options.precondition_uid {
            let actual = meta_str(&current.value, "uid").unwrap_or("");
            if uid != actual {
                return Err(ApiError::conflict(
                    resource,
                    at.name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(rv) = &options.precondition_resource_version {
            if *rv != current.revision.to_string() {
                return Err(ApiError::conflict(
                    resource,
                    at.name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        current.revision
                    ),
                ));
            }
        }
        let mut next = (*current.value).clone();
        let mut pending = finalizers(&next);
        let extra = match options.propagation.as_deref() {
            Some("Orphan") => Some("orphan"),
            Some("Foreground") => Some("foregroundDeletion"),
            _ => None,
        };
        if let Some(f) = extra {
            if !pending.iter().any(|p| p == f) {
                pending.push(f.to_string());
            }
        }
        let namespace_with_content = resource.kind == "Namespace";
        if namespace_with_content {
            next["status"]["phase"] = json!("Terminating");
        }
        let pod_grace = pod_grace_period(resource, &current.value, options.grace_period_seconds);
        let graceful = namespace_with_content || !pending.is_empty() || pod_grace.is_some();
        if options.dry_run {
            return Ok(next);
        }
        let key = at.key();
        if graceful {
            let grace = pod_grace.unwrap_or(0);
            let terminating = next.pointer("/metadata/deletionTimestamp").is_some();
            let current_grace =
                next.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
            let shorter = pod_grace.is_some() && terminating && grace < current_grace;
            if terminating && !shorter && extra.is_none() && !namespace_with_content {
                return Ok((*current.value).clone());
            }
            if !terminating || shorter {
                let when = chrono::Utc::now() + chrono::Duration::seconds(grace);
                next["metadata"]["deletionTimestamp"] = json!(when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                next["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            }
            if !pending.is_empty() {
                next["metadata"]["finalizers"] = json!(pending);
            }
            if unchanged(&next, &current.value) {
                return Ok((*current.value).clone());
            }
            let batch = Batch::new().put(
                key,
                Precondition::AtRevision(current.revision),
                Box::new(move |rev| stamp(next, rev)),
            );
            let (_, stored) = self.store.commit(batch).await.map_err(|e| ApiError::from_store(e, resource, at.name))?;
            return Ok(stored_value(stored));
        }
        let plan = self.plan(resource, Some(&current.value), None)?;
        let batch =
            Batch::new().delete(key, Precondition::AtRevision(current.revision), Box::new(move |rev| stamp(next, rev)));
        self.commit_with_plan(resource, at.name, batch, plan.as_ref()).await?;
        Ok((*current.value).clone())
    }
}

/// What every object must be before anything reads or writes its fields: a JSON object whose
/// `metadata`, if present and not null, is an object too (a body of `[]`, a patch that turns
/// `metadata` into a string, and the like are refused here, in one place).
fn object_shape(object: &Value) -> Result<(), String> {
    let Some(fields) = object.as_object() else {
        return Err(format!("the object must be a JSON object, not {}", json_type(object)));
    };
    match fields.get("metadata") {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(other) => Err(format!("metadata must be an object, not {}", json_type(other))),
    }
}

/// A `null` where a map or list holds strings is `""`, as Go decodes and stores it (see
/// `frontdoor_openapi::strings_not_null`); objects without a `null` are not walked.
fn strings_not_null(resource: &ResourceType, object: &mut Value) {
    fn contains_null(value: &Value) -> bool {
        match value {
            Value::Null => true,
            Value::Array(items) => items.iter().any(contains_null),
            Value::Object(fields) => fields.values().any(contains_null),
            _ => false,
        }
    }
    if contains_null(object) {
        frontdoor_openapi::strings_not_null(&resource.api_version(), resource.kind, object);
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Upstream's graceful pod deletion: a pod bound to a node and not finished is only marked
/// (deletionTimestamp = now + grace); the node stops it and then deletes it with grace 0.
/// `None` means delete at once.
fn pod_grace_period(resource: &ResourceType, pod: &Value, requested: Option<i64>) -> Option<i64> {
    if (resource.group, resource.kind) != ("", "Pod") {
        return None;
    }
    let bound = pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let finished = matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
    if !bound || finished {
        return None;
    }
    let grace = requested
        .or_else(|| pod.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
        .unwrap_or(30)
        .max(0);
    // A grace of 0 still goes through the node unless the client forces it (gracePeriodSeconds=0
    // is what both `--force` and the node's final delete send).
    if requested == Some(0) {
        None
    } else {
        Some(grace.max(1))
    }
}

/// A result that was not (or is no longer) in the store: a dry run, or an object just deleted.
fn unstored(value: Value) -> Stored {
    let json = serde_json::to_vec(&value).unwrap_or_default().into();
    Stored { revision: 0, value: Arc::new(value), json }
}

fn stored_value(stored: Vec<Option<Stored>>) -> Value {
    stored.into_iter().next().flatten().map(|s| Arc::unwrap_or_clone(s.value)).unwrap_or_else(|| json!({}))
}

/// The autoscaling/v1 `Scale` view of a scalable object.
pub fn scale_of(resource: &ResourceType, stored: &Stored) -> ApiResult<Value> {
    let object = &stored.value;
    let selector = match resource.kind {
        "ReplicationController" => object
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
        _ => object
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
    };
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "uid": object["metadata"]["uid"],
            "resourceVersion": stored.revision.to_string(),
            "creationTimestamp": object["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    }))
}

/// Writes a `Scale`'s replicas back into the object.
fn scale_into(resource: &ResourceType, current: &Value, scale: &Value) -> ApiResult<Value> {
    let replicas = scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
    if replicas < 0 {
        let name = meta_str(current, "name").unwrap_or("");
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            vec![Cause::invalid("spec.replicas", &json!(replicas), "must be greater than or equal to 0")],
        ));
    }
    let mut next = current.clone();
    next["spec"]["replicas"] = json!(replicas);
    kinds::prepare_for_update(resource, current, &mut next);
    Ok(next)
}

/// Binding sets `PodScheduled=True` (replacing a `SchedulingGated` one), as upstream's binding.
fn mark_scheduled(pod: &mut Value) {
    let Some(status) = pod.as_object_mut().map(|pod| pod.entry("status").or_insert_with(|| json!({}))) else { return };
    let Some(status) = status.as_object_mut() else { return };
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    let Some(conditions) = conditions.as_array_mut() else { return };
    let scheduled = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
    match conditions.iter_mut().find(|c| c["type"] == "PodScheduled") {
        Some(existing) if existing["status"] == "True" => {}
        Some(existing) => *existing = scheduled,
        None => conditions.push(scheduled),
    }
}

#[cfg(test)]
mod tests {
    use super::unchanged;
    use serde_json::json;

    #[test]
    fn an_update_that_changes_only_the_revision_or_managed_fields_is_no_change() {
        let current =
            json!({"metadata": {"name": "a", "resourceVersion": "5", "labels": {"x": "1"}}, "spec": {"n": 1}});
        let same = json!({"metadata": {"name": "a", "resourceVersion": "9", "labels": {"x": "1"}, "managedFields": []}, "spec": {"n": 1}});
        assert!(unchanged(&same, &current));
        let without_revision = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"n": 1}});
        assert!(unchanged(&without_revision, &current));

        for changed in [
            json!({"metadata": {"name": "a", "resourceVersion": "5", "labels": {"x": "2"}}, "spec": {"n": 1}}),
            json!({"metadata": {"name": "a", "resourceVersion": "5"}, "spec": {"n": 1}}),
            json!({"metadata": {"name": "a", "resourceVersion": "5", "labels": {"x": "1"}}, "spec": {"n": 2}}),
            json!({"metadata": {"name": "a", "resourceVersion": "5", "labels": {"x": "1"}}, "spec": {"n": 1}, "status": {}}),
            json!({"metadata": {"name": "a", "resourceVersion": "5", "labels": {"x": "1"}, "uid": "u"}, "spec": {"n": 1}}),
            json!({"spec": {"n": 1}}),
        ] {
            assert!(!unchanged(&changed, &current), "{changed}");
            assert!(!unchanged(&current, &changed), "{changed}");
        }
    }
}
