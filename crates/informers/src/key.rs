//! [`ObjectKey`]: `namespace/name`, the key every queue and cache lookup uses.

use std::fmt;

use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;

/// `namespace/name` of an object (`namespace` empty for cluster-scoped ones).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey { namespace: namespace.into(), name: name.into() }
    }

    pub fn of<K: kube::Resource>(object: &K) -> ObjectKey {
        ObjectKey::new(object.namespace().unwrap_or_default(), object.name_any())
    }

    /// The reflector store's reference to the object of this key.
    pub fn object_ref<K: kube::Resource<DynamicType = ()>>(&self) -> ObjectRef<K> {
        let reference = ObjectRef::new(&self.name);
        if self.namespace.is_empty() {
            reference
        } else {
            reference.within(&self.namespace)
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}
