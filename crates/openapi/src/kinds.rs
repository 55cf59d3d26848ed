//! Which k8s-openapi type describes each kind: the one place that names Rust API types.

use k8s_openapi::api::{apps, autoscaling, coordination, core, discovery, events, networking};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::{ListableResource, Resource};
use schemars::{JsonSchema, SchemaGenerator};

/// A kind whose schema was added to the generator.
#[derive(Debug, Clone)]
pub(crate) struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Upstream schema name, e.g. `io.k8s.api.core.v1.Service`.
    pub schema: String,
    /// `ServiceList`, for kinds that are listed.
    pub list_kind: Option<&'static str>,
}

impl Kind {
    /// `io.k8s.api.core.v1.ServiceList`: upstream names a list schema after its kind's package.
    pub fn list_schema(&self) -> Option<String> {
        let package = self.schema.rsplit_once('.').map_or("", |(p, _)| p);
        self.list_kind.map(|l| format!("{package}.{l}"))
    }
}

fn add<T: Resource + JsonSchema>(generator: &mut SchemaGenerator, list_kind: Option<&'static str>) -> Kind {
    generator.subschema_for::<T>();
    Kind { group: T::GROUP, version: T::VERSION, kind: T::KIND, schema: T::schema_name().into_owned(), list_kind }
}

fn listed<T: ListableResource + JsonSchema>(generator: &mut SchemaGenerator) -> Kind {
    add::<T>(generator, Some(T::LIST_KIND))
}

/// Every kind a served resource or subresource speaks: the catalogue's kinds (any kind missing
/// here is served without schemas; a test keeps the two in step) and `autoscaling/v1 Scale`.
pub(crate) fn register(generator: &mut SchemaGenerator) -> Vec<Kind> {
    let registrations: &[fn(&mut SchemaGenerator) -> Kind] = &[
        listed::<core::v1::Namespace>,
        listed::<core::v1::Node>,
        listed::<core::v1::Pod>,
        listed::<core::v1::ReplicationController>,
        listed::<core::v1::Service>,
        listed::<core::v1::Endpoints>,
        listed::<core::v1::Event>,
        listed::<core::v1::ConfigMap>,
        listed::<core::v1::Secret>,
        listed::<core::v1::ServiceAccount>,
        listed::<apps::v1::Deployment>,
        listed::<apps::v1::ReplicaSet>,
        listed::<apps::v1::StatefulSet>,
        listed::<apps::v1::ControllerRevision>,
        listed::<discovery::v1::EndpointSlice>,
        listed::<networking::v1::Ingress>,
        listed::<networking::v1::IngressClass>,
        listed::<events::v1::Event>,
        listed::<coordination::v1::Lease>,
        |g| add::<autoscaling::v1::Scale>(g, None),
        |g| add::<meta::Status>(g, None),
    ];
    registrations.iter().map(|register| register(generator)).collect()
}

/// The apimachinery schemas every document needs beside the kinds: list metadata, delete options
/// and the patch body.
pub(crate) fn register_common(generator: &mut SchemaGenerator) {
    generator.subschema_for::<meta::ListMeta>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::Patch>();
}

pub(crate) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(crate) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(crate) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(crate) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub(crate) const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
pub(crate) const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
