//! The served documents: one OpenAPI v3 document per group-version, serialized once, and the
//! index that points at them.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use crate::paths;
use crate::schemas::{self, Schemas};

/// The Kubernetes release whose API the documents describe (k8s-openapi's `v1_33` feature).
pub const KUBERNETES_VERSION: &str = "v1.33.0";

/// One group-version's OpenAPI v3 document, serialized.
#[derive(Debug)]
pub struct Document {
    path: String,
    json: Vec<u8>,
    hash: String,
}

impl Document {
    /// `api/v1` or `apis/apps/v1`: the part of the URL after `/openapi/v3/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The document as compact JSON (`Content-Type: application/json`). Documents are built once
    /// per process and handed out as `&'static Document`, so these bytes are `'static` too (for
    /// `Bytes::from_static`).
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// Upper-case hex SHA-512 of [`Document::json`], as upstream computes it: the `hash` query
    /// parameter of the document's URL, and a natural `ETag`.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// `/openapi/v3/api/v1?hash=…`: where the index points.
    pub fn server_relative_url(&self) -> String {
        format!("/openapi/v3/{}?hash={}", self.path, self.hash)
    }
}

/// Every document, core group first, in catalogue order.
pub(crate) fn all() -> &'static [Document] {
    static DOCUMENTS: OnceLock<Vec<Document>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let schemas = schemas::get();
        frontdoor_resources::groups()
            .into_iter()
            .flat_map(|(group, versions)| versions.into_iter().map(move |version| (group, version)))
            .map(|(group, version)| build(schemas, group, version))
            .collect()
    })
}

/// `api/v1` for the core group, `apis/<group>/<version>` otherwise.
pub(crate) fn path_of(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn build(schemas: &Schemas, group: &str, version: &str) -> Document {
    let paths = paths::for_group_version(schemas, group, version);
    let components = closure(schemas, &paths);
    let doc = json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": KUBERNETES_VERSION },
        "paths": paths,
        "components": { "schemas": components },
    });
    let json = serde_json::to_vec(&doc).expect("a serde_json::Value always serializes");
    let hash = Sha512::digest(&json).iter().map(|b| format!("{b:02X}")).collect();
    Document { path: path_of(group, version), json, hash }
}

/// The schemas `paths` references and everything they reference in turn, sorted by name.
fn closure(schemas: &Schemas, paths: &Map<String, Value>) -> Map<String, Value> {
    let mut pending = Vec::new();
    paths.values().for_each(|p| schemas::references(p, &mut pending));
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if let Some(schema) = schemas.defs.get(&name) {
            if seen.insert(name) {
                schemas::references(schema, &mut pending);
            }
        }
    }
    seen.into_iter()
        .map(|name| {
            let schema = schemas.defs[&name].clone();
            (name, schema)
        })
        .collect()
}
