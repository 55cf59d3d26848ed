//! Rendering: the proxy model's resolved ports → the nftables ruleset that serves them. Pure.
//!
//! The layout follows kube-proxy's nftables mode (same hooks and priorities, the same
//! `service-ips`/`no-endpoint-services`/`cluster-ips` dispatch, mark-based masquerading), with
//! one change made for scale: a Service without session affinity gets **no chain of its own**.
//! Its frontend maps to a shared `endpoints-N` chain (one per endpoint count N) whose single rule
//! is `dnat ip to ip daddr . meta l4proto . th dport . numgen random mod N map @service-backends`,
//! and its endpoints are N elements of that map. A verdict-map element that jumps to a chain of
//! its own costs the kernel a walk of the ruleset graph on every commit, which made kube-proxy's
//! layout quadratic in the number of Services; shared chains keep a sync proportional to what
//! changed. Services with `sessionAffinity: ClientIP` (few) keep kube-proxy's per-service and
//! per-endpoint chains, which carry the affinity sets; load-balancer source ranges get a small
//! `firewall-…` chain; external addresses and node ports under `externalTrafficPolicy: Local`
//! go through a `local-…` chain that sends pods' and the node's own connections where the
//! cluster IP's go (kube-proxy's short-circuit) and the others to the local endpoints. One
//! addition: where the node answers on the cluster DNS address itself, `raw-prerouting` and
//! `raw-output` leave its port 53 untracked (see [`RenderConfig::node_local_dns`]).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use frontdoor_netfilter::{
    BaseChain, ChainType, CmpOp, DataType, Element, ElementData, Expr, Hook, SetData, SetSpec, Value, Verdict,
};
use frontdoor_proxy_model::{Endpoint, NoEndpoints, Protocol, ResolvedPort, ServicePort, SourceRange};

use frontdoor_netfilter::phrases::*;

/// The mark bit that asks `masquerading` to masquerade a packet (kube-proxy's default, 0x4000).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// What the ruleset needs to know about the cluster.
#[derive(Clone, Debug)]
pub struct RenderConfig {
    /// Service ClusterIP ranges: addresses in them that no Service holds are dropped.
    pub service_cidrs: Vec<SourceRange>,
    /// The pod range: traffic from elsewhere to a ClusterIP is masqueraded (kube-proxy's
    /// `--cluster-cidr` local-traffic detection).
    pub cluster_cidr: SourceRange,
    /// The cluster DNS address when this node answers on it itself (a local route makes it the
    /// node's, and the DNS server listens there): queries to its port 53 and their answers are
    /// not tracked, as NodeLocal DNSCache's `NOTRACK` rules have them. They skip conntrack and
    /// the Service's DNAT, so a query costs no conntrack entry (30 s each for UDP, the table's
    /// main filler on a busy node) and cannot lose the insert race of glibc's parallel A and
    /// AAAA queries (kubernetes#56903). The rules hold only while the address is local: before
    /// the route exists, queries take the Service's rules as any other.
    pub node_local_dns: Option<Ipv4Addr>,
}

/// A chain and its rules, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    pub name: String,
    pub base: Option<BaseChain>,
    pub rules: Vec<Vec<Expr>>,
}

/// The part of the ruleset one Service owns: its own sets and chains (session affinity, source
/// ranges), its elements in the shared maps, and the shared chains its elements point at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    pub sets: Vec<SetSpec>,
    pub chains: Vec<ChainSpec>,
    pub elements: Vec<(&'static str, Element)>,
    pub shared_chains: BTreeSet<String>,
}

pub mod sets {
    pub const SERVICE_IPS: &str = "service-ips";
    pub const SERVICE_BACKENDS: &str = "service-backends";
    pub const SERVICE_NODEPORTS: &str = "service-nodeports";
    pub const NODEPORT_BACKENDS: &str = "nodeport-backends";
    pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
    pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
    pub const FIREWALL_IPS: &str = "firewall-ips";
    pub const CLUSTER_IPS: &str = "cluster-ips";
    pub const HAIRPIN: &str = "hairpin-endpoints";
}

mod chains {
    pub const SERVICES: &str = "services";
    pub const MASQUERADING: &str = "masquerading";
    pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
    pub const REJECT: &str = "reject-chain";
    pub const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
    pub const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
    pub const FIREWALL_CHECK: &str = "firewall-check";
    pub const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";
}

use sets::*;

/// The shared maps and sets, with their types.
pub fn set_specs() -> Vec<SetSpec> {
    use DataType::*;
    let frontend = vec![Ipv4Addr, InetProto, InetService];
    let node_port = vec![InetProto, InetService];
    let target = SetData::Types(vec![Ipv4Addr, InetService]);
    let spec = |name: &str, key: Vec<DataType>, data: Option<SetData>| SetSpec {
        name: name.to_string(),
        key,
        data,
        timeout: None,
        dynamic: false,
    };
    vec![
        spec(SERVICE_IPS, frontend.clone(), Some(SetData::Verdict)),
        spec(SERVICE_BACKENDS, vec![Ipv4Addr, InetProto, InetService, Integer32], Some(target.clone())),
        spec(SERVICE_NODEPORTS, node_port.clone(), Some(SetData::Verdict)),
        spec(NODEPORT_BACKENDS, vec![InetProto, InetService, Integer32], Some(target)),
        spec(NO_ENDPOINT_SERVICES, frontend.clone(), Some(SetData::Verdict)),
        spec(NO_ENDPOINT_NODEPORTS, node_port, Some(SetData::Verdict)),
        spec(FIREWALL_IPS, frontend, Some(SetData::Verdict)),
        spec(CLUSTER_IPS, vec![Ipv4Addr], None),
        spec(HAIRPIN, vec![Ipv4Addr, Ipv4Addr], None),
    ]
}

fn base(hook: Hook, priority: i32, kind: ChainType) -> Option<BaseChain> {
    Some(BaseChain { hook, priority, kind })
}

/// kube-proxy's priorities: NAT at `dstnat` (-100) and `srcnat` (100), filters 10 before DNAT
/// and 10 after it on output.
const DSTNAT: i32 = -100;
const SRCNAT: i32 = 100;
/// nft's `raw`: before conntrack (-200) looks at a packet.
const RAW: i32 = -300;
/// The DNS port.
pub(crate) const DNS: u16 = 53;

fn rule(parts: &[&[Expr]]) -> Vec<Expr> {
    parts.iter().flat_map(|part| part.iter().cloned()).collect()
}

/// The chains every ruleset has, whatever the Services.
pub fn fixed_chains(config: &RenderConfig) -> Vec<ChainSpec> {
    use chains::*;
    let chain =
        |name: &str, base: Option<BaseChain>, rules: Vec<Vec<Expr>>| ChainSpec { name: name.to_string(), base, rules };
    let new = ct_state_new();
    let check = |target: &str| rule(&[&new, &[jump(target)]]);
    let mut cluster_ips_check =
        vec![rule(&[&new, &[ip_daddr(frontdoor_netfilter::Register::R1), member_of(CLUSTER_IPS), reject()]])];
    for cidr in &config.service_cidrs {
        cluster_ips_check.push(rule(&[
            &new,
            &ip_in_range(ip_daddr, cidr.network, cidr.prefix, CmpOp::Eq),
            &[verdict(Verdict::Drop)],
        ]));
    }
    let local_node_port = rule(&[&fib_daddr_local(), &daddr_not_loopback(), &proto_dport()]);
    let mut chains = untracked_dns_chains(config.node_local_dns);
    chains.extend([
        chain("filter-prerouting", base(Hook::Prerouting, DSTNAT - 10, ChainType::Filter), vec![check(FIREWALL_CHECK)]),
        chain(
            "filter-input",
            base(Hook::Input, DSTNAT - 10, ChainType::Filter),
            vec![check(NODEPORT_ENDPOINTS_CHECK), check(SERVICE_ENDPOINTS_CHECK)],
        ),
        chain(
            "filter-forward",
            base(Hook::Forward, DSTNAT - 10, ChainType::Filter),
            vec![check(SERVICE_ENDPOINTS_CHECK), check(CLUSTER_IPS_CHECK)],
        ),
        chain(
            "filter-output",
            base(Hook::Output, DSTNAT - 10, ChainType::Filter),
            vec![check(SERVICE_ENDPOINTS_CHECK)],
        ),
        chain(
            "filter-output-post-dnat",
            base(Hook::Output, DSTNAT + 10, ChainType::Filter),
            vec![check(CLUSTER_IPS_CHECK)],
        ),
        chain("nat-prerouting", base(Hook::Prerouting, DSTNAT, ChainType::Nat), vec![vec![jump(SERVICES)]]),
        chain("nat-output", base(Hook::Output, DSTNAT, ChainType::Nat), vec![vec![jump(SERVICES)]]),
        chain("nat-postrouting", base(Hook::Postrouting, SRCNAT, ChainType::Nat), vec![vec![jump(MASQUERADING)]]),
        chain(
            SERVICES,
            None,
            vec![
                rule(&[&daddr_proto_dport(), &[vmap(SERVICE_IPS)]]),
                rule(&[&local_node_port, &[vmap(SERVICE_NODEPORTS)]]),
            ],
        ),
        chain(FIREWALL_CHECK, None, vec![rule(&[&daddr_proto_dport(), &[vmap(FIREWALL_IPS)]])]),
        chain(SERVICE_ENDPOINTS_CHECK, None, vec![rule(&[&daddr_proto_dport(), &[vmap(NO_ENDPOINT_SERVICES)]])]),
        chain(NODEPORT_ENDPOINTS_CHECK, None, vec![rule(&[&local_node_port, &[vmap(NO_ENDPOINT_NODEPORTS)]])]),
        chain(CLUSTER_IPS_CHECK, None, cluster_ips_check),
        chain(REJECT, None, vec![vec![reject()]]),
        chain(MARK_FOR_MASQUERADE, None, vec![set_mark_bit(MASQUERADE_MARK).to_vec()]),
        chain(
            MASQUERADING,
            None,
            vec![
                // A pod reaching itself through its own Service (hairpin).
                rule(&[
                    &[ip_saddr(frontdoor_netfilter::Register::R1), ip_daddr(frontdoor_netfilter::Register::R32(1))],
                    &[member_of(HAIRPIN), masquerade(false)],
                ]),
                // A ClusterIP reached from outside the pod range.
                rule(&[
                    &[ct_original_daddr(frontdoor_netfilter::Register::R1), member_of(CLUSTER_IPS)],
                    &ip_in_range(ip_saddr, config.cluster_cidr.network, config.cluster_cidr.prefix, CmpOp::Neq),
                    &[masquerade(false)],
                ]),
                rule(&[&mark_bit_clear(MASQUERADE_MARK), &[verdict(Verdict::Return)]]),
                flip_mark_bit(MASQUERADE_MARK).to_vec(),
                vec![masquerade(true)],
            ],
        ),
    ]);
    chains
}

/// The `raw` chains that leave the node-local DNS address's traffic untracked (see
/// [`RenderConfig::node_local_dns`]). None without it.
fn untracked_dns_chains(address: Option<Ipv4Addr>) -> Vec<ChainSpec> {
    address.map(|address| untracked_chains(address, &[DNS])).unwrap_or_default()
}

/// `raw-prerouting` and `raw-output`, which leave UDP and TCP traffic to `ports` of `address`
/// untracked while the address is local: queries from pods (prerouting) and from the node itself
/// (output), and the answers sent from there. (The DNS benchmark gives its peers' ports the
/// same path with these.)
pub fn untracked_chains(address: Ipv4Addr, ports: &[u16]) -> Vec<ChainSpec> {
    let protocols = [Protocol::Udp.number(), Protocol::Tcp.number()];
    let each = |make: &dyn Fn(u8, u16) -> Vec<Expr>| -> Vec<Vec<Expr>> {
        ports.iter().flat_map(|&port| protocols.map(|protocol| make(protocol, port))).collect()
    };
    // Only while the address is local (`fib`): untracked, a packet to it elsewhere would be
    // routed untranslated. A packet the node looped back to itself was decided on output.
    let query = each(&|protocol, port| rule(&[&to_port(address, protocol, port), &fib_daddr_local(), &[notrack()]]));
    let arriving = each(&|protocol, port| {
        rule(&[&to_port(address, protocol, port), &iif_not_loopback(), &fib_daddr_local(), &[notrack()]])
    });
    let answer = each(&|protocol, port| rule(&[&from_port(address, protocol, port), &[notrack()]]));
    let raw =
        |name: &str, hook, rules| ChainSpec { name: name.to_string(), base: base(hook, RAW, ChainType::Filter), rules };
    vec![raw("raw-prerouting", Hook::Prerouting, arriving), raw("raw-output", Hook::Output, [query, answer].concat())]
}

/// The shared DNAT chain for frontends with `count` endpoints: by frontend address
/// (`endpoints-N`) or by node port (`nodeport-endpoints-N`), masquerading or not.
fn shared_chain_name(node_port: bool, count: usize, masquerade: bool) -> String {
    let prefix = if node_port { "nodeport-endpoints" } else { "endpoints" };
    let suffix = if masquerade { "-masq" } else { "" };
    format!("{prefix}-{count}{suffix}")
}

/// The rules of a shared chain named by [`shared_chain_name`].
pub fn shared_chain(name: &str) -> Option<ChainSpec> {
    let (node_port, rest) = match name.strip_prefix("nodeport-endpoints-") {
        Some(rest) => (true, rest),
        None => (false, name.strip_prefix("endpoints-")?),
    };
    let (count, masq) = match rest.strip_suffix("-masq") {
        Some(count) => (count, true),
        None => (rest, false),
    };
    let count: u32 = count.parse().ok().filter(|c| *c > 0)?;
    let mut rules = Vec::new();
    if masq {
        rules.push(vec![jump(chains::MARK_FOR_MASQUERADE)]);
    }
    rules.push(if node_port {
        rule(&[&proto_dport(), &dnat_through_map(NODEPORT_BACKENDS, 2, count)])
    } else {
        rule(&[&daddr_proto_dport(), &dnat_through_map(SERVICE_BACKENDS, 3, count)])
    });
    Some(ChainSpec { name: name.to_string(), base: None, rules })
}

fn frontend_key(ip: Ipv4Addr, port: &ServicePort, number: u16) -> Vec<Value> {
    vec![Value::Ipv4(ip), Value::Proto(port.protocol.number()), Value::Port(number)]
}

fn target(endpoint: &Endpoint) -> ElementData {
    ElementData::Values(vec![Value::Ipv4(endpoint.ip), Value::Port(endpoint.port)])
}

fn element(key: Vec<Value>, data: Option<ElementData>) -> Element {
    Element { key, data }
}

fn verdict_data(verdict: Verdict) -> Option<ElementData> {
    Some(ElementData::Verdict(verdict))
}

fn no_endpoints_verdict(choice: NoEndpoints) -> Verdict {
    match choice {
        NoEndpoints::Reject => Verdict::Goto(chains::REJECT.to_string()),
        NoEndpoints::Drop => Verdict::Drop,
    }
}

/// kube-proxy's name for a service port in chain names: `ns/name/proto/port-name`.
fn port_id(port: &ServicePort) -> String {
    format!("{}/{}/{}/{}", port.service.namespace, port.service.name, port.protocol.as_str(), port.name)
}

fn endpoint_id(port: &ServicePort, endpoint: &Endpoint) -> String {
    format!("{}__{}/{}", port_id(port), endpoint.ip, endpoint.port)
}

/// Renders one Service (all its ports).
pub fn render_service(ports: &[ResolvedPort], config: &RenderConfig) -> Fragment {
    let mut fragment = Fragment::default();
    for resolved in ports {
        render_port(resolved, config, &mut fragment);
    }
    fragment
}

fn render_port(resolved: &ResolvedPort, config: &RenderConfig, out: &mut Fragment) {
    let port = &resolved.port;
    let proto = port.protocol.number();
    out.elements.push((CLUSTER_IPS, element(vec![Value::Ipv4(port.cluster_ip)], None)));
    let affinity = port.affinity_seconds;
    if let Some(seconds) = affinity {
        render_affinity_chains(resolved, seconds, out);
    }
    // Traffic to the cluster IP.
    let cluster_frontend = frontend_key(port.cluster_ip, port, port.port);
    if resolved.internal.is_empty() {
        out.elements.push((
            NO_ENDPOINT_SERVICES,
            element(cluster_frontend, verdict_data(no_endpoints_verdict(resolved.internal_without_endpoints()))),
        ));
    } else if affinity.is_some() {
        out.elements.push((
            SERVICE_IPS,
            element(cluster_frontend, verdict_data(Verdict::Goto(format!("service-{}", port_id(port))))),
        ));
    } else {
        let chain = shared_chain_name(false, resolved.internal.len(), false);
        push_backends(out, &cluster_frontend, &resolved.internal, SERVICE_BACKENDS);
        out.elements.push((SERVICE_IPS, element(cluster_frontend, verdict_data(Verdict::Goto(chain.clone())))));
        out.shared_chains.insert(chain);
    }
    // External traffic: external IPs, load-balancer addresses, the node port.
    let masquerade = !port.external_local;
    // Under `externalTrafficPolicy: Local`, traffic from pods and from the node itself is not
    // external: it goes where the cluster IP's would (kube-proxy's short-circuit), through a
    // chain of the port's own that sends the rest to the local endpoints.
    let short_circuit = port.external_local && resolved.has_any;
    let external_target = |out: &mut Fragment, node_port: bool| -> Verdict {
        if short_circuit {
            let chain = short_circuit_chain(resolved, config, node_port, out);
            return Verdict::Goto(chain);
        }
        if affinity.is_some() {
            return Verdict::Goto(format!("external-{}", port_id(port)));
        }
        let chain = shared_chain_name(node_port, resolved.external.len(), masquerade);
        out.shared_chains.insert(chain.clone());
        Verdict::Goto(chain)
    };
    let external_ips = port.external_ips.iter().chain(port.load_balancer_ips.iter());
    for ip in external_ips {
        let key = frontend_key(*ip, port, port.port);
        if resolved.external.is_empty() && !short_circuit {
            let verdict = no_endpoints_verdict(resolved.external_without_endpoints());
            out.elements.push((NO_ENDPOINT_SERVICES, element(key, verdict_data(verdict))));
            continue;
        }
        if affinity.is_none() {
            push_backends(out, &key, &resolved.external, SERVICE_BACKENDS);
        }
        let verdict = external_target(out, false);
        out.elements.push((SERVICE_IPS, element(key, verdict_data(verdict))));
    }
    if !port.source_ranges.is_empty() {
        let chain = format!("firewall-{}", port_id(port));
        let mut rules: Vec<Vec<Expr>> = port
            .source_ranges
            .iter()
            .map(|range| {
                rule(&[&ip_in_range(ip_saddr, range.network, range.prefix, CmpOp::Eq), &[verdict(Verdict::Return)]])
            })
            .collect();
        rules.push(vec![verdict(Verdict::Drop)]);
        for ip in &port.load_balancer_ips {
            out.elements.push((
                FIREWALL_IPS,
                element(frontend_key(*ip, port, port.port), verdict_data(Verdict::Goto(chain.clone()))),
            ));
        }
        out.chains.push(ChainSpec { name: chain, base: None, rules });
    }
    if let Some(node_port) = port.node_port {
        let key = vec![Value::Proto(proto), Value::Port(node_port)];
        if resolved.external.is_empty() && !short_circuit {
            let verdict = no_endpoints_verdict(resolved.external_without_endpoints());
            out.elements.push((NO_ENDPOINT_NODEPORTS, element(key, verdict_data(verdict))));
        } else {
            if affinity.is_none() {
                push_backends(out, &key, &resolved.external, NODEPORT_BACKENDS);
            }
            let verdict = external_target(out, true);
            out.elements.push((SERVICE_NODEPORTS, element(key, verdict_data(verdict))));
        }
    }
    for endpoint in resolved.internal.iter().chain(resolved.external.iter()).filter(|e| e.local) {
        out.elements.push((HAIRPIN, element(vec![Value::Ipv4(endpoint.ip), Value::Ipv4(endpoint.ip)], None)));
    }
}

/// The chain an `externalTrafficPolicy: Local` frontend goes to (`local-…`, or
/// `local-nodeport-…` for the node port): connections from pods and from the node go where the
/// cluster IP's go (the node's masqueraded), the others to the local endpoints, or are dropped
/// when there is none here. Returns its name; adds it to the fragment once.
fn short_circuit_chain(resolved: &ResolvedPort, config: &RenderConfig, node_port: bool, out: &mut Fragment) -> String {
    let port = &resolved.port;
    let name = format!("{}-{}", if node_port { "local-nodeport" } else { "local" }, port_id(port));
    if out.chains.iter().any(|chain| chain.name == name) {
        return name;
    }
    // Where the cluster IP's traffic goes.
    let as_cluster_ip: Vec<Expr> = if resolved.internal.is_empty() {
        vec![verdict(Verdict::Drop)]
    } else if port.affinity_seconds.is_some() {
        vec![goto(&format!("service-{}", port_id(port)))]
    } else {
        dnat_as(SERVICE_BACKENDS, port.cluster_ip, port.protocol.number(), port.port, resolved.internal.len() as u32)
    };
    let mut rules = vec![
        rule(&[
            &ip_in_range(ip_saddr, config.cluster_cidr.network, config.cluster_cidr.prefix, CmpOp::Eq),
            &as_cluster_ip,
        ]),
        rule(&[&fib_saddr_local(), &[jump(chains::MARK_FOR_MASQUERADE)]]),
        rule(&[&fib_saddr_local(), &as_cluster_ip]),
    ];
    rules.push(if resolved.external.is_empty() {
        vec![verdict(Verdict::Drop)]
    } else if port.affinity_seconds.is_some() {
        vec![goto(&format!("external-{}", port_id(port)))]
    } else {
        let shared = shared_chain_name(node_port, resolved.external.len(), false);
        out.shared_chains.insert(shared.clone());
        vec![goto(&shared)]
    });
    out.chains.push(ChainSpec { name: name.clone(), base: None, rules });
    name
}

/// `frontend . i : endpoint i` for each endpoint, in the given backends map.
fn push_backends(out: &mut Fragment, frontend: &[Value], endpoints: &[Endpoint], map: &'static str) {
    for (index, endpoint) in endpoints.iter().enumerate() {
        let mut key = frontend.to_vec();
        key.push(Value::U32(index as u32));
        out.elements.push((map, element(key, Some(target(endpoint)))));
    }
}

/// kube-proxy's layout for `sessionAffinity: ClientIP`: a chain per service port that sends a
/// client back to the endpoint it last used (one timeout set per endpoint), else picks one at
/// random; a chain per endpoint that remembers the client and DNATs.
fn render_affinity_chains(resolved: &ResolvedPort, seconds: u32, out: &mut Fragment) {
    let port = &resolved.port;
    let mut endpoints: Vec<&Endpoint> = resolved.internal.iter().chain(resolved.external.iter()).collect();
    endpoints.sort();
    endpoints.dedup();
    for endpoint in &endpoints {
        let id = endpoint_id(port, endpoint);
        out.sets.push(SetSpec {
            name: format!("affinity-{id}"),
            key: vec![DataType::Ipv4Addr],
            data: None,
            timeout: Some(std::time::Duration::from_secs(u64::from(seconds))),
            dynamic: true,
        });
        let mut rules = vec![remember_source(&format!("affinity-{id}")).to_vec()];
        rules.push(dnat_to(port.protocol.number(), endpoint.ip, endpoint.port));
        out.chains.push(ChainSpec { name: format!("endpoint-{id}"), base: None, rules });
    }
    let dispatch = |endpoints: &[Endpoint], masquerade: bool| -> Vec<Vec<Expr>> {
        let mut rules = Vec::new();
        if masquerade {
            rules.push(vec![jump(chains::MARK_FOR_MASQUERADE)]);
        }
        for endpoint in endpoints {
            let id = endpoint_id(port, endpoint);
            rules.push(vec![
                ip_saddr(frontdoor_netfilter::Register::R1),
                member_of(&format!("affinity-{id}")),
                goto(&format!("endpoint-{id}")),
            ]);
        }
        // Endpoint i is taken with probability 1/(N-i) of what is left: 1/N each.
        let count = endpoints.len();
        for (index, endpoint) in endpoints.iter().enumerate() {
            let chain = format!("endpoint-{}", endpoint_id(port, endpoint));
            if index + 1 == count {
                rules.push(vec![goto(&chain)]);
            } else {
                rules.push(rule(&[&one_in((count - index) as u32), &[goto(&chain)]]));
            }
        }
        rules
    };
    if !resolved.internal.is_empty() {
        out.chains.push(ChainSpec {
            name: format!("service-{}", port_id(port)),
            base: None,
            rules: dispatch(&resolved.internal, false),
        });
    }
    if !resolved.external.is_empty() {
        out.chains.push(ChainSpec {
            name: format!("external-{}", port_id(port)),
            base: None,
            rules: dispatch(&resolved.external, !port.external_local),
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn raw_chains(node_local_dns: Option<Ipv4Addr>) -> Vec<ChainSpec> {
        let config = RenderConfig {
            service_cidrs: vec![SourceRange::parse("10.96.0.0/12").unwrap()],
            cluster_cidr: SourceRange::parse("10.244.0.0/16").unwrap(),
            node_local_dns,
        };
        fixed_chains(&config).into_iter().filter(|chain| chain.name.starts_with("raw-")).collect()
    }

    /// Untracked traffic only where the node answers on the DNS address itself; each rule ends
    /// in `notrack`, before conntrack, and a query is untracked only while its address is local.
    #[test]
    fn dns_is_untracked_only_with_a_node_local_address() {
        assert!(raw_chains(None).is_empty());
        let chains = raw_chains(Some(Ipv4Addr::new(10, 96, 0, 10)));
        let shape: Vec<(&str, Hook, usize)> = chains
            .iter()
            .map(|chain| (chain.name.as_str(), chain.base.as_ref().unwrap().hook, chain.rules.len()))
            .collect();
        assert_eq!(shape, [("raw-prerouting", Hook::Prerouting, 2), ("raw-output", Hook::Output, 4)]);
        for chain in &chains {
            assert_eq!(chain.base.as_ref().unwrap().priority, -300);
            for rule in &chain.rules {
                assert_eq!(rule.last(), Some(&Expr::Notrack), "{rule:?}");
                let is_query = rule.contains(&ip_daddr(frontdoor_netfilter::Register::R1));
                let checks_local = rule.iter().any(|expr| matches!(expr, Expr::Fib { .. }));
                assert_eq!(is_query, checks_local, "{rule:?}");
            }
        }
        // Each port of each address, UDP and TCP.
        let peers = untracked_chains(Ipv4Addr::new(10, 96, 0, 10), &[5301, 5302, 5303]);
        assert_eq!(peers.iter().map(|chain| chain.rules.len()).collect::<Vec<_>>(), [6, 12]);
    }
}
