#!/usr/bin/env python3
"""Generates ../src/schema.rs: the wire schema frontdoor-protobuf decodes with.

Usage:
    gen_schema.py API_DIR APIMACHINERY_DIR > ../src/schema.rs

API_DIR and APIMACHINERY_DIR are checkouts of the kubernetes/api and kubernetes/apimachinery
repositories at the same release tag (the tag is written into the output header; pass it with
SCHEMA_TAG=v0.36.3 in the environment).

Two sources are combined for every message:
  * `generated.proto` gives the structure: field numbers, names (which are the JSON names),
    proto types, repeated/map labels.
  * the Go structs in the package's `*.go` files give what protobuf cannot: whether a scalar
    field is a pointer, whether its JSON tag has `omitempty`/`omitzero`, and whether an
    embedded struct is inlined into its parent in JSON (`json:",inline"`).  Go's protobuf
    encoder writes every non-pointer field, zero or not, so these flags decide which zero
    values Go's encoding/json would have left out.

Only messages reachable from ROOT_PACKAGES' kinds (structs embedding TypeMeta, with an ObjectMeta
`metadata`) and
EXTRA_ROOTS are emitted.
"""
import os
import re
import sys

# (proto package suffix, directory under API_DIR, apiVersion)
ROOT_PACKAGES = [
    ("core.v1", "core/v1", "v1"),
    ("apps.v1", "apps/v1", "apps/v1"),
    ("batch.v1", "batch/v1", "batch/v1"),
    ("autoscaling.v1", "autoscaling/v1", "autoscaling/v1"),
    ("discovery.v1", "discovery/v1", "discovery.k8s.io/v1"),
    ("networking.v1", "networking/v1", "networking.k8s.io/v1"),
    ("events.v1", "events/v1", "events.k8s.io/v1"),
    ("coordination.v1", "coordination/v1", "coordination.k8s.io/v1"),
    ("authorization.v1", "authorization/v1", "authorization.k8s.io/v1"),
    ("rbac.v1", "rbac/v1", "rbac.authorization.k8s.io/v1"),
    ("policy.v1", "policy/v1", "policy/v1"),
]
META = "k8s.io.apimachinery.pkg.apis.meta.v1"
# (apiVersion, kind, fully qualified message) roots that carry no ObjectMeta.
EXTRA_ROOTS = [
    ("v1", "DeleteOptions", META + ".DeleteOptions"),
    ("meta.k8s.io/v1", "DeleteOptions", META + ".DeleteOptions"),
]
# Messages with a JSON form of their own: decoded by hand in the Rust code.
SPECIAL = {
    META + ".Time": "Time",
    META + ".MicroTime": "MicroTime",
    META + ".Duration": "Duration",
    META + ".FieldsV1": "FieldsV1",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawExtension",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
}
SCALARS = {"string": "String", "bytes": "Bytes", "bool": "Bool", "int32": "Int32", "int64": "Int64"}

MESSAGE_RE = re.compile(r"^message (\w+) \{$")
FIELD_RE = re.compile(
    r"^\s*(optional|repeated|required)?\s*(map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;"
)
STRUCT_RE = re.compile(r"^type (\w+) struct \{\s*$")
SLICE_TYPE_RE = re.compile(r"^type (\w+) \[\](\w+)\s*$")
GO_FIELD_RE = re.compile(r"^\s*(\w+\s+)?([^\s`]+)\s+`([^`]*)`\s*(//.*)?$")


def parse_proto(path):
    package = None
    messages = {}
    current = None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("package "):
                package = line.split()[1].rstrip(";")
                continue
            m = MESSAGE_RE.match(line)
            if m:
                current = []
                messages[m.group(1)] = current
                continue
            if line == "}":
                current = None
                continue
            if current is None or line.strip().startswith("//"):
                continue
            m = FIELD_RE.match(line)
            if m:
                label, typ, key, value, name, number = m.groups()
                if key:
                    current.append(dict(label="map", key=key, type=value, name=name, number=int(number)))
                else:
                    current.append(dict(label=label or "optional", type=typ, name=name, number=int(number)))
    return package, messages


def parse_go_dir(path):
    """Go struct facts keyed by (struct name, protobuf field number), and named slice types."""
    facts = {}
    slices = set()
    kinds = set()  # structs embedding metav1.TypeMeta: API kinds
    for entry in sorted(os.listdir(path)):
        if not entry.endswith(".go") or entry.endswith("_test.go") or entry.startswith("zz_") or entry.endswith(".pb.go"):
            continue
        struct = None
        with open(os.path.join(path, entry)) as f:
            for line in f:
                line = line.rstrip("\n")
                m = SLICE_TYPE_RE.match(line)
                if m:
                    slices.add(m.group(1))
                m = STRUCT_RE.match(line)
                if m:
                    struct = m.group(1)
                    continue
                if line == "}":
                    struct = None
                    continue
                if struct is None:
                    continue
                m = GO_FIELD_RE.match(line)
                if not m:
                    continue
                names, gotype, tag = m.group(1), m.group(2), m.group(3)
                if names is None and gotype == "metav1.TypeMeta":
                    kinds.add(struct)
                pm = re.search(r'protobuf:"([^"]*)"', tag)
                jm = re.search(r'json:"([^"]*)"', tag)
                if not pm or not jm:
                    continue
                number = int(pm.group(1).split(",")[1])
                json_parts = jm.group(1).split(",")
                facts[(struct, number)] = dict(
                    pointer=gotype.startswith("*"),
                    json_name=json_parts[0],
                    omitempty="omitempty" in json_parts[1:],
                    omitzero="omitzero" in json_parts[1:],
                    inline=names is None and json_parts[0] == "",
                )
    return facts, slices, kinds


def main():
    api_dir, machinery_dir = sys.argv[1], sys.argv[2]
    tag = os.environ.get("SCHEMA_TAG", "unknown")
    proto_files = []
    for root, _dirs, files in os.walk(api_dir):
        if "generated.proto" in files:
            proto_files.append(os.path.join(root, "generated.proto"))
    for root, _dirs, files in os.walk(os.path.join(machinery_dir, "pkg")):
        if "generated.proto" in files:
            proto_files.append(os.path.join(root, "generated.proto"))

    messages = {}  # fq name -> fields
    go_facts = {}  # fq message name -> {number: facts}
    wrappers = set()  # fq names of named []string types (`Verbs`, `ExtraValue`)
    kinds = set()  # fq names of API kinds
    for path in sorted(proto_files):
        package, msgs = parse_proto(path)
        facts, slices, go_kinds = parse_go_dir(os.path.dirname(path))
        for name, fields in msgs.items():
            fq = package + "." + name
            messages[fq] = (package, fields)
            go_facts[fq] = {num: f for (s, num), f in facts.items() if s == name}
            if name in go_kinds:
                kinds.add(fq)
            if name in slices and len(fields) == 1 and fields[0]["name"] == "items" and fields[0]["type"] == "string":
                wrappers.add(fq)

    def resolve(package, typ):
        if typ in SCALARS:
            return typ
        if typ.startswith("."):
            fq = typ[1:]
        else:
            fq = package + "." + typ
        if fq not in messages:
            sys.exit("unresolved type %s in %s" % (typ, package))
        return fq

    roots = []
    for suffix, _dir, api_version in ROOT_PACKAGES:
        package = "k8s.io.api." + suffix
        for fq, (pkg, fields) in sorted(messages.items()):
            if pkg != package or fq not in kinds:
                continue
            meta = [f for f in fields if f["name"] == "metadata" and f["number"] == 1]
            if meta and resolve(pkg, meta[0]["type"]) == META + ".ObjectMeta":
                roots.append((api_version, fq.rsplit(".", 1)[1], fq))
    roots.extend(EXTRA_ROOTS)

    reachable = []
    seen = set()
    todo = [fq for _, _, fq in roots]
    while todo:
        fq = todo.pop()
        if fq in seen or fq in SPECIAL or fq in wrappers:
            continue
        seen.add(fq)
        reachable.append(fq)
        package, fields = messages[fq]
        for f in fields:
            t = resolve(package, f["type"])
            if t not in SCALARS:
                todo.append(t)
            if f["label"] == "map" and f["key"] != "string":
                sys.exit("%s.%s: map key %s" % (fq, f["name"], f["key"]))

    def ident(fq):
        short = fq.replace("k8s.io.apimachinery.pkg.apis.", "").replace("k8s.io.apimachinery.pkg.", "")
        short = short.replace("k8s.io.api.", "")
        out = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", short.replace(".", "_"))
        return out.upper()

    def ty(package, typ):
        t = resolve(package, typ)
        if t in SCALARS:
            return "Ty::" + SCALARS[t]
        if t in SPECIAL:
            return "Ty::" + SPECIAL[t]
        if t in wrappers:
            return "Ty::StringList"
        return "Ty::Message(&%s)" % ident(t)

    out = []
    w = out.append
    w("// @generated by crates/protobuf/tools/gen_schema.py from kubernetes/api and")
    w("// kubernetes/apimachinery %s. Do not edit by hand: change the generator and re-run it." % tag)
    w("//")
    w("// Each message lists its fields in field-number order; names are the JSON names.")
    w("")
    w("use crate::schema_types::{Field, Label, Message, Ty, INLINE, KEEP_ZERO, OMIT_ZERO};")
    w("")
    w("/// `(apiVersion, kind)` of every object this schema can decode, sorted for binary search.")
    w("pub(crate) static ROOTS: &[(&str, &str, &Message)] = &[")
    for api_version, kind, fq in sorted(set(roots)):
        w('    ("%s", "%s", &%s),' % (api_version, kind, ident(fq)))
    w("];")
    for fq in sorted(reachable):
        package, fields = messages[fq]
        facts = go_facts.get(fq, {})
        w("")
        w("pub(crate) static %s: Message = Message {" % ident(fq))
        w('    name: "%s",' % fq)
        w("    fields: &[")
        for f in sorted(fields, key=lambda f: f["number"]):
            fact = facts.get(f["number"])
            json_name = f["name"]
            flags = []
            if fact is None:
                sys.stderr.write("note: no Go field for %s.%s\n" % (fq, f["name"]))
                # No Go struct field (should not happen for k8s types): keep what is on the wire.
                flags.append("KEEP_ZERO")
            else:
                if fact["json_name"] == "-":
                    continue
                if fact["json_name"] and fact["json_name"] != f["name"]:
                    sys.stderr.write("note: %s.%s is %s in JSON\n" % (fq, f["name"], fact["json_name"]))
                    json_name = fact["json_name"]
                if fact["pointer"] or not fact["omitempty"]:
                    flags.append("KEEP_ZERO")
                if fact["omitzero"]:
                    flags.append("OMIT_ZERO")
                if fact["inline"]:
                    flags.append("INLINE")
            label = {"optional": "Label::Single", "required": "Label::Single", "repeated": "Label::Repeated", "map": "Label::Map"}[f["label"]]
            w('        Field::new(%d, "%s", %s, %s, %s),' % (
                f["number"], json_name, ty(package, f["type"]), label, " | ".join(flags) or "0"))
        w("    ],")
        w("};")
    print("\n".join(out))


if __name__ == "__main__":
    main()
