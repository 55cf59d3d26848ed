use serde_json::{json, Value};

use super::{default, validate, validate_status};

const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const LABEL_KEY_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DUP_PORT_80: &str = "Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}";

/// Expected errors as (field, message).
type Want = Vec<(&'static str, &'static str)>;

/// Test-only: a formatted expectation as a `&'static str`.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn svc(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn with_annotations(mut service: Value, annotations: Value) -> Value {
    service["metadata"]["annotations"] = annotations;
    service
}

/// What the server stores after a create: defaulted, then allocated (ClusterIP, node ports,
/// health-check node port) the way the allocator would.
fn stored(spec: Value) -> Value {
    let mut service = svc(spec);
    default(&mut service, None);
    let spec = service["spec"].as_object_mut().unwrap();
    let ty = spec["type"].as_str().unwrap().to_string();
    if ty != "ExternalName" && !spec.contains_key("clusterIP") {
        spec.insert("clusterIP".into(), json!("10.96.0.9"));
        spec.insert("clusterIPs".into(), json!(["10.96.0.9"]));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        for (i, port) in spec["ports"].as_array_mut().unwrap().iter_mut().enumerate() {
            if port.get("nodePort").is_none() {
                port["nodePort"] = json!(30000 + i);
            }
        }
    }
    if ty == "LoadBalancer"
        && spec.get("externalTrafficPolicy") == Some(&json!("Local"))
        && !spec.contains_key("healthCheckNodePort")
    {
        spec.insert("healthCheckNodePort".into(), json!(30500));
    }
    service
}

fn defaulted(mut service: Value, old: Option<&Value>) -> Value {
    default(&mut service, old);
    service
}

fn errors(service: &Value, old: Option<&Value>) -> Vec<(String, String)> {
    validate(service, old).into_iter().map(|e| (e.field, e.message)).collect()
}

fn assert_errors(name: &str, got: Vec<(String, String)>, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want.iter().map(|(f, m)| (f.to_string(), m.to_string())).collect();
    assert_eq!(got, want, "case {name}");
}

fn port80() -> Value {
    json!([{"port": 80}])
}

#[test]
fn create_rules() {
    let sel = json!({"app": "web"});
    let cases: Vec<(&str, Value, Want)> = vec![
        ("valid ClusterIP", svc(json!({"selector": sel, "ports": port80()})), vec![]),
        ("valid NodePort", svc(json!({"type": "NodePort", "selector": sel, "ports": [{"port": 80, "nodePort": 30080}]})), vec![]),
        ("valid LoadBalancer", svc(json!({"type": "LoadBalancer", "selector": sel, "ports": port80(), "loadBalancerSourceRanges": [" 10.0.0.0/8 "]})), vec![]),
        ("valid ExternalName with trailing dot", svc(json!({"type": "ExternalName", "externalName": "db.example.com."})), vec![]),
        ("valid headless without ports", svc(json!({"clusterIP": "None"})), vec![]),
        ("valid fixed clusterIP", svc(json!({"clusterIP": "10.96.0.10", "ports": port80()})), vec![]),
        ("valid UDP and TCP on one port", svc(json!({"ports": [{"name": "a", "port": 53, "protocol": "UDP"}, {"name": "b", "port": 53}]})), vec![]),
        ("valid appProtocol", svc(json!({"ports": [{"port": 80, "appProtocol": "kubernetes.io/h2c"}]})), vec![]),
        ("valid named targetPort", svc(json!({"ports": [{"port": 80, "targetPort": "http"}]})), vec![]),
        ("ports required", svc(json!({"selector": sel})), vec![("spec.ports", "Required value")]),
        (
            "port zero",
            svc(json!({"ports": [{"port": 0, "targetPort": 8080}]})),
            vec![("spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive")],
        ),
        (
            "port zero defaults targetPort zero",
            svc(json!({"ports": [{"port": 0}]})),
            vec![
                ("spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
                ("spec.ports[0].targetPort", "Invalid value: 0: must be between 1 and 65535, inclusive"),
            ],
        ),
        (
            "port too big",
            svc(json!({"ports": [{"port": 70000, "targetPort": 80}]})),
            vec![("spec.ports[0].port", "Invalid value: 70000: must be between 1 and 65535, inclusive")],
        ),
        (
            "port name required with two ports",
            svc(json!({"ports": [{"name": "http", "port": 80}, {"port": 81}]})),
            vec![("spec.ports[1].name", "Required value")],
        ),
        (
            "duplicate port name",
            svc(json!({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]})),
            vec![("spec.ports[1].name", "Duplicate value: \"http\"")],
        ),
        (
            "port name not a DNS label",
            svc(json!({"ports": [{"name": "Http", "port": 80}]})),
            vec![("spec.ports[0].name", leak(format!("Invalid value: \"Http\": {LABEL_MSG}")))],
        ),
        ("port name with dots", svc(json!({"ports": [{"name": "a.b", "port": 80}]})), vec![("spec.ports[0].name", "Invalid value: \"a.b\": must not contain dots")]),
        (
            "unsupported protocol",
            svc(json!({"ports": [{"port": 80, "protocol": "HTTP"}]})),
            vec![("spec.ports[0].protocol", "Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"")],
        ),
        (
            "numeric string targetPort",
            svc(json!({"ports": [{"port": 80, "targetPort": "8080"}]})),
            vec![("spec.ports[0].targetPort", "Invalid value: \"8080\": must contain at least one letter (a-z)")],
        ),
        (
            "targetPort out of range",
            svc(json!({"ports": [{"port": 80, "targetPort": 70000}]})),
            vec![("spec.ports[0].targetPort", "Invalid value: 70000: must be between 1 and 65535, inclusive")],
        ),
        (
            "targetPort name too long",
            svc(json!({"ports": [{"port": 80, "targetPort": "web-interface-port"}]})),
            vec![("spec.ports[0].targetPort", "Invalid value: \"web-interface-port\": must be no more than 15 characters")],
        ),
        (
            "bad appProtocol",
            svc(json!({"ports": [{"port": 80, "appProtocol": "bad proto"}]})),
            vec![("spec.ports[0].appProtocol", leak(format!("Invalid value: \"bad proto\": {LABEL_KEY_NAME_MSG}")))],
        ),
        (
            "duplicate port and protocol",
            svc(json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80, "targetPort": 8080}]})),
            vec![("spec.ports[1]", DUP_PORT_80)],
        ),
        (
            "nodePort on ClusterIP",
            svc(json!({"ports": [{"port": 80, "nodePort": 30080}]})),
            vec![("spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'")],
        ),
        (
            "duplicate nodePort",
            svc(json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}]})),
            vec![("spec.ports[1].nodePort", "Duplicate value: 30080")],
        ),
        (
            "same nodePort for TCP and UDP",
            svc(json!({"type": "NodePort", "ports": [{"name": "a", "port": 53, "nodePort": 30053}, {"name": "b", "port": 53, "protocol": "UDP", "nodePort": 30053}]})),
            vec![],
        ),
        (
            "unsupported session affinity",
            svc(json!({"ports": port80(), "sessionAffinity": "Sticky"})),
            vec![("spec.sessionAffinity", "Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"")],
        ),
        (
            "affinity timeout zero",
            svc(json!({"ports": port80(), "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}})),
            vec![("spec.sessionAffinityConfig.clientIP.timeoutSeconds", "Invalid value: 0: must be greater than 0 and less than 86400")],
        ),
        (
            "affinity timeout too long",
            svc(json!({"ports": port80(), "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}})),
            vec![("spec.sessionAffinityConfig.clientIP.timeoutSeconds", "Invalid value: 86401: must be greater than 0 and less than 86400")],
        ),
        (
            "affinity timeout at the maximum",
            svc(json!({"ports": port80(), "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}}})),
            vec![],
        ),
        (
            "headless NodePort",
            svc(json!({"type": "NodePort", "clusterIP": "None", "selector": sel, "ports": port80()})),
            vec![("spec.clusterIPs[0]", "Invalid value: \"None\": may not be set to 'None' for NodePort services")],
        ),
        (
            "headless LoadBalancer",
            svc(json!({"type": "LoadBalancer", "clusterIP": "None", "selector": sel, "ports": port80()})),
            vec![("spec.clusterIPs[0]", "Invalid value: \"None\": may not be set to 'None' for LoadBalancer services")],
        ),
        ("ExternalName requires externalName", svc(json!({"type": "ExternalName"})), vec![("spec.externalName", "Required value")]),
        (
            "ExternalName not a subdomain",
            svc(json!({"type": "ExternalName", "externalName": "bad_name"})),
            vec![("spec.externalName", leak(format!("Invalid value: \"bad_name\": {SUBDOMAIN_MSG}")))],
        ),
        (
            "ExternalName with clusterIP",
            svc(json!({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "10.96.0.10"})),
            vec![("spec.clusterIPs", "Forbidden: may not be set for ExternalName services")],
        ),
        (
            "ExternalName with IP family fields",
            svc(json!({"type": "ExternalName", "externalName": "db.example.com", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})),
            vec![
                ("spec.ipFamilies", "Forbidden: may not be set for ExternalName services"),
                ("spec.ipFamilyPolicy", "Forbidden: may not be set for ExternalName services"),
            ],
        ),
        (
            "invalid clusterIP",
            svc(json!({"clusterIP": "10.0.0.300", "ports": port80()})),
            vec![("spec.clusterIPs[0]", leak(format!("Invalid value: \"10.0.0.300\": {IP_MSG}")))],
        ),
        (
            "clusterIPs must start with clusterIP",
            svc(json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.11"], "ports": port80()})),
            vec![("spec.clusterIPs", "Invalid value: []string{\"10.96.0.11\"}: first value must match `clusterIP`")],
        ),
        (
            "clusterIPs without clusterIP",
            svc(json!({"clusterIPs": ["10.96.0.10"], "ports": port80()})),
            vec![("spec.clusterIPs", "Invalid value: []string{\"10.96.0.10\"}: must be empty when `clusterIP` is not specified")],
        ),
        (
            "None must be alone",
            svc(json!({"clusterIP": "None", "clusterIPs": ["None", "10.96.0.1"], "selector": sel, "ports": port80()})),
            vec![("spec.clusterIPs", "Invalid value: []string{\"None\", \"10.96.0.1\"}: 'None' must be the first and only value")],
        ),
        (
            "three clusterIPs",
            svc(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "fd00::1", "10.0.0.2"], "ipFamilyPolicy": "RequireDualStack", "ports": port80()})),
            vec![
                ("spec.clusterIPs", "Invalid value: []string{\"10.0.0.1\", \"fd00::1\", \"10.0.0.2\"}: may only hold up to 2 values"),
                ("spec.clusterIPs", "Invalid value: []string{\"10.0.0.1\", \"fd00::1\", \"10.0.0.2\"}: may specify no more than one IP for each IP family"),
            ],
        ),
        (
            "two IPv4 clusterIPs",
            svc(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "10.0.0.2"], "ipFamilyPolicy": "PreferDualStack", "ports": port80()})),
            vec![("spec.clusterIPs", "Invalid value: []string{\"10.0.0.1\", \"10.0.0.2\"}: may specify no more than one IP for each IP family")],
        ),
        (
            "unsupported IP family",
            svc(json!({"ipFamilies": ["IPv5"], "ports": port80()})),
            vec![("spec.ipFamilies[0]", "Unsupported value: \"IPv5\": supported values: \"IPv4\", \"IPv6\"")],
        ),
        (
            "duplicate IP family",
            svc(json!({"ipFamilies": ["IPv4", "IPv4"], "ipFamilyPolicy": "PreferDualStack", "ports": port80()})),
            vec![("spec.ipFamilies[1]", "Duplicate value: \"IPv4\"")],
        ),
        (
            "unsupported IP family policy",
            svc(json!({"ipFamilyPolicy": "Dual", "ports": port80()})),
            vec![("spec.ipFamilyPolicy", "Unsupported value: \"Dual\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\"")],
        ),
        (
            "clusterIP of the wrong family",
            svc(json!({"clusterIP": "10.0.0.1", "ipFamilies": ["IPv6"], "ports": port80()})),
            vec![("spec.clusterIPs[0]", "Invalid value: \"10.0.0.1\": expected an IPv6 value as indicated by `ipFamilies[0]`")],
        ),
        (
            "IPv6 clusterIP on an IPv4 cluster",
            svc(json!({"clusterIP": "fd00::10", "ports": port80()})),
            vec![("spec.clusterIPs[0]", "Invalid value: []string{\"fd00::10\"}: IPv6 is not configured on this cluster")],
        ),
        (
            "IPv6 family on an IPv4 cluster",
            svc(json!({"ipFamilies": ["IPv6"], "ports": port80()})),
            vec![("spec.ipFamilies[0]", "Invalid value: \"IPv6\": not configured on this cluster")],
        ),
        (
            "RequireDualStack on a single-stack cluster",
            svc(json!({"ipFamilyPolicy": "RequireDualStack", "ports": port80()})),
            vec![("spec.ipFamilyPolicy", "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services")],
        ),
        (
            "SingleStack with two families",
            svc(json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"], "ports": port80()})),
            vec![("spec.ipFamilyPolicy", "Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified")],
        ),
        ("PreferDualStack on a single-stack cluster", svc(json!({"ipFamilyPolicy": "PreferDualStack", "ports": port80()})), vec![]),
        (
            "externalIP not an IP",
            svc(json!({"ports": port80(), "externalIPs": ["1.2.3"]})),
            vec![("spec.externalIPs[0]", leak(format!("Invalid value: \"1.2.3\": {IP_MSG}")))],
        ),
        (
            "loopback externalIP",
            svc(json!({"ports": port80(), "externalIPs": ["127.0.0.1"]})),
            vec![("spec.externalIPs[0]", "Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)")],
        ),
        (
            "unsupported type",
            svc(json!({"type": "Foo", "ports": port80()})),
            vec![("spec.type", "Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"")],
        ),
        (
            "source ranges on ClusterIP",
            svc(json!({"ports": port80(), "loadBalancerSourceRanges": ["10.0.0.0/8"]})),
            vec![("spec.LoadBalancerSourceRanges", "Forbidden: may only be used when `type` is 'LoadBalancer'")],
        ),
        (
            "bad source range",
            svc(json!({"type": "LoadBalancer", "ports": port80(), "loadBalancerSourceRanges": ["10.0.0.0/8", "10.0.0.0/33"]})),
            vec![("spec.LoadBalancerSourceRanges[1]", "Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")],
        ),
        (
            "source ranges annotation on ClusterIP",
            with_annotations(svc(json!({"ports": port80()})), json!({"service.beta.kubernetes.io/load-balancer-source-ranges": "10.0.0.0/8,bad"})),
            vec![
                ("metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]", "Forbidden: may only be used when `type` is 'LoadBalancer'"),
                (
                    "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]",
                    "Invalid value: \"bad\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                ),
            ],
        ),
        (
            "topology annotations disagree",
            with_annotations(
                svc(json!({"ports": port80()})),
                json!({"service.kubernetes.io/topology-mode": "Auto", "service.kubernetes.io/topology-aware-hints": "Disabled"}),
            ),
            vec![(
                "metadata.annotations[service.kubernetes.io/topology-mode]",
                "Invalid value: \"Auto\": must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified",
            )],
        ),
        (
            "allocateLoadBalancerNodePorts on NodePort",
            svc(json!({"type": "NodePort", "ports": port80(), "allocateLoadBalancerNodePorts": false})),
            vec![("spec.allocateLoadBalancerNodePorts", "Forbidden: may only be used when `type` is 'LoadBalancer'")],
        ),
        (
            "loadBalancerClass on ClusterIP",
            svc(json!({"ports": port80(), "loadBalancerClass": "example.com/lb"})),
            vec![("spec.loadBalancerClass", "Forbidden: may only be used when `type` is 'LoadBalancer'")],
        ),
        (
            "bad loadBalancerClass",
            svc(json!({"type": "LoadBalancer", "ports": port80(), "loadBalancerClass": "example.com/bad class"})),
            vec![("spec.loadBalancerClass", leak(format!("Invalid value: \"example.com/bad class\": {LABEL_KEY_NAME_MSG}")))],
        ),
        (
            "externalTrafficPolicy on internal Service",
            svc(json!({"ports": port80(), "externalTrafficPolicy": "Local"})),
            vec![("spec.externalTrafficPolicy", "Invalid value: \"Local\": may only be set for externally-accessible services")],
        ),
        ("externalTrafficPolicy with externalIPs", svc(json!({"ports": port80(), "externalIPs": ["192.0.2.10"], "externalTrafficPolicy": "Local"})), vec![]),
        (
            "unsupported externalTrafficPolicy",
            svc(json!({"type": "NodePort", "ports": port80(), "externalTrafficPolicy": "Global"})),
            vec![("spec.externalTrafficPolicy", "Unsupported value: \"Global\": supported values: \"Cluster\", \"Local\"")],
        ),
        (
            "healthCheckNodePort without Local LoadBalancer",
            svc(json!({"type": "NodePort", "ports": port80(), "healthCheckNodePort": 30100})),
            vec![(
                "spec.healthCheckNodePort",
                "Invalid value: 30100: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            )],
        ),
        (
            "healthCheckNodePort out of range",
            svc(json!({"type": "LoadBalancer", "ports": port80(), "externalTrafficPolicy": "Local", "healthCheckNodePort": 70000})),
            vec![("spec.healthCheckNodePort", "Invalid value: 70000: must be between 1 and 65535, inclusive")],
        ),
        ("Local LoadBalancer without healthCheckNodePort (allocated later)", svc(json!({"type": "LoadBalancer", "ports": port80(), "externalTrafficPolicy": "Local"})), vec![]),
        (
            "unsupported internalTrafficPolicy",
            svc(json!({"ports": port80(), "internalTrafficPolicy": "Node"})),
            vec![("spec.internalTrafficPolicy", "Unsupported value: \"Node\": supported values: \"Cluster\", \"Local\"")],
        ),
        (
            "unsupported trafficDistribution",
            svc(json!({"ports": port80(), "trafficDistribution": "Anywhere"})),
            vec![("spec.trafficDistribution", "Unsupported value: \"Anywhere\": supported values: \"PreferClose\"")],
        ),
        (
            "bad selector key",
            svc(json!({"ports": port80(), "selector": {"bad key": "web"}})),
            vec![("spec.selector", leak(format!("Invalid value: \"bad key\": {LABEL_KEY_NAME_MSG}")))],
        ),
    ];
    for (name, service, want) in cases {
        let service = defaulted(service, None);
        assert_errors(name, errors(&service, None), &want);
    }
}

/// Rules that defaulting always satisfies, checked on objects that skipped it.
#[test]
fn rules_defaulting_satisfies() {
    let full = |extra: Value| {
        let mut spec = json!({"ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}], "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                spec.as_object_mut().unwrap().remove(k);
            } else {
                spec[k] = v.clone();
            }
        }
        svc(spec)
    };
    let cases: Vec<(&str, Value, Want)> = vec![
        ("complete", full(json!({})), vec![]),
        (
            "no type nor affinity",
            full(json!({"type": null, "sessionAffinity": null, "internalTrafficPolicy": null})),
            vec![("spec.sessionAffinity", "Required value"), ("spec.type", "Required value")],
        ),
        (
            "no internalTrafficPolicy",
            full(json!({"internalTrafficPolicy": null})),
            vec![("spec.internalTrafficPolicy", "Required value")],
        ),
        (
            "no protocol",
            svc(
                json!({"ports": [{"port": 80, "targetPort": 80}], "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster"}),
            ),
            vec![("spec.ports[0].protocol", "Required value")],
        ),
        (
            "NodePort without externalTrafficPolicy",
            full(json!({"type": "NodePort"})),
            vec![("spec.externalTrafficPolicy", "Required value")],
        ),
        (
            "LoadBalancer without allocateLoadBalancerNodePorts",
            full(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Cluster"})),
            vec![("allocateLoadBalancerNodePorts", "Required value")],
        ),
        (
            "config with affinity None",
            full(json!({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}}})),
            vec![("spec.sessionAffinityConfig", "Forbidden: must not be set when session affinity is None")],
        ),
        (
            "ClientIP without config",
            full(json!({"sessionAffinity": "ClientIP"})),
            vec![("spec.sessionAffinityConfig", "Required value: when session affinity type is ClientIP")],
        ),
        (
            "ClientIP without clientIP",
            full(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {}})),
            vec![("spec.sessionAffinityConfig.clientIP", "Required value: when session affinity type is ClientIP")],
        ),
        (
            "ClientIP without timeout",
            full(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {}}})),
            vec![(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                "Required value: when session affinity type is ClientIP",
            )],
        ),
        (
            "clusterIP without clusterIPs",
            full(json!({"clusterIP": "10.96.0.10"})),
            vec![("spec.clusterIPs", "Required value")],
        ),
    ];
    for (name, service, want) in cases {
        assert_errors(name, errors(&service, None), &want);
    }
}

#[test]
fn update_rules() {
    let sel = json!({"app": "web"});
    let cluster_ip = stored(json!({"selector": sel, "ports": [{"name": "http", "port": 80}]}));
    let node_port = stored(json!({"type": "NodePort", "selector": sel, "ports": [{"name": "http", "port": 80}]}));
    let load_balancer =
        stored(json!({"type": "LoadBalancer", "selector": sel, "ports": [{"name": "http", "port": 80}]}));
    let local_lb = stored(
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": sel, "ports": [{"name": "http", "port": 80}], "loadBalancerClass": "a.io/lb"}),
    );
    let external_name = stored(json!({"type": "ExternalName", "externalName": "db.example.com"}));
    let edit = |old: &Value, f: &dyn Fn(&mut Value)| {
        let mut new = old.clone();
        f(&mut new["spec"]);
        new
    };
    let cases: Vec<(&str, &Value, Value, Want)> = vec![
        (
            "re-apply the manifest without clusterIP",
            &cluster_ip,
            svc(json!({"selector": sel, "ports": [{"name": "http", "port": 80}]})),
            vec![],
        ),
        (
            "re-apply the NodePort manifest without nodePort",
            &node_port,
            svc(json!({"type": "NodePort", "selector": sel, "ports": [{"name": "http", "port": 80}]})),
            vec![],
        ),
        ("unchanged object", &local_lb, local_lb.clone(), vec![]),
        (
            "clusterIP changed",
            &cluster_ip,
            svc(json!({"clusterIP": "10.96.0.10", "selector": sel, "ports": [{"name": "http", "port": 80}]})),
            vec![("spec.clusterIPs[0]", "Invalid value: []string{\"10.96.0.10\"}: may not change once set")],
        ),
        (
            "ClusterIP made headless",
            &cluster_ip,
            svc(json!({"clusterIP": "None", "selector": sel, "ports": [{"name": "http", "port": 80}]})),
            vec![("spec.clusterIPs[0]", "Invalid value: []string{\"None\"}: may not change once set")],
        ),
        (
            "ipFamilies changed",
            &cluster_ip,
            edit(&cluster_ip, &|s| s["ipFamilies"] = json!(["IPv6"])),
            vec![
                ("spec.ipFamilies[0]", "Invalid value: []core.IPFamily{\"IPv6\"}: may not change once set"),
                (
                    "spec.clusterIPs[0]",
                    "Invalid value: \"10.96.0.9\": expected an IPv6 value as indicated by `ipFamilies[0]`",
                ),
            ],
        ),
        (
            "ClusterIP to ExternalName",
            &cluster_ip,
            edit(&cluster_ip, &|s| {
                s["type"] = json!("ExternalName");
                s["externalName"] = json!("db.example.com");
            }),
            vec![],
        ),
        (
            "ExternalName to ClusterIP",
            &external_name,
            svc(
                json!({"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 9376}]}),
            ),
            vec![],
        ),
        ("ClusterIP to NodePort", &cluster_ip, edit(&cluster_ip, &|s| s["type"] = json!("NodePort")), vec![]),
        ("NodePort to LoadBalancer", &node_port, edit(&node_port, &|s| s["type"] = json!("LoadBalancer")), vec![]),
        ("LoadBalancer to NodePort", &load_balancer, edit(&load_balancer, &|s| s["type"] = json!("NodePort")), vec![]),
        (
            "LoadBalancer to ClusterIP",
            &load_balancer,
            edit(&load_balancer, &|s| s["type"] = json!("ClusterIP")),
            vec![],
        ),
        (
            "NodePort to ExternalName",
            &node_port,
            edit(&node_port, &|s| {
                s["type"] = json!("ExternalName");
                s["externalName"] = json!("db.example.com");
            }),
            vec![],
        ),
        (
            "LoadBalancer to ClusterIP with a new nodePort",
            &load_balancer,
            edit(&load_balancer, &|s| {
                s["type"] = json!("ClusterIP");
                s["ports"][0]["nodePort"] = json!(31999);
            }),
            vec![("spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'")],
        ),
        (
            "healthCheckNodePort changed",
            &local_lb,
            edit(&local_lb, &|s| s["healthCheckNodePort"] = json!(30501)),
            vec![("spec.healthCheckNodePort", "Forbidden: field is immutable")],
        ),
        (
            "loadBalancerClass changed",
            &local_lb,
            edit(&local_lb, &|s| s["loadBalancerClass"] = json!("b.io/lb")),
            vec![("spec.loadBalancerClass", "Invalid value: \"b.io/lb\": may not change once set")],
        ),
        (
            "create-time rules still apply",
            &cluster_ip,
            edit(&cluster_ip, &|s| s["ports"][0]["port"] = json!(0)),
            vec![("spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive")],
        ),
    ];
    for (name, old, new, want) in cases {
        let new = defaulted(new, Some(old));
        assert_errors(name, errors(&new, Some(old)), &want);
    }
}

#[test]
fn defaulting() {
    let sel = json!({"app": "web"});
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "minimal ClusterIP",
            json!({"selector": sel, "ports": [{"port": 80}]}),
            json!({"selector": sel, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "sessionAffinity": "None", "type": "ClusterIP",
                   "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}),
        ),
        (
            "NodePort",
            json!({"type": "NodePort", "ports": [{"port": 80, "targetPort": "http", "nodePort": 30080}]}),
            json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP", "targetPort": "http", "nodePort": 30080}], "sessionAffinity": "None",
                   "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}),
        ),
        (
            "LoadBalancer",
            json!({"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": ""}]}),
            json!({"type": "LoadBalancer", "ports": [{"port": 443, "protocol": "TCP", "targetPort": 443}], "sessionAffinity": "None",
                   "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster", "allocateLoadBalancerNodePorts": true,
                   "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}),
        ),
        (
            "ExternalName",
            json!({"type": "ExternalName", "externalName": "db.example.com", "internalTrafficPolicy": "Cluster"}),
            json!({"type": "ExternalName", "externalName": "db.example.com", "sessionAffinity": "None"}),
        ),
        (
            "ClientIP affinity",
            json!({"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}),
            json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}, "type": "ClusterIP",
                   "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "internalTrafficPolicy": "Cluster",
                   "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}),
        ),
        (
            "None affinity drops config",
            json!({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}, "ports": [{"port": 80}]}),
            json!({"sessionAffinity": "None", "type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                   "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}),
        ),
        (
            "headless without selector is RequireDualStack",
            json!({"clusterIP": "None"}),
            json!({"clusterIP": "None", "clusterIPs": ["None"], "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster",
                   "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
        ),
        (
            "headless with selector is SingleStack",
            json!({"clusterIP": "None", "selector": sel}),
            json!({"clusterIP": "None", "clusterIPs": ["None"], "selector": sel, "sessionAffinity": "None", "type": "ClusterIP",
                   "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}),
        ),
        (
            "clusterIPs synced from clusterIP",
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
            json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "sessionAffinity": "None", "type": "ClusterIP",
                   "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "internalTrafficPolicy": "Cluster",
                   "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}),
        ),
        (
            "externalIPs make a ClusterIP externally accessible",
            json!({"externalIPs": ["192.0.2.10"], "ports": [{"port": 80}]}),
            json!({"externalIPs": ["192.0.2.10"], "sessionAffinity": "None", "type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                   "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}),
        ),
    ];
    for (name, spec, want) in cases {
        let got = defaulted(svc(spec), None);
        assert_eq!(got["spec"], want, "case {name}: {}", got["spec"]);
    }
    // Load-balancer status entries with an IP get ipMode VIP.
    let mut lb = svc(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
    lb["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.example.com"}]}});
    let lb = defaulted(lb, None);
    assert_eq!(
        lb["status"],
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]}})
    );
}

#[test]
fn update_keeps_allocated_values() {
    let old = stored(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}, {"name": "c", "port": 82}]}));
    assert_eq!(old["spec"]["ports"][1]["nodePort"], 30001);
    // Reordered ports, one dropped, one new: node ports follow the port names.
    let new = defaulted(
        svc(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"name": "c", "port": 82}, {"name": "a", "port": 80}, {"name": "d", "port": 83}]})),
        Some(&old),
    );
    let spec = &new["spec"];
    assert_eq!(spec["clusterIP"], "10.96.0.9");
    assert_eq!(spec["clusterIPs"], json!(["10.96.0.9"]));
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["healthCheckNodePort"], 30500);
    assert_eq!(spec["ports"][0]["nodePort"], 30002);
    assert_eq!(spec["ports"][1]["nodePort"], 30000);
    assert!(spec["ports"][2].get("nodePort").is_none(), "a new port gets a new nodePort from the allocator");
    assert!(validate(&new, Some(&old)).is_empty());

    // A nodePort the client moved to another port is not handed out twice.
    let new = defaulted(
        svc(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30000}]})),
        Some(&old),
    );
    assert!(new["spec"]["ports"][0].get("nodePort").is_none());

    // A ClusterIP Service keeps its IP when re-applied, and drops node ports when it stops being
    // a NodePort (the allocator releases them).
    let old = stored(json!({"type": "NodePort", "ports": [{"port": 80}]}));
    let mut changed = old.clone();
    changed["spec"]["type"] = json!("ClusterIP");
    let new = defaulted(changed, Some(&old));
    assert!(new["spec"]["ports"][0].get("nodePort").is_none());
    assert!(new["spec"].get("externalTrafficPolicy").is_none());
    assert_eq!(new["spec"]["clusterIP"], "10.96.0.9");

    // Switching to ExternalName clears what the allocator will release.
    let old = stored(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
    let mut changed = old.clone();
    changed["spec"]["type"] = json!("ExternalName");
    changed["spec"]["externalName"] = json!("db.example.com");
    changed["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}});
    let new = defaulted(changed, Some(&old));
    for gone in [
        "clusterIP",
        "clusterIPs",
        "ipFamilies",
        "ipFamilyPolicy",
        "allocateLoadBalancerNodePorts",
        "externalTrafficPolicy",
        "internalTrafficPolicy",
    ] {
        assert!(new["spec"].get(gone).is_none(), "{gone} should be dropped: {}", new["spec"]);
    }
    assert_eq!(new["status"], json!({"loadBalancer": {}}));
    assert!(validate(&new, Some(&old)).is_empty());
}

#[test]
fn wrongly_typed_json_does_not_panic() {
    let inputs = [
        json!(null),
        json!("service"),
        json!({"spec": "x"}),
        json!({"spec": {"ports": "y", "clusterIPs": "z", "selector": [], "type": 5}}),
        json!({"spec": {"ports": [1, null, {"port": "x", "targetPort": [], "nodePort": 1e30, "name": 7}], "ipFamilies": [1, null],
                        "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": "x"}},
                        "externalIPs": [null], "loadBalancerSourceRanges": [3], "healthCheckNodePort": -1}}),
        json!({"metadata": {"annotations": {"service.beta.kubernetes.io/load-balancer-source-ranges": 5}}, "spec": {"clusterIP": "None", "clusterIPs": ["None", 5]}}),
    ];
    for input in &inputs {
        for old in [None, Some(&inputs[4]), Some(&inputs[1])] {
            let mut service = input.clone();
            default(&mut service, old);
            let _ = validate(&service, old);
            let _ = validate(input, old);
        }
    }
}

#[test]
fn status_rules() {
    let with_status = |ty: &str, ingress: Value| {
        let mut service = svc(json!({"type": ty, "ports": port80()}));
        service["status"] = json!({"loadBalancer": {"ingress": ingress}});
        service
    };
    let cases: Vec<(&str, Value, Want)> = vec![
        (
            "valid",
            with_status(
                "LoadBalancer",
                json!([{"ip": "203.0.113.1", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]),
            ),
            vec![],
        ),
        ("empty on ClusterIP", with_status("ClusterIP", json!([])), vec![]),
        (
            "ingress on ClusterIP",
            with_status("ClusterIP", json!([{"ip": "203.0.113.1"}])),
            vec![("status.loadBalancer.ingress", "Forbidden: may only be used when `spec.type` is 'LoadBalancer'")],
        ),
        (
            "bad IP without ipMode",
            with_status("LoadBalancer", json!([{"ip": "203.0.113"}])),
            vec![
                ("status.loadBalancer.ingress[0].ip", leak(format!("Invalid value: \"203.0.113\": {IP_MSG}"))),
                ("status.loadBalancer.ingress[0].ipMode", "Required value: must be specified when `ip` is set"),
            ],
        ),
        (
            "ipMode without ip",
            with_status("LoadBalancer", json!([{"hostname": "lb.example.com", "ipMode": "VIP"}])),
            vec![("status.loadBalancer.ingress[0].ipMode", "Forbidden: may not be specified when `ip` is not set")],
        ),
        (
            "unsupported ipMode",
            with_status("LoadBalancer", json!([{"ip": "203.0.113.1", "ipMode": "Tunnel"}])),
            vec![(
                "status.loadBalancer.ingress[0].ipMode",
                "Unsupported value: \"Tunnel\": supported values: \"Proxy\", \"VIP\"",
            )],
        ),
        (
            "IP as hostname",
            with_status("LoadBalancer", json!([{"hostname": "203.0.113.1"}])),
            vec![(
                "status.loadBalancer.ingress[0].hostname",
                "Invalid value: \"203.0.113.1\": must be a DNS name, not an IP address",
            )],
        ),
    ];
    for (name, service, want) in cases {
        let got = validate_status(&service, None).into_iter().map(|e| (e.field, e.message)).collect();
        assert_errors(name, got, &want);
    }
    // Defaulting supplies ipMode for LoadBalancer IPs, so a status written by a controller passes.
    let service = defaulted(with_status("LoadBalancer", json!([{"ip": "203.0.113.1"}])), None);
    assert!(validate_status(&service, None).is_empty());
}
