//! The shape of the generated schema in `schema.rs`.

/// A protobuf message: its fields in ascending field-number order.
#[derive(Debug)]
pub(crate) struct Message {
    /// Fully qualified proto name, e.g. `k8s.io.api.core.v1.Pod` (for tests and debugging).
    #[allow(dead_code)]
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Message {
    pub(crate) fn field(&self, number: u32) -> Option<&'static Field> {
        self.fields.binary_search_by_key(&number, |f| f.number).ok().map(|i| &self.fields[i])
    }
}

/// A zero value of this field is kept in JSON: the Go field is a pointer (so being on the wire
/// means it was set) or its JSON tag has no `omitempty`.
pub(crate) const KEEP_ZERO: u8 = 1;
/// The Go JSON tag has `omitzero`: a zero time is left out rather than written as `null`.
pub(crate) const OMIT_ZERO: u8 = 2;
/// An embedded Go struct whose fields JSON puts straight into the parent object
/// (`Volume.volumeSource`, `Probe.handler`).
pub(crate) const INLINE: u8 = 4;

#[derive(Debug)]
pub(crate) struct Field {
    pub number: u32,
    /// The JSON name.
    pub name: &'static str,
    pub ty: Ty,
    pub label: Label,
    pub flags: u8,
}

impl Field {
    pub(crate) const fn new(number: u32, name: &'static str, ty: Ty, label: Label, flags: u8) -> Field {
        Field { number, name, ty, label, flags }
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    Single,
    Repeated,
    /// `map<string, ty>`: entries are messages `{1: key, 2: value}`.
    Map,
}

/// A field's type. Besides the proto scalars and plain messages, the apimachinery types that
/// have a JSON form of their own are decoded specially.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    String,
    /// Go `[]byte`: base64 in JSON.
    Bytes,
    Bool,
    Int32,
    Int64,
    Message(&'static Message),
    /// `metav1.Time`: RFC 3339 with seconds, `null` when zero.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with microseconds, `null` when zero.
    MicroTime,
    /// `metav1.Duration`: Go's duration string (`1h0m0s`). No kind in today's roots has one.
    #[allow(dead_code)]
    Duration,
    /// `metav1.FieldsV1`: raw JSON bytes.
    FieldsV1,
    /// `runtime.RawExtension`: raw JSON bytes, or a nested protobuf object.
    RawExtension,
    /// `intstr.IntOrString`: a bare number or string.
    IntOrString,
    /// `resource.Quantity`: its canonical string.
    Quantity,
    /// A named Go `[]string` (`ExtraValue`, `Verbs`), wrapped as `{repeated string items = 1}`.
    StringList,
}
