//! Services: upstream's v1 defaulting plus the registry's create/update preparation
//! (`SetDefaults_Service`, `normalizeClusterIPs`, `patchAllocatedValues`, `initIPFamilyFields`,
//! `dropTypeDependentFields`), and `ValidateService` / `ValidateServiceUpdate`.
//!
//! The cluster is assumed single-stack with IPv4 Service ranges ([`CLUSTER_IP_FAMILY`]), as
//! frontdoor's allocator is; upstream's checks that depend on the cluster's families (dual-stack
//! policy, IPv6 families) answer as a single-stack IPv4 kube-apiserver would.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use crate::formats::{self, FIELD_IMMUTABLE};
use crate::gofmt::{self, quote};
use crate::json as j;
use crate::{dedup, FieldError};

/// The IP family of the cluster's Service range (single-stack).
pub const CLUSTER_IP_FAMILY: &str = "IPv4";

const CLUSTER_IP: &str = "ClusterIP";
const NODE_PORT: &str = "NodePort";
const LOAD_BALANCER: &str = "LoadBalancer";
const EXTERNAL_NAME: &str = "ExternalName";
const NONE: &str = "None";
const SINGLE_STACK: &str = "SingleStack";
const PREFER_DUAL_STACK: &str = "PreferDualStack";
const REQUIRE_DUAL_STACK: &str = "RequireDualStack";

const SUPPORTED_TYPES: &[&str] = &[CLUSTER_IP, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT];
const SUPPORTED_AFFINITIES: &[&str] = &["ClientIP", "None"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
const IP_FAMILIES: &[&str] = &["IPv4", "IPv6"];
const IP_FAMILY_POLICIES: &[&str] = &[PREFER_DUAL_STACK, REQUIRE_DUAL_STACK, SINGLE_STACK];
const TRAFFIC_DISTRIBUTIONS: &[&str] = &["PreferClose"];

const DEFAULT_CLIENT_IP_TIMEOUT: i64 = 10800;
const MAX_CLIENT_IP_TIMEOUT: i64 = 86400;

const LB_SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";
const TOPOLOGY_MODE_ANNOTATION: &str = "service.kubernetes.io/topology-mode";
const TOPOLOGY_HINTS_ANNOTATION: &str = "service.kubernetes.io/topology-aware-hints";

const ONLY_LOAD_BALANCER: &str = "may only be used when `type` is 'LoadBalancer'";

// ---------------------------------------------------------------------------------------------
// A read-only view of a Service, with Go's zero values for anything absent or wrongly typed.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum TargetPort {
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone)]
struct Port {
    name: String,
    protocol: String,
    port: i64,
    target_port: TargetPort,
    node_port: i64,
    app_protocol: Option<String>,
}

#[derive(Debug, Clone)]
struct Svc {
    ty: String,
    cluster_ip: String,
    cluster_ips: Option<Vec<String>>,
    ip_families: Option<Vec<String>>,
    ip_family_policy: Option<String>,
    ports: Vec<Port>,
    selector: Option<Vec<(String, String)>>,
    session_affinity: String,
    affinity_config: Value,
    external_ips: Vec<String>,
    source_ranges: Vec<String>,
    allocate_lb_node_ports: Option<bool>,
    lb_class: Option<String>,
    etp: String,
    hc_node_port: i64,
    itp: Option<String>,
    traffic_distribution: Option<String>,
    external_name: String,
    annotations: Vec<(String, String)>,
}

impl Svc {
    fn read(service: &Value) -> Svc {
        let spec = spec_of(service);
        let ports = j::array(spec, "ports")
            .iter()
            .map(|p| Port {
                name: j::str_or_empty(p, "name").to_string(),
                protocol: j::str_or_empty(p, "protocol").to_string(),
                port: j::int_or_zero(p, "port"),
                target_port: match p.get("targetPort") {
                    Some(Value::String(s)) => TargetPort::Str(s.clone()),
                    Some(v) => TargetPort::Int(j::as_int(v).unwrap_or(0)),
                    None => TargetPort::Int(0),
                },
                node_port: j::int_or_zero(p, "nodePort"),
                app_protocol: j::opt_str(p, "appProtocol").map(str::to_string),
            })
            .collect();
        Svc {
            ty: j::str_or_empty(spec, "type").to_string(),
            cluster_ip: j::str_or_empty(spec, "clusterIP").to_string(),
            cluster_ips: j::opt_strings(spec, "clusterIPs"),
            ip_families: j::opt_strings(spec, "ipFamilies"),
            ip_family_policy: j::opt_str(spec, "ipFamilyPolicy").map(str::to_string),
            ports,
            selector: spec.get("selector").filter(|s| s.is_object()).map(|_| j::string_map(spec, "selector")),
            session_affinity: j::str_or_empty(spec, "sessionAffinity").to_string(),
            affinity_config: spec.get("sessionAffinityConfig").cloned().unwrap_or(Value::Null),
            external_ips: j::opt_strings(spec, "externalIPs").unwrap_or_default(),
            source_ranges: j::opt_strings(spec, "loadBalancerSourceRanges").unwrap_or_default(),
            allocate_lb_node_ports: spec.get("allocateLoadBalancerNodePorts").and_then(Value::as_bool),
            lb_class: j::opt_str(spec, "loadBalancerClass").map(str::to_string),
            etp: j::str_or_empty(spec, "externalTrafficPolicy").to_string(),
            hc_node_port: j::int_or_zero(spec, "healthCheckNodePort"),
            itp: j::opt_str(spec, "internalTrafficPolicy").map(str::to_string),
            traffic_distribution: j::opt_str(spec, "trafficDistribution").map(str::to_string),
            external_name: j::str_or_empty(spec, "externalName").to_string(),
            annotations: service.get("metadata").map(|m| j::string_map(m, "annotations")).unwrap_or_default(),
        }
    }

    fn ips(&self) -> &[String] {
        self.cluster_ips.as_deref().unwrap_or(&[])
    }

    fn families(&self) -> &[String] {
        self.ip_families.as_deref().unwrap_or(&[])
    }

    fn policy(&self) -> &str {
        self.ip_family_policy.as_deref().unwrap_or("")
    }

    fn selector_is_empty(&self) -> bool {
        self.selector.as_ref().is_none_or(Vec::is_empty)
    }

    /// `isHeadlessService`: exactly one clusterIP and it is `None`.
    fn headless(&self) -> bool {
        self.ips().len() == 1 && self.ips()[0] == NONE
    }

    /// Headless and without a selector (by the singular `clusterIP`, as the allocator checks).
    fn headless_selectorless(&self) -> bool {
        self.cluster_ip == NONE && self.selector_is_empty()
    }

    fn externally_accessible(&self) -> bool {
        self.ty == LOAD_BALANCER || self.ty == NODE_PORT || (self.ty == CLUSTER_IP && !self.external_ips.is_empty())
    }

    fn needs_health_check(&self) -> bool {
        self.ty == LOAD_BALANCER && self.etp == "Local"
    }

    fn needs_cluster_ip(&self) -> bool {
        self.ty != EXTERNAL_NAME
    }

    fn needs_node_port(&self) -> bool {
        self.ty == NODE_PORT || self.ty == LOAD_BALANCER
    }

    fn node_ports(&self) -> BTreeSet<i64> {
        self.ports.iter().map(|p| p.node_port).filter(|n| *n != 0).collect()
    }
}

fn spec_of(service: &Value) -> &Value {
    service.get("spec").unwrap_or(&Value::Null)
}

fn spec_mut(service: &mut Value) -> Option<&mut Map<String, Value>> {
    service.get_mut("spec")?.as_object_mut()
}

fn map_str<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Writes a string field, removing it for `None` (Go's nil / omitted empty string).
fn put_str(service: &mut Value, key: &str, value: Option<&str>) {
    if let Some(spec) = spec_mut(service) {
        match value {
            Some(v) if !v.is_empty() => {
                spec.insert(key.to_string(), Value::from(v));
            }
            _ => {
                spec.remove(key);
            }
        }
    }
}

/// Writes a string list, removing it for `None` or an empty list.
fn put_strings(service: &mut Value, key: &str, value: Option<&[String]>) {
    if let Some(spec) = spec_mut(service) {
        match value {
            Some(v) if !v.is_empty() => {
                spec.insert(key.to_string(), json!(v));
            }
            _ => {
                spec.remove(key);
            }
        }
    }
}

fn family_of(ip: &str) -> &'static str {
    formats::ip_family(ip).unwrap_or("unknown")
}

fn other_family(family: &str) -> &'static str {
    if family == "IPv4" {
        "IPv6"
    } else {
        "IPv4"
    }
}

// ---------------------------------------------------------------------------------------------
// Defaulting
// ---------------------------------------------------------------------------------------------

/// Upstream defaulting for a Service about to be created (`old` = `None`) or updated (`old` = the
/// stored object): the v1 defaulter (`SetDefaults_Service`: type `ClusterIP`, protocol `TCP`,
/// `targetPort` = `port`, `sessionAffinity` `None` or the ClientIP timeout 10800,
/// `externalTrafficPolicy` `Cluster` for externally-accessible Services, `internalTrafficPolicy`
/// `Cluster` except for ExternalName, `allocateLoadBalancerNodePorts` true for LoadBalancers),
/// `clusterIPs` synced from `clusterIP`, and `ipFamilyPolicy`/`ipFamilies` initialised the way the
/// allocator does (`SingleStack`/`[IPv4]`; headless without selector: `RequireDualStack`/
/// `[IPv4, IPv6]`).
///
/// On update, server-owned values the client omitted are carried over from `old`
/// (`patchAllocatedValues`): `clusterIP`/`clusterIPs`, node ports (matched by port name, as
/// upstream does), `healthCheckNodePort`, and the IP family policy; a type change drops the
/// now-meaningless fields the client did not touch (`dropTypeDependentFields`). Nothing is
/// allocated here.
/// The defaults of a status write (the `services/status` subresource): the scheme's defaults only.
/// Upstream's status strategy does not drop type-dependent fields, so a ClusterIP Service's
/// `status.loadBalancer` written there stays (a spec update clears it).
pub fn default_status(service: &mut Value) {
    if service.get("spec").is_some_and(Value::is_object) {
        set_defaults_v1(service);
    }
}

pub fn default(service: &mut Value, old: Option<&Value>) {
    let Some(object) = service.as_object_mut() else {
        return;
    };
    match object.get("spec") {
        Some(Value::Object(_)) => {}
        None | Some(Value::Null) => {
            object.insert("spec".into(), json!({}));
        }
        Some(_) => return,
    }
    set_defaults_v1(service);
    let old = old.filter(|o| o.get("spec").is_some_and(Value::is_object)).map(|o| {
        let mut o = o.clone();
        default_on_read(&mut o);
        o
    });
    if let Some(old) = &old {
        patch_allocated_values(service, old);
    }
    normalize_cluster_ips(service, old.as_ref());
    init_ip_family_fields(service, old.as_ref());
    if let Some(old) = &old {
        drop_type_dependent_fields(service, old);
    }
    // Upstream drops internalTrafficPolicy from ExternalName Services when reading them.
    if j::str_or_empty(spec_of(service), "type") == EXTERNAL_NAME {
        put_str(service, "internalTrafficPolicy", None);
    }
}

/// `SetDefaults_Service` (v1).
fn set_defaults_v1(service: &mut Value) {
    let Some(spec) = spec_mut(service) else {
        return;
    };
    if map_str(spec, "sessionAffinity").is_empty() {
        spec.insert("sessionAffinity".into(), json!("None"));
    }
    match map_str(spec, "sessionAffinity") {
        "None" => {
            spec.remove("sessionAffinityConfig");
        }
        "ClientIP" => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.pointer("/clientIP/timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_TIMEOUT}}),
                );
            }
        }
        _ => {}
    }
    if map_str(spec, "type").is_empty() {
        spec.insert("type".into(), json!(CLUSTER_IP));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            if map_str(port, "protocol").is_empty() {
                port.insert("protocol".into(), json!("TCP"));
            }
            let unset = match port.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(v) => j::as_int(v) == Some(0),
            };
            if unset {
                let target = port.get("port").filter(|p| p.is_number()).cloned().unwrap_or(json!(0));
                port.insert("targetPort".into(), target);
            }
        }
    }
    let ty = map_str(spec, "type").to_string();
    let has_external_ips = spec.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let externally_accessible = ty == LOAD_BALANCER || ty == NODE_PORT || (ty == CLUSTER_IP && has_external_ips);
    if externally_accessible && map_str(spec, "externalTrafficPolicy").is_empty() {
        spec.insert("externalTrafficPolicy".into(), json!("Cluster"));
    }
    if spec.get("internalTrafficPolicy").is_none_or(Value::is_null)
        && [NODE_PORT, LOAD_BALANCER, CLUSTER_IP].contains(&ty.as_str())
    {
        spec.insert("internalTrafficPolicy".into(), json!("Cluster"));
    }
    if ty == LOAD_BALANCER && spec.get("allocateLoadBalancerNodePorts").is_none_or(Value::is_null) {
        spec.insert("allocateLoadBalancerNodePorts".into(), json!(true));
    }
    if ty == LOAD_BALANCER {
        if let Some(ingress) = service.pointer_mut("/status/loadBalancer/ingress").and_then(Value::as_array_mut) {
            for entry in ingress.iter_mut().filter_map(Value::as_object_mut) {
                if !map_str(entry, "ip").is_empty() && entry.get("ipMode").is_none_or(Value::is_null) {
                    entry.insert("ipMode".into(), json!("VIP"));
                }
            }
        }
    }
}

/// `defaultOnReadService` for the stored object: plural clusterIPs and IP families present.
fn default_on_read(service: &mut Value) {
    normalize_cluster_ips(service, None);
    let svc = Svc::read(service);
    if !svc.needs_cluster_ip() || !svc.families().is_empty() {
        return;
    }
    let (policy, families): (&str, Vec<String>) = if svc.cluster_ip == NONE {
        if svc.selector_is_empty() {
            (REQUIRE_DUAL_STACK, vec![CLUSTER_IP_FAMILY.into(), other_family(CLUSTER_IP_FAMILY).into()])
        } else {
            (SINGLE_STACK, vec![CLUSTER_IP_FAMILY.into()])
        }
    } else {
        let families: Vec<String> =
            svc.ips().iter().map(|ip| if family_of(ip) == "IPv6" { "IPv6" } else { "IPv4" }.to_string()).collect();
        match families.len() {
            1 => (SINGLE_STACK, families),
            2 => (REQUIRE_DUAL_STACK, families),
            _ => return,
        }
    };
    put_str(service, "ipFamilyPolicy", Some(policy));
    put_strings(service, "ipFamilies", Some(&families));
}

/// `normalizeClusterIPs`: keeps `clusterIPs` in step with `clusterIP` for clients that only know
/// the singular field.
fn normalize_cluster_ips(service: &mut Value, old: Option<&Value>) {
    let spec = spec_of(service);
    let ip = j::str_or_empty(spec, "clusterIP").to_string();
    let ips = j::opt_strings(spec, "clusterIPs").unwrap_or_default();
    let Some(old) = old else {
        if !ip.is_empty() && ips.is_empty() {
            put_strings(service, "clusterIPs", Some(&[ip]));
        }
        return;
    };
    let old_spec = spec_of(old);
    let old_ip = j::str_or_empty(old_spec, "clusterIP");
    let old_ips = j::opt_strings(old_spec, "clusterIPs").unwrap_or_default();
    let mut now = ips.clone();
    if !old_ips.is_empty() && now.is_empty() && old_ip == ip {
        now = old_ips.clone();
    }
    if old_ip != ip {
        if !old_ip.is_empty() && ip.is_empty() {
            if now == old_ips {
                now = Vec::new();
            }
        } else if now == old_ips {
            now = vec![ip];
        }
    }
    if now != ips {
        put_strings(service, "clusterIPs", Some(&now));
    }
}

/// `patchAllocatedValues`: values the server allocated and the client left out are kept.
fn patch_allocated_values(service: &mut Value, old: &Value) {
    let new = Svc::read(service);
    let before = Svc::read(old);
    if before.needs_cluster_ip() && new.needs_cluster_ip() {
        if new.cluster_ip.is_empty() && !before.cluster_ip.is_empty() {
            put_str(service, "clusterIP", Some(&before.cluster_ip));
        }
        if new.ips().is_empty() && !before.ips().is_empty() {
            put_strings(service, "clusterIPs", Some(before.ips()));
        }
    }
    if before.needs_node_port() && new.needs_node_port() {
        let used: BTreeSet<i64> = before.node_ports().intersection(&new.node_ports()).copied().collect();
        let by_name: HashMap<&str, i64> = before.ports.iter().map(|p| (p.name.as_str(), p.node_port)).collect();
        if let Some(ports) = spec_mut(service).and_then(|s| s.get_mut("ports")).and_then(Value::as_array_mut) {
            for (port, view) in ports.iter_mut().zip(&new.ports) {
                if view.node_port != 0 {
                    continue;
                }
                let old_value = by_name.get(view.name.as_str()).copied().unwrap_or(0);
                if old_value != 0 && !used.contains(&old_value) {
                    if let Some(port) = port.as_object_mut() {
                        port.insert("nodePort".into(), json!(old_value));
                    }
                }
            }
        }
    }
    if before.needs_health_check() && new.needs_health_check() && new.hc_node_port == 0 && before.hc_node_port != 0 {
        if let Some(spec) = spec_mut(service) {
            spec.insert("healthCheckNodePort".into(), json!(before.hc_node_port));
        }
    }
}

/// `isMatchingPreferDualStackClusterIPFields`: an unchanged PreferDualStack Service is left alone.
fn matching_prefer_dual_stack(new: &Svc, old: Option<&Svc>) -> bool {
    let Some(old) = old else { return false };
    new.ip_family_policy.is_some()
        && old.ty == new.ty
        && [CLUSTER_IP, NODE_PORT, LOAD_BALANCER].contains(&new.ty.as_str())
        && new.policy() == PREFER_DUAL_STACK
        && old.ip_family_policy.as_deref().is_none_or(|p| p == PREFER_DUAL_STACK)
        && old.ips() == new.ips()
        && old.families() == new.families()
}

/// The defaulting half of the allocator's `initIPFamilyFields` (its checks are in
/// [`cluster_family_errors`]); stops where upstream would fail, leaving the rest to validation.
fn init_ip_family_fields(service: &mut Value, old: Option<&Value>) {
    let new = Svc::read(service);
    if new.ty == EXTERNAL_NAME {
        return;
    }
    let before = old.map(Svc::read);
    if matching_prefer_dual_stack(&new, before.as_ref()) {
        return;
    }
    if new.ip_family_policy.is_none() {
        let policy = match before.as_ref().and_then(|b| b.ip_family_policy.clone()) {
            Some(p) => p,
            None if new.headless_selectorless() => REQUIRE_DUAL_STACK.to_string(),
            None => SINGLE_STACK.to_string(),
        };
        put_str(service, "ipFamilyPolicy", Some(&policy));
    }
    let svc = Svc::read(service);
    if !cluster_ips_related_errors(&svc).is_empty() {
        return;
    }
    let policy = svc.policy().to_string();
    let mut ips = svc.ips().to_vec();
    let mut families = svc.families().to_vec();
    let write = |service: &mut Value, ips: &[String], families: &[String]| {
        if ips != svc.ips() {
            put_strings(service, "clusterIPs", Some(ips));
        }
        if families != svc.families() {
            put_strings(service, "ipFamilies", Some(families));
        }
    };
    if let Some(before) = &before {
        if policy == SINGLE_STACK {
            if before.ips() == svc.ips() && ips.len() > 1 {
                ips.truncate(1);
            }
            if before.families() == svc.families() && families.len() > 1 {
                families.truncate(1);
            }
        }
    }
    if policy == SINGLE_STACK && (ips.len() == 2 || families.len() == 2) {
        return write(service, &ips, &families);
    }
    for (i, ip) in ips.iter().enumerate() {
        if ip == NONE {
            break;
        }
        if i >= families.len() {
            let family = family_of(ip);
            if family != CLUSTER_IP_FAMILY {
                return write(service, &ips, &families);
            }
            families.push(family.to_string());
        }
    }
    if svc.headless_selectorless() {
        if families.is_empty() {
            families.push(CLUSTER_IP_FAMILY.to_string());
        }
        if families.len() < 2 && policy != SINGLE_STACK {
            let other = other_family(&families[0]).to_string();
            families.push(other);
        }
        return write(service, &ips, &families);
    }
    if policy == REQUIRE_DUAL_STACK || families.iter().any(|f| f != CLUSTER_IP_FAMILY) {
        return write(service, &ips, &families);
    }
    if families.is_empty() {
        families.push(CLUSTER_IP_FAMILY.to_string());
    }
    write(service, &ips, &families);
}

/// `dropTypeDependentFields`: on a type change, fields that no longer apply and that the client
/// did not change themselves are cleared (they are released by the allocator).
fn drop_type_dependent_fields(service: &mut Value, old: &Value) {
    let new = Svc::read(service);
    let before = Svc::read(old);
    let Some(spec) = spec_mut(service) else {
        return;
    };
    if before.needs_cluster_ip() && !new.needs_cluster_ip() {
        if before.cluster_ip == new.cluster_ip && before.ips() == new.ips() {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        if before.families() == new.families() {
            spec.remove("ipFamilies");
        }
        if before.policy() == new.policy() {
            spec.remove("ipFamilyPolicy");
        }
    }
    if before.needs_node_port() && !new.needs_node_port() && new.node_ports().is_subset(&before.node_ports()) {
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                port.remove("nodePort");
            }
        }
    }
    if before.needs_health_check() && !new.needs_health_check() && before.hc_node_port == new.hc_node_port {
        spec.remove("healthCheckNodePort");
    }
    if before.ty == LOAD_BALANCER && new.ty != LOAD_BALANCER {
        if let (Some(a), Some(b)) = (before.allocate_lb_node_ports, new.allocate_lb_node_ports) {
            if a == b {
                spec.remove("allocateLoadBalancerNodePorts");
            }
        }
        if before.lb_class == new.lb_class {
            spec.remove("loadBalancerClass");
        }
    }
    if before.externally_accessible() && !new.externally_accessible() && before.etp == new.etp {
        spec.remove("externalTrafficPolicy");
    }
    if new.ty != LOAD_BALANCER {
        if let Some(status) = service.get_mut("status").and_then(Value::as_object_mut) {
            if status.contains_key("loadBalancer") {
                status.insert("loadBalancer".into(), json!({}));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// `ValidateService` (create, `old` = `None`) or `ValidateServiceUpdate` (`old` = the stored
/// object), plus the allocator's checks of IP families against the (single-stack IPv4) cluster.
/// Expects a defaulted object (see [`default`]). Metadata is not checked, and omitted values the
/// allocator fills (`clusterIP`, `nodePort`, `healthCheckNodePort`) are valid.
pub fn validate(service: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let new = Svc::read(service);
    let before = old.map(|o| {
        let mut o = o.clone();
        if o.get("spec").is_some_and(Value::is_object) {
            default_on_read(&mut o);
        }
        Svc::read(&o)
    });
    let mut errs = cluster_family_errors(&new, before.as_ref());
    if let Some(before) = &before {
        errs.extend(upgrade_downgrade_cluster_ips(before, &new));
        errs.extend(upgrade_downgrade_ip_families(before, &new));
        errs.extend(load_balancer_class(Some(before), &new));
        if before.needs_health_check() && new.needs_health_check() && before.hc_node_port != new.hc_node_port {
            errs.push(FieldError::forbidden("spec.healthCheckNodePort", FIELD_IMMUTABLE));
        }
    }
    errs.extend(validate_service(&new));
    dedup(errs)
}

/// `ValidateServiceStatusUpdate`: the `status.loadBalancer` of a Service (the status subresource;
/// the spec is the stored one). Defaulting gives IP entries of LoadBalancers `ipMode: VIP` first.
pub fn validate_status(service: &Value, _old: Option<&Value>) -> Vec<FieldError> {
    const IP_MODES: &[&str] = &["Proxy", "VIP"];
    let path = "status.loadBalancer.ingress";
    let ingress =
        service.pointer("/status/loadBalancer/ingress").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    if j::str_or_empty(spec_of(service), "type") != LOAD_BALANCER && !ingress.is_empty() {
        return vec![FieldError::forbidden(path, "may only be used when `spec.type` is 'LoadBalancer'")];
    }
    let mut errs = Vec::new();
    for (i, entry) in ingress.iter().enumerate() {
        let entry_path = format!("{path}[{i}]");
        let ip = j::str_or_empty(entry, "ip");
        if !ip.is_empty() {
            errs.extend(formats::valid_ip(&format!("{entry_path}.ip"), ip));
        }
        match j::opt_str(entry, "ipMode") {
            None if !ip.is_empty() => {
                errs.push(FieldError::required(format!("{entry_path}.ipMode"), "must be specified when `ip` is set"))
            }
            Some(_) if ip.is_empty() => errs.push(FieldError::forbidden(
                format!("{entry_path}.ipMode"),
                "may not be specified when `ip` is not set",
            )),
            Some(mode) if !IP_MODES.contains(&mode) => {
                errs.push(FieldError::not_supported(format!("{entry_path}.ipMode"), quote(mode), IP_MODES))
            }
            _ => {}
        }
        let hostname = j::str_or_empty(entry, "hostname");
        if !hostname.is_empty() {
            let hostname_path = format!("{entry_path}.hostname");
            errs.extend(formats::invalid_each(&hostname_path, hostname, formats::dns1123_subdomain(hostname)));
            if formats::parse_ip(hostname).is_some() {
                errs.push(FieldError::invalid(hostname_path, quote(hostname), "must be a DNS name, not an IP address"));
            }
        }
    }
    dedup(errs)
}

fn validate_service(svc: &Svc) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let annotation = |key: &str| svc.annotations.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    if let (Some(mode), Some(hints)) = (annotation(TOPOLOGY_MODE_ANNOTATION), annotation(TOPOLOGY_HINTS_ANNOTATION)) {
        if mode != hints {
            errs.push(FieldError::invalid(
                format!("metadata.annotations[{TOPOLOGY_MODE_ANNOTATION}]"),
                quote(mode),
                &format!("must match annotations[{TOPOLOGY_HINTS_ANNOTATION}] when both are specified"),
            ));
        }
    }

    let headless = svc.headless();
    if svc.ports.is_empty() && !headless && svc.ty != EXTERNAL_NAME {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match svc.ty.as_str() {
        LOAD_BALANCER | NODE_PORT if headless => {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                quote(&svc.ips()[0]),
                &format!("may not be set to 'None' for {} services", svc.ty),
            ));
        }
        EXTERNAL_NAME => {
            if !svc.ips().is_empty() {
                errs.push(FieldError::forbidden("spec.clusterIPs", "may not be set for ExternalName services"));
            }
            if !svc.families().is_empty() {
                errs.push(FieldError::forbidden("spec.ipFamilies", "may not be set for ExternalName services"));
            }
            if svc.ip_family_policy.is_some() {
                errs.push(FieldError::forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"));
            }
            let cname = svc.external_name.strip_suffix('.').unwrap_or(&svc.external_name);
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                errs.extend(formats::invalid_each("spec.externalName", cname, formats::dns1123_subdomain(cname)));
            }
        }
        _ => {}
    }

    let mut names: BTreeSet<&str> = BTreeSet::new();
    for (i, port) in svc.ports.iter().enumerate() {
        errs.extend(validate_port(port, svc.ports.len() > 1, &mut names, &format!("spec.ports[{i}]")));
    }

    if let Some(selector) = &svc.selector {
        errs.extend(formats::labels(selector, "spec.selector"));
    }

    if svc.session_affinity.is_empty() {
        errs.push(FieldError::required("spec.sessionAffinity", ""));
    } else if !SUPPORTED_AFFINITIES.contains(&svc.session_affinity.as_str()) {
        errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            quote(&svc.session_affinity),
            SUPPORTED_AFFINITIES,
        ));
    }
    if svc.session_affinity == "ClientIP" {
        errs.extend(client_ip_affinity_config(&svc.affinity_config));
    } else if svc.session_affinity == "None" && !svc.affinity_config.is_null() {
        errs.push(FieldError::forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None"));
    }

    errs.extend(cluster_ips_related_errors(svc));

    for (i, ip) in svc.external_ips.iter().enumerate() {
        let path = format!("spec.externalIPs[{i}]");
        let invalid = formats::valid_ip(&path, ip);
        if invalid.is_empty() {
            errs.extend(formats::non_special_ip(&path, ip));
        } else {
            errs.extend(invalid);
        }
    }

    if svc.ty.is_empty() {
        errs.push(FieldError::required("spec.type", ""));
    } else if !SUPPORTED_TYPES.contains(&svc.ty.as_str()) {
        errs.push(FieldError::not_supported("spec.type", quote(&svc.ty), SUPPORTED_TYPES));
    }

    if svc.ty == CLUSTER_IP {
        for (i, port) in svc.ports.iter().enumerate() {
            if port.node_port != 0 {
                errs.push(FieldError::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }

    let mut node_ports: BTreeSet<(&str, i64)> = BTreeSet::new();
    for (i, port) in svc.ports.iter().enumerate() {
        if port.node_port != 0 && !node_ports.insert((port.protocol.as_str(), port.node_port)) {
            errs.push(FieldError::duplicate(format!("spec.ports[{i}].nodePort"), port.node_port.to_string()));
        }
    }

    let mut ports: BTreeSet<(&str, i64)> = BTreeSet::new();
    for (i, port) in svc.ports.iter().enumerate() {
        if !ports.insert((port.protocol.as_str(), port.port)) {
            let key = format!(
                "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                quote(&port.protocol),
                port.port
            );
            errs.push(FieldError::duplicate(format!("spec.ports[{i}]"), key));
        }
    }

    if !svc.source_ranges.is_empty() {
        // Upstream's path really is capitalised here.
        if svc.ty != LOAD_BALANCER {
            errs.push(FieldError::forbidden("spec.LoadBalancerSourceRanges", ONLY_LOAD_BALANCER));
        }
        for (i, range) in svc.source_ranges.iter().enumerate() {
            errs.extend(formats::valid_cidr(&format!("spec.LoadBalancerSourceRanges[{i}]"), range.trim()));
        }
    } else if let Some(value) = annotation(LB_SOURCE_RANGES_ANNOTATION) {
        let path = format!("metadata.annotations[{LB_SOURCE_RANGES_ANNOTATION}]");
        if svc.ty != LOAD_BALANCER {
            errs.push(FieldError::forbidden(path.clone(), ONLY_LOAD_BALANCER));
        }
        let value = value.trim();
        if !value.is_empty() {
            for range in value.split(',') {
                errs.extend(formats::valid_cidr(&path, range.trim()));
            }
        }
    }

    if svc.allocate_lb_node_ports.is_some() && svc.ty != LOAD_BALANCER {
        errs.push(FieldError::forbidden("spec.allocateLoadBalancerNodePorts", ONLY_LOAD_BALANCER));
    }
    if svc.ty == LOAD_BALANCER && svc.allocate_lb_node_ports.is_none() {
        // Upstream's path lacks the `spec.` prefix.
        errs.push(FieldError::required("allocateLoadBalancerNodePorts", ""));
    }

    errs.extend(load_balancer_class(None, svc));

    if !svc.externally_accessible() {
        if !svc.etp.is_empty() {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                quote(&svc.etp),
                "may only be set for externally-accessible services",
            ));
        }
    } else if svc.etp.is_empty() {
        errs.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if !TRAFFIC_POLICIES.contains(&svc.etp.as_str()) {
        errs.push(FieldError::not_supported("spec.externalTrafficPolicy", quote(&svc.etp), TRAFFIC_POLICIES));
    }
    if !svc.needs_health_check() {
        if svc.hc_node_port != 0 {
            errs.push(FieldError::invalid(
                "spec.healthCheckNodePort",
                svc.hc_node_port.to_string(),
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if svc.hc_node_port != 0 {
        // An omitted healthCheckNodePort is allocated later, so only a given one is checked.
        for msg in formats::port_num(svc.hc_node_port) {
            errs.push(FieldError::invalid("spec.healthCheckNodePort", svc.hc_node_port.to_string(), &msg));
        }
    }

    match &svc.itp {
        None if [NODE_PORT, LOAD_BALANCER, CLUSTER_IP].contains(&svc.ty.as_str()) => {
            errs.push(FieldError::required("spec.internalTrafficPolicy", ""));
        }
        Some(itp) if !TRAFFIC_POLICIES.contains(&itp.as_str()) => {
            errs.push(FieldError::not_supported("spec.internalTrafficPolicy", quote(itp), TRAFFIC_POLICIES));
        }
        _ => {}
    }

    if let Some(td) = &svc.traffic_distribution {
        if !TRAFFIC_DISTRIBUTIONS.contains(&td.as_str()) {
            errs.push(FieldError::not_supported("spec.trafficDistribution", quote(td), TRAFFIC_DISTRIBUTIONS));
        }
    }
    errs
}

/// `validateServicePort`.
fn validate_port<'a>(port: &'a Port, require_name: bool, names: &mut BTreeSet<&'a str>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if require_name && port.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !port.name.is_empty() {
        errs.extend(formats::invalid_each(&format!("{path}.name"), &port.name, formats::dns1123_label(&port.name)));
        if !names.insert(&port.name) {
            errs.push(FieldError::duplicate(format!("{path}.name"), quote(&port.name)));
        }
    }
    for msg in formats::port_num(port.port) {
        errs.push(FieldError::invalid(format!("{path}.port"), port.port.to_string(), &msg));
    }
    if port.protocol.is_empty() {
        errs.push(FieldError::required(format!("{path}.protocol"), ""));
    } else {
        errs.extend(formats::supported_protocol(path, &port.protocol));
    }
    match &port.target_port {
        TargetPort::Int(n) => {
            for msg in formats::port_num(*n) {
                errs.push(FieldError::invalid(format!("{path}.targetPort"), n.to_string(), &msg));
            }
        }
        TargetPort::Str(s) => {
            errs.extend(formats::invalid_each(&format!("{path}.targetPort"), s, formats::port_name(s)))
        }
    }
    errs.extend(formats::app_protocol(path, port.app_protocol.as_deref()));
    errs
}

/// `validateClientIPAffinityConfig`.
fn client_ip_affinity_config(config: &Value) -> Vec<FieldError> {
    const WHEN: &str = "when session affinity type is ClientIP";
    let path = "spec.sessionAffinityConfig";
    if config.is_null() {
        return vec![FieldError::required(path, WHEN)];
    }
    let client_ip = config.get("clientIP").unwrap_or(&Value::Null);
    if client_ip.is_null() {
        return vec![FieldError::required(format!("{path}.clientIP"), WHEN)];
    }
    let Some(timeout) = client_ip.get("timeoutSeconds").filter(|t| !t.is_null()) else {
        return vec![FieldError::required(format!("{path}.clientIP.timeoutSeconds"), WHEN)];
    };
    let timeout = j::as_int(timeout).unwrap_or(0);
    if timeout <= 0 || timeout > MAX_CLIENT_IP_TIMEOUT {
        return vec![FieldError::invalid(
            format!("{path}.clientIP.timeoutSeconds"),
            timeout.to_string(),
            &format!("must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT}"),
        )];
    }
    Vec::new()
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn cluster_ips_related_errors(svc: &Svc) -> Vec<FieldError> {
    if svc.ty == EXTERNAL_NAME {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let ips = svc.ips();
    let ips_value = || gofmt::strings(svc.cluster_ips.as_deref());
    if !svc.cluster_ip.is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required("spec.clusterIPs", ""));
        } else if ips[0] != svc.cluster_ip {
            errs.push(FieldError::invalid("spec.clusterIPs", ips_value(), "first value must match `clusterIP`"));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            ips_value(),
            "must be empty when `clusterIP` is not specified",
        ));
    }

    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for (i, family) in svc.families().iter().enumerate() {
        if !IP_FAMILIES.contains(&family.as_str()) {
            errs.push(FieldError::not_supported(format!("spec.ipFamilies[{i}]"), quote(family), IP_FAMILIES));
        }
        if !seen.insert(family) {
            errs.push(FieldError::duplicate(format!("spec.ipFamilies[{i}]"), quote(family)));
        }
    }

    if let Some(policy) = &svc.ip_family_policy {
        if !IP_FAMILY_POLICIES.contains(&policy.as_str()) {
            errs.push(FieldError::not_supported("spec.ipFamilyPolicy", quote(policy), IP_FAMILY_POLICIES));
        }
    }

    let mut invalid_ips = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == NONE {
            if ips.len() > 1 {
                invalid_ips = true;
                errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    ips_value(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let problems = formats::valid_ip(&format!("spec.clusterIPs[{i}]"), ip);
        invalid_ips |= !problems.is_empty();
        errs.extend(problems);
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid("spec.clusterIPs", ips_value(), "may only hold up to 2 values"));
    }
    if invalid_ips {
        return errs;
    }
    if ips.len() > 1 {
        let dual_stack = ips.len() == 2 && family_of(&ips[0]) != family_of(&ips[1]);
        if !dual_stack {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                ips_value(),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !svc.headless() && !ips.is_empty() && !svc.families().is_empty() {
        for (i, ip) in ips.iter().enumerate().take(svc.families().len()) {
            let family = svc.families()[i].as_str();
            let v6 = family_of(ip) == "IPv6";
            if family == "IPv4" && v6 {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    quote(ip),
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if family == "IPv6" && !v6 {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    quote(ip),
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

/// The checks of the allocator's `initIPFamilyFields` against a single-stack IPv4 cluster.
fn cluster_family_errors(svc: &Svc, old: Option<&Svc>) -> Vec<FieldError> {
    if svc.ty == EXTERNAL_NAME || matching_prefer_dual_stack(svc, old) || !cluster_ips_related_errors(svc).is_empty() {
        return Vec::new();
    }
    let policy = svc.ip_family_policy.as_deref();
    let policy_value = || gofmt::opt(policy);
    let mut errs = Vec::new();
    if let Some(old) = old {
        if policy != Some(SINGLE_STACK) {
            if !svc.ips().is_empty() && svc.ips().len() < old.ips().len() {
                errs.push(FieldError::invalid(
                    "spec.ipFamilyPolicy",
                    policy_value(),
                    "must be 'SingleStack' to release the secondary cluster IP",
                ));
            }
            if !svc.families().is_empty() && svc.families().len() < old.families().len() {
                errs.push(FieldError::invalid(
                    "spec.ipFamilyPolicy",
                    policy_value(),
                    "must be 'SingleStack' to release the secondary IP family",
                ));
            }
        }
    }
    if policy == Some(SINGLE_STACK) {
        if svc.ips().len() == 2 {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                policy_value(),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ));
        }
        if svc.families().len() == 2 {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                policy_value(),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ));
        }
    }
    for (i, ip) in svc.ips().iter().enumerate() {
        if ip == NONE {
            break;
        }
        let family = family_of(ip);
        if i >= svc.families().len() && family != CLUSTER_IP_FAMILY {
            errs.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                gofmt::strings(svc.cluster_ips.as_deref()),
                &format!("{family} is not configured on this cluster"),
            ));
        }
    }
    if !errs.is_empty() || svc.headless_selectorless() {
        return errs;
    }
    if policy == Some(REQUIRE_DUAL_STACK) {
        errs.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            policy_value(),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, family) in svc.families().iter().enumerate() {
        if family != CLUSTER_IP_FAMILY {
            errs.push(FieldError::invalid(
                format!("spec.ipFamilies[{i}]"),
                quote(family),
                "not configured on this cluster",
            ));
        }
    }
    errs
}

/// `validateUpgradeDowngradeClusterIPs`.
fn upgrade_downgrade_cluster_ips(old: &Svc, new: &Svc) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if new.ty == EXTERNAL_NAME || old.ty == EXTERNAL_NAME || (old.headless() && new.headless()) {
        return errs;
    }
    let (before, after) = (old.ips(), new.ips());
    let value = || gofmt::strings(new.cluster_ips.as_deref());
    const CHANGED: &str = "may not change once set";
    if before.len() == after.len() {
        for (i, ip) in before.iter().enumerate() {
            if *ip != after[i] {
                errs.push(FieldError::invalid(format!("spec.clusterIPs[{i}]"), value(), CHANGED));
            }
        }
    } else if before.len() > after.len() {
        if after.is_empty() {
            errs.push(FieldError::invalid("spec.clusterIPs[0]", value(), "primary clusterIP can not be unset"));
        }
        if !before.is_empty() && !after.is_empty() && after[0] != before[0] {
            errs.push(FieldError::invalid("spec.clusterIPs[0]", value(), CHANGED));
        }
        if after.len() == 1 && new.policy() != SINGLE_STACK {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                gofmt::opt(new.ip_family_policy.as_deref()),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !before.is_empty() && after[0] != before[0] {
        errs.push(FieldError::invalid("spec.clusterIPs[0]", value(), CHANGED));
    }
    errs
}

/// `validateUpgradeDowngradeIPFamilies` (its quirks included: the index is always 0 and some
/// messages print `clusterIPs`).
fn upgrade_downgrade_ip_families(old: &Svc, new: &Svc) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if new.ty == EXTERNAL_NAME || old.ty == EXTERNAL_NAME || old.headless() != new.headless() || new.headless() {
        return errs;
    }
    let (before, after) = (old.families(), new.families());
    let families_value = || gofmt::slice("core.IPFamily", new.ip_families.as_deref());
    let ips_value = || gofmt::strings(new.cluster_ips.as_deref());
    const CHANGED: &str = "may not change once set";
    if before.len() == after.len() {
        for (i, family) in before.iter().enumerate() {
            if *family != after[i] {
                errs.push(FieldError::invalid("spec.ipFamilies[0]", families_value(), CHANGED));
            }
        }
    } else if before.len() > after.len() {
        if new.ips().is_empty() {
            errs.push(FieldError::invalid("spec.ipFamilies[0]", families_value(), "primary ipFamily can not be unset"));
        }
        if !after.is_empty() && after[0] != before[0] {
            errs.push(FieldError::invalid("spec.ipFamilies[0]", ips_value(), CHANGED));
        }
        if after.len() == 1 && new.policy() != SINGLE_STACK {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                gofmt::opt(new.ip_family_policy.as_deref()),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !before.is_empty() && !after.is_empty() && after[0] != before[0] {
        errs.push(FieldError::invalid("spec.ipFamilies[0]", ips_value(), CHANGED));
    }
    errs
}

/// `validateLoadBalancerClassField`.
fn load_balancer_class(old: Option<&Svc>, new: &Svc) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(old) = old {
        if old.ty == LOAD_BALANCER && new.ty == LOAD_BALANCER && old.lb_class != new.lb_class {
            errs.push(FieldError::invalid(
                "spec.loadBalancerClass",
                gofmt::opt(new.lb_class.as_deref()),
                "may not change once set",
            ));
        }
    }
    if let Some(class) = &new.lb_class {
        if new.ty == LOAD_BALANCER {
            errs.extend(formats::invalid_each("spec.loadBalancerClass", class, formats::qualified_name(class)));
        } else {
            errs.push(FieldError::forbidden("spec.loadBalancerClass", ONLY_LOAD_BALANCER));
        }
    }
    errs
}

#[cfg(test)]
mod tests;
