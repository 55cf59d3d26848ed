//! Decoding as Go's decoder does, for what the informers watch: an API server written in Go
//! accepts, stores and returns objects whose required fields are absent or `null` (a condition
//! whose `lastTransitionTime` is client-go's zero time arrives as `null`), which k8s-openapi's
//! decoders refuse. One such object would make a whole list fail to decode, and the informer
//! would never sync. [`GoDecoded`] decodes strictly first and, only if that fails, again from a
//! copy with Go's zero values filled in from the OpenAPI schemas.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::Value;

use crate::informer::Watched;

/// A `K` decoded with Go's leniency; the informers' watches read these.
#[derive(Clone, Debug)]
pub(crate) struct GoDecoded<K>(pub K);

impl<K: Resource> Resource for GoDecoded<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn api_version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::api_version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

impl<'de, K: Watched> Deserialize<'de> for GoDecoded<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match K::deserialize(&value) {
            Ok(object) => Ok(GoDecoded(object)),
            Err(strict) => {
                let lenient = frontdoor_openapi::with_zero_values(&K::api_version(&()), &K::kind(&()), &value)
                    .ok_or_else(|| D::Error::custom(&strict))?;
                K::deserialize(&lenient).map(GoDecoded).map_err(D::Error::custom)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    #[test]
    fn objects_a_go_server_returns_decode_and_type_errors_still_fail() {
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "default"},
            "spec": {"ports": [{"port": 80}]},
            "status": {"conditions": [{"type": "StatusUpdate", "status": "True", "reason": "E2E", "message": "m", "lastTransitionTime": null}]},
        });
        assert!(serde_json::from_value::<Service>(service.clone()).is_err(), "k8s-openapi alone refuses it");
        let decoded: GoDecoded<Service> = serde_json::from_value(service).unwrap();
        assert_eq!(decoded.0.status.unwrap().conditions.unwrap()[0].reason, "E2E");
        let wrong = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": "eighty"}]}});
        assert!(serde_json::from_value::<GoDecoded<Service>>(wrong).is_err());
    }
}
