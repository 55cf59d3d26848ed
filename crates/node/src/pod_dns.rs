//! A pod's `/etc/resolv.conf`, `/etc/hosts` and hostname, as the kubelet derives them (pure).
//!
//! * resolv.conf: the kubelet's `GetPodDNS` (`pkg/kubelet/network/dns`). The pod's `dnsPolicy`
//!   picks the base: `ClusterFirst` (the default) the cluster DNS with the namespace's search
//!   path before the node's search domains and `ndots:5`; `ClusterFirstWithHostNet` the same for
//!   `hostNetwork` pods too (plain `ClusterFirst` falls back to `Default` for them); `Default`
//!   the node's resolv.conf; `None` nothing. `dnsConfig` is then merged on top (nameservers and
//!   searches appended without repeats, options merged by name with the pod's value winning),
//!   and the result cut to upstream's limits (3 nameservers, 32 search domains of at most 253
//!   characters, 2048 characters in all), each cut reported as the kubelet's `DNSConfigForming`
//!   warning. The file is written as the container runtime writes it: `search`, `nameserver`
//!   lines, `options`.
//! * hostname: the kubelet's `GeneratePodHostNameAndDomain` (`spec.hostname` or the pod's name,
//!   cut to 63 characters; the domain `<subdomain>.<namespace>.svc.<cluster domain>`) and
//!   `GetNodenameForKernel` (the FQDN as the UTS hostname under `setHostnameAsFQDN`).
//! * hosts: the kubelet's `managedHostsFileContent`: the header, the localhost lines, the pod's
//!   address with its FQDN and hostname (or its hostname alone), then `hostAliases`.
//!
//! Where the kubelet's options come out in Go's map order, these keep the order they were first
//! named in, so the same pod always gets the same file.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfig, PodSpec};

/// At most this many nameservers reach a pod (upstream's `MaxDNSNameservers`).
pub const MAX_NAMESERVERS: usize = 3;
/// At most this many search domains (upstream's `MaxDNSSearchPaths`).
pub const MAX_SEARCH_PATHS: usize = 32;
/// At most this many characters in the search line (upstream's `MaxDNSSearchListChars`).
pub const MAX_SEARCH_LIST_CHARS: usize = 2048;
/// A longer search domain is dropped: glibc 2.28 aborts on one over 255 characters (upstream's
/// `DNS1123SubdomainMaxLength`).
const MAX_SEARCH_PATH_CHARS: usize = 253;
/// The options of a pod using the cluster's DNS.
const CLUSTER_OPTIONS: &str = "ndots:5";
/// The longest hostname: the kernel's 64 bytes less the terminating NUL.
const MAX_HOSTNAME_CHARS: usize = 63;
/// The longest FQDN that fits the kernel's nodename field under `setHostnameAsFQDN`.
const MAX_KERNEL_FQDN_CHARS: usize = 64;

/// What a resolv.conf says: its `nameserver`, `search` and `options` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolverConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolverConfig {
    /// Reads a resolv.conf as the kubelet does: `nameserver` lines add up, the last `search` and
    /// the last `options` line win, lines starting with `#` are comments and anything else
    /// (`domain`, `sortlist`) is ignored. Search domains lose a trailing dot, so `a.` and `a`
    /// count once; a bare `.` names no domain and is left out.
    pub fn parse(text: &str) -> ResolverConfig {
        let mut config = ResolverConfig::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => config.nameservers.extend(fields.next().map(str::to_string)),
                Some("search") => {
                    config.searches = fields
                        .map(|s| s.strip_suffix('.').unwrap_or(s))
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                }
                Some("options") => config.options = fields.map(String::from).collect(),
                _ => {}
            }
        }
        config
    }

    /// The file as the container runtime writes it: the search line, one line per nameserver,
    /// the options line; a line with nothing to say is left out.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if !self.searches.is_empty() {
            text.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for nameserver in &self.nameservers {
            text.push_str(&format!("nameserver {nameserver}\n"));
        }
        if !self.options.is_empty() {
            text.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        text
    }
}

/// What the node knows of DNS: the kubelet's `--cluster-dns`, `--cluster-domain` and
/// `--resolv-conf`.
#[derive(Debug, Clone, Copy)]
pub struct NodeDns<'a> {
    pub cluster_dns: Ipv4Addr,
    /// `cluster.local`; empty for none (then the cluster adds no search domains).
    pub cluster_domain: &'a str,
    /// The node's resolv.conf; `None` when the node has none (the kubelet's `--resolv-conf=""`:
    /// pods that would use it get `nameserver 127.0.0.1` and `search .`).
    pub node_resolver: Option<&'a ResolverConfig>,
}

/// A pod's resolver configuration and the warnings its forming gave (the kubelet's
/// `DNSConfigForming` events: limits exceeded, something left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodResolver {
    pub config: ResolverConfig,
    pub warnings: Vec<String>,
}

/// Which base a pod's resolver starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Cluster,
    Node,
    Empty,
}

/// The base `spec.dnsPolicy` picks (the kubelet's `getPodDNSType`); an unknown policy, which the
/// API server refuses, counts as `ClusterFirst` as there.
fn base(spec: &PodSpec) -> Base {
    let host_network = spec.host_network == Some(true);
    match spec.dns_policy.as_deref().unwrap_or("ClusterFirst") {
        "None" => Base::Empty,
        "ClusterFirstWithHostNet" => Base::Cluster,
        "Default" => Base::Node,
        "ClusterFirst" if host_network => Base::Node,
        _ => Base::Cluster,
    }
}

/// The resolver configuration of a pod in `namespace` with `spec` on a node that knows `node`.
pub fn pod_resolver(node: &NodeDns<'_>, namespace: &str, spec: &PodSpec) -> PodResolver {
    let from_node = node.node_resolver.cloned().unwrap_or_default();
    let mut config = match base(spec) {
        Base::Empty => ResolverConfig::default(),
        Base::Cluster => ResolverConfig {
            nameservers: vec![node.cluster_dns.to_string()],
            searches: cluster_searches(node.cluster_domain, namespace, from_node.searches),
            options: vec![CLUSTER_OPTIONS.to_string()],
        },
        Base::Node if node.node_resolver.is_none() => {
            ResolverConfig { nameservers: vec!["127.0.0.1".into()], searches: vec![".".into()], options: Vec::new() }
        }
        Base::Node => from_node,
    };
    if let Some(dns_config) = &spec.dns_config {
        merge(&mut config, dns_config);
    }
    let mut warnings = Vec::new();
    if config.nameservers.len() > MAX_NAMESERVERS {
        config.nameservers.truncate(MAX_NAMESERVERS);
        warnings.push(format!(
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
            config.nameservers.join(" ")
        ));
    }
    if fit_search_limits(&mut config.searches) {
        warnings.push(format!(
            "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
            config.searches.join(" ")
        ));
    }
    PodResolver { config, warnings }
}

/// The namespace's, the Services' and the cluster's domains, then the node's own.
fn cluster_searches(cluster_domain: &str, namespace: &str, node_searches: Vec<String>) -> Vec<String> {
    if cluster_domain.is_empty() {
        return node_searches;
    }
    let cluster =
        [format!("{namespace}.svc.{cluster_domain}"), format!("svc.{cluster_domain}"), cluster_domain.to_string()];
    without_repeats(cluster.into_iter().chain(node_searches))
}

/// `dnsConfig` over a base (the kubelet's `appendDNSConfig`).
fn merge(config: &mut ResolverConfig, dns_config: &PodDNSConfig) {
    let nameservers = dns_config.nameservers.iter().flatten().cloned();
    config.nameservers = without_repeats(std::mem::take(&mut config.nameservers).into_iter().chain(nameservers));
    let searches = dns_config.searches.iter().flatten().cloned();
    config.searches = without_repeats(std::mem::take(&mut config.searches).into_iter().chain(searches));

    // By name, the last value given winning; `name` or `name:value`.
    let mut options: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| match options.iter_mut().find(|(n, _)| n == name) {
        Some(option) => option.1 = value.to_string(),
        None => options.push((name.to_string(), value.to_string())),
    };
    for option in &config.options {
        let (name, value) = option.split_once(':').unwrap_or((option, ""));
        set(name, value);
    }
    for option in dns_config.options.iter().flatten() {
        if let Some(name) = option.name.as_deref().filter(|n| !n.is_empty()) {
            set(name, option.value.as_deref().unwrap_or(""));
        }
    }
    config.options = options
        .into_iter()
        .map(|(name, value)| if value.is_empty() { name } else { format!("{name}:{value}") })
        .collect();
}

fn without_repeats(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

/// Cuts a search list to upstream's limits (the kubelet's `formDNSSearchFitsLimits`): the first
/// 32 domains, without those over 253 characters, then domains off the end until the line fits
/// in 2048 characters. Says whether anything was cut.
fn fit_search_limits(searches: &mut Vec<String>) -> bool {
    let mut cut = false;
    if searches.len() > MAX_SEARCH_PATHS {
        searches.truncate(MAX_SEARCH_PATHS);
        cut = true;
    }
    let before = searches.len();
    searches.retain(|s| s.len() <= MAX_SEARCH_PATH_CHARS);
    cut |= searches.len() != before;
    let line_length =
        |searches: &[String]| searches.iter().map(String::len).sum::<usize>() + searches.len().saturating_sub(1);
    while line_length(searches) > MAX_SEARCH_LIST_CHARS {
        searches.pop();
        cut = true;
    }
    cut
}

/// A pod's names: its hostname and, with a subdomain, the domain under which it has an FQDN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodHostname {
    /// `spec.hostname`, else the pod's name; at most 63 characters.
    pub hostname: String,
    /// `<subdomain>.<namespace>.svc.<cluster domain>`; `None` without `spec.subdomain`.
    pub domain: Option<String>,
}

impl PodHostname {
    /// The names of pod `name` in `namespace` (the kubelet's `GeneratePodHostNameAndDomain`); an
    /// error when nothing is left of a hostname cut to 63 characters.
    pub fn of(name: &str, namespace: &str, spec: &PodSpec, cluster_domain: &str) -> Result<PodHostname, String> {
        let wanted = spec.hostname.as_deref().filter(|h| !h.is_empty()).unwrap_or(name);
        let hostname = truncate_hostname(wanted)
            .ok_or_else(|| format!("hostname for pod {name:?} was invalid: {wanted:?}"))?
            .to_string();
        let domain = spec
            .subdomain
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|subdomain| format!("{subdomain}.{namespace}.svc.{cluster_domain}"));
        Ok(PodHostname { hostname, domain })
    }

    /// `hostname.domain`, when the pod has a domain.
    pub fn fqdn(&self) -> Option<String> {
        self.domain.as_ref().map(|domain| format!("{}.{domain}", self.hostname))
    }

    /// The UTS hostname (the kubelet's `GetNodenameForKernel`): the FQDN when the pod has one and
    /// asks for it with `setHostnameAsFQDN`, else the hostname. An FQDN longer than the kernel
    /// holds is an error, as there.
    pub fn kernel_hostname(&self, set_hostname_as_fqdn: bool) -> Result<String, String> {
        match self.fqdn() {
            Some(fqdn) if set_hostname_as_fqdn => {
                if fqdn.len() > MAX_KERNEL_FQDN_CHARS {
                    return Err(format!(
                        "failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long ({MAX_KERNEL_FQDN_CHARS} characters is the max, {} characters requested)",
                        fqdn.len()
                    ));
                }
                Ok(fqdn)
            }
            _ => Ok(self.hostname.clone()),
        }
    }
}

/// A hostname cut to 63 characters, without a trailing `-` or `.` left by the cut.
fn truncate_hostname(hostname: &str) -> Option<&str> {
    if hostname.len() <= MAX_HOSTNAME_CHARS {
        return Some(hostname);
    }
    // Names are ASCII (DNS labels and subdomains); a cut elsewhere would not be a hostname.
    let cut = hostname.get(..MAX_HOSTNAME_CHARS)?.trim_end_matches(['-', '.']);
    (!cut.is_empty()).then_some(cut)
}

/// The pod's `/etc/hosts` (the kubelet's `managedHostsFileContent`).
pub fn managed_hosts_file(ip: Ipv4Addr, names: &PodHostname, host_aliases: &[HostAlias]) -> String {
    let mut hosts = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    match names.fqdn() {
        Some(fqdn) => hosts.push_str(&format!("{ip}\t{fqdn}\t{}\n", names.hostname)),
        None => hosts.push_str(&format!("{ip}\t{}\n", names.hostname)),
    }
    hosts.push_str(&host_alias_entries(host_aliases));
    hosts
}

/// `hostAliases` as the kubelet appends them: one line per address, its names tab-separated.
fn host_alias_entries(host_aliases: &[HostAlias]) -> String {
    if host_aliases.is_empty() {
        return String::new();
    }
    let mut entries = String::from("\n# Entries added by HostAliases.\n");
    for alias in host_aliases {
        let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
        entries.push_str(&format!("{}\t{names}\n", alias.ip));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodDNSConfigOption;

    const NODE_RESOLV_CONF: &str = "# from DHCP\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example. lab.example\noptions timeout:2 ndots:1\n";

    fn node_dns(node_resolver: Option<&ResolverConfig>) -> NodeDns<'_> {
        NodeDns { cluster_dns: Ipv4Addr::new(10, 96, 0, 10), cluster_domain: "cluster.local", node_resolver }
    }

    fn spec(policy: Option<&str>, host_network: bool, dns_config: Option<PodDNSConfig>) -> PodSpec {
        PodSpec {
            dns_policy: policy.map(String::from),
            host_network: host_network.then_some(true),
            dns_config,
            ..PodSpec::default()
        }
    }

    fn dns_config(nameservers: &[&str], searches: &[&str], options: &[(&str, Option<&str>)]) -> PodDNSConfig {
        let strings = |items: &[&str]| Some(items.iter().map(|s| s.to_string()).collect());
        PodDNSConfig {
            nameservers: strings(nameservers),
            searches: strings(searches),
            options: Some(
                options
                    .iter()
                    .map(|(name, value)| PodDNSConfigOption {
                        name: Some(name.to_string()),
                        value: value.map(String::from),
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn parses_resolv_conf_as_the_kubelet() {
        let cases: &[(&str, ResolverConfig)] = &[
            (
                NODE_RESOLV_CONF,
                ResolverConfig {
                    nameservers: vec!["192.0.2.53".into(), "192.0.2.54".into()],
                    searches: vec!["corp.example".into(), "lab.example".into()],
                    options: vec!["timeout:2".into(), "ndots:1".into()],
                },
            ),
            // The last search and options lines win; nameservers add up; domain is ignored.
            (
                "search a.example\nnameserver 10.0.0.1\ndomain x.example\nsearch b.example .\n  # nameserver 10.0.0.9\nnameserver 10.0.0.2 # inline\noptions rotate\noptions edns0\nnameserver\n",
                ResolverConfig {
                    nameservers: vec!["10.0.0.1".into(), "10.0.0.2".into()],
                    searches: vec!["b.example".into()],
                    options: vec!["edns0".into()],
                },
            ),
            ("", ResolverConfig::default()),
        ];
        for (text, want) in cases {
            assert_eq!(&ResolverConfig::parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn renders_as_the_container_runtime() {
        let cases: &[(ResolverConfig, &str)] = &[
            (
                ResolverConfig {
                    nameservers: vec!["10.96.0.10".into(), "192.0.2.1".into()],
                    searches: vec!["a".into(), "b".into()],
                    options: vec!["ndots:5".into(), "edns0".into()],
                },
                "search a b\nnameserver 10.96.0.10\nnameserver 192.0.2.1\noptions ndots:5 edns0\n",
            ),
            (ResolverConfig { nameservers: vec!["1.1.1.1".into()], ..Default::default() }, "nameserver 1.1.1.1\n"),
            (ResolverConfig::default(), ""),
        ];
        for (config, want) in cases {
            assert_eq!(config.render(), *want);
        }
    }

    #[test]
    fn each_dns_policy_picks_its_base() {
        let node = ResolverConfig::parse(NODE_RESOLV_CONF);
        let cluster = "search ns1.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 10.96.0.10\noptions ndots:5\n";
        let host = "search corp.example lab.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions timeout:2 ndots:1\n";
        type Case<'a> = (&'a str, Option<&'a str>, bool, Option<&'a ResolverConfig>, &'a str);
        let cases: &[Case] = &[
            ("no policy is ClusterFirst", None, false, Some(&node), cluster),
            ("ClusterFirst", Some("ClusterFirst"), false, Some(&node), cluster),
            ("ClusterFirst on the host network falls back", Some("ClusterFirst"), true, Some(&node), host),
            ("ClusterFirstWithHostNet", Some("ClusterFirstWithHostNet"), true, Some(&node), cluster),
            ("ClusterFirstWithHostNet off it", Some("ClusterFirstWithHostNet"), false, Some(&node), cluster),
            ("Default", Some("Default"), false, Some(&node), host),
            ("Default on the host network", Some("Default"), true, Some(&node), host),
            ("None", Some("None"), false, Some(&node), ""),
            ("unknown is ClusterFirst", Some("Elsewhere"), false, Some(&node), cluster),
            (
                "ClusterFirst, node without resolv.conf",
                None,
                false,
                None,
                "search ns1.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
            ),
            ("Default, node without resolv.conf", Some("Default"), false, None, "search .\nnameserver 127.0.0.1\n"),
            ("Default, empty resolv.conf", Some("Default"), false, Some(&ResolverConfig::default()), ""),
        ];
        for (case, policy, host_network, node_resolver, want) in cases {
            let resolver = pod_resolver(&node_dns(*node_resolver), "ns1", &spec(*policy, *host_network, None));
            assert_eq!(resolver.config.render(), *want, "{case}");
            assert!(resolver.warnings.is_empty(), "{case}: {:?}", resolver.warnings);
        }
    }

    #[test]
    fn cluster_searches_without_a_cluster_domain_or_repeats() {
        let node = ResolverConfig::parse("search svc.cluster.local corp.example\nnameserver 192.0.2.53\n");
        let resolver = pod_resolver(&node_dns(Some(&node)), "ns1", &spec(None, false, None));
        assert_eq!(
            resolver.config.searches,
            ["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"]
        );
        let no_domain = NodeDns { cluster_domain: "", ..node_dns(Some(&node)) };
        let resolver = pod_resolver(&no_domain, "ns1", &spec(None, false, None));
        assert_eq!(resolver.config.searches, ["svc.cluster.local", "corp.example"]);
    }

    #[test]
    fn dns_config_merges_over_every_policy() {
        let node = ResolverConfig::parse(NODE_RESOLV_CONF);
        let cases: &[(&str, Option<&str>, PodDNSConfig, &str)] = &[
            (
                "None takes exactly dnsConfig",
                Some("None"),
                dns_config(&["1.1.1.1"], &["resolv.conf.local"], &[("ndots", Some("2")), ("edns0", None)]),
                "search resolv.conf.local\nnameserver 1.1.1.1\noptions ndots:2 edns0\n",
            ),
            (
                "ClusterFirst: appended, repeats dropped, the pod's ndots wins in place",
                None,
                dns_config(
                    &["10.96.0.10", "192.0.2.9"],
                    &["my.dns.search.suffix", "svc.cluster.local"],
                    &[("ndots", Some("2")), ("edns0", None)],
                ),
                "search ns1.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example my.dns.search.suffix\nnameserver 10.96.0.10\nnameserver 192.0.2.9\noptions ndots:2 edns0\n",
            ),
            (
                "Default: the node's options merged by name",
                Some("Default"),
                dns_config(&[], &[], &[("timeout", Some("5")), ("ndots", None)]),
                "search corp.example lab.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions timeout:5 ndots\n",
            ),
            (
                "an empty dnsConfig changes nothing",
                None,
                PodDNSConfig::default(),
                "search ns1.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 10.96.0.10\noptions ndots:5\n",
            ),
        ];
        for (case, policy, config, want) in cases {
            let resolver = pod_resolver(&node_dns(Some(&node)), "ns1", &spec(*policy, false, Some(config.clone())));
            assert_eq!(resolver.config.render(), *want, "{case}");
            assert!(resolver.warnings.is_empty(), "{case}: {:?}", resolver.warnings);
        }
    }

    #[test]
    fn limits_cut_and_warn_as_the_kubelet() {
        let node = ResolverConfig::parse(NODE_RESOLV_CONF);
        // Nameservers: the cluster's and the node's first two of four.
        let resolver = pod_resolver(
            &node_dns(Some(&node)),
            "ns1",
            &spec(Some("Default"), false, Some(dns_config(&["192.0.2.55", "192.0.2.56"], &[], &[]))),
        );
        assert_eq!(resolver.config.nameservers, ["192.0.2.53", "192.0.2.54", "192.0.2.55"]);
        assert_eq!(
            resolver.warnings,
            ["Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 192.0.2.53 192.0.2.54 192.0.2.55"]
        );

        let many: Vec<String> = (0..40).map(|n| format!("d{n}.example")).collect();
        let long = format!("{}.example", "a".repeat(250));
        let wide: Vec<String> = (0..20).map(|n| format!("{n:02}{}", "b".repeat(120))).collect();
        let cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
            ("32 domains at most", many.clone(), many[..32].to_vec()),
            (
                "a domain over 253 characters dropped",
                vec!["a.example".into(), long, "b.example".into()],
                vec!["a.example".into(), "b.example".into()],
            ),
            // 16 of 122 characters and their spaces make 1967; a 17th would make 2090.
            ("2048 characters at most, cut from the end", wide.clone(), wide[..16].to_vec()),
        ];
        for (case, searches, want) in cases {
            let searches: Vec<&str> = searches.iter().map(String::as_str).collect();
            let resolver =
                pod_resolver(&node_dns(None), "ns1", &spec(Some("None"), false, Some(dns_config(&[], &searches, &[]))));
            assert_eq!(resolver.config.searches, want, "{case}");
            assert_eq!(
                resolver.warnings,
                [format!(
                    "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                    want.join(" ")
                )],
                "{case}"
            );
        }
    }

    #[test]
    fn hostnames_as_the_kubelet() {
        let pod = |hostname: Option<&str>, subdomain: Option<&str>| PodSpec {
            hostname: hostname.map(String::from),
            subdomain: subdomain.map(String::from),
            ..PodSpec::default()
        };
        let long_name = format!("{}-{}", "p".repeat(62), "tail");
        let dotted = format!("{}.x", "q".repeat(62));
        // (case, pod name, spec, hostname, domain)
        type Case<'a> = (&'a str, &'a str, PodSpec, &'a str, Option<&'a str>);
        let cases: &[Case] = &[
            ("the pod's name", "web-1", pod(None, None), "web-1", None),
            ("spec.hostname", "web-1", pod(Some("db-0"), None), "db-0", None),
            ("an empty hostname is none", "web-1", pod(Some(""), Some("")), "web-1", None),
            ("subdomain", "web-1", pod(Some("db-0"), Some("db")), "db-0", Some("db.ns1.svc.cluster.local")),
            ("subdomain, no hostname", "web-1", pod(None, Some("db")), "web-1", Some("db.ns1.svc.cluster.local")),
            ("cut to 63, no trailing dash", &long_name, pod(None, None), &long_name[..62], None),
            ("cut to 63, no trailing dot", &dotted, pod(None, None), &dotted[..62], None),
        ];
        for (case, name, spec, hostname, domain) in cases {
            let got = PodHostname::of(name, "ns1", spec, "cluster.local").unwrap();
            assert_eq!((got.hostname.as_str(), got.domain.as_deref()), (*hostname, *domain), "{case}");
        }
        let nothing_left = "-".repeat(70);
        assert!(PodHostname::of(&nothing_left, "ns1", &PodSpec::default(), "cluster.local").is_err());
    }

    #[test]
    fn kernel_hostname_is_the_fqdn_only_when_asked_and_it_fits() {
        let names = |hostname: &str, domain: Option<&str>| PodHostname {
            hostname: hostname.into(),
            domain: domain.map(String::from),
        };
        let fits = names("db-0", Some("db.ns1.svc.cluster.local"));
        assert_eq!(fits.kernel_hostname(false).unwrap(), "db-0");
        assert_eq!(fits.kernel_hostname(true).unwrap(), "db-0.db.ns1.svc.cluster.local");
        assert_eq!(names("web", None).kernel_hostname(true).unwrap(), "web");
        // 40 + 1 + 24 = 65 characters.
        let too_long = names(&"h".repeat(40), Some("db.ns1.svc.cluster.local"));
        let error = too_long.kernel_hostname(true).unwrap_err();
        assert!(error.ends_with("is too long (64 characters is the max, 65 characters requested)"), "{error}");
        assert_eq!(too_long.kernel_hostname(false).unwrap(), "h".repeat(40));
    }

    #[test]
    fn hosts_files_as_the_kubelet() {
        const HEADER: &str = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";
        let ip = Ipv4Addr::new(10, 244, 0, 7);
        let plain = PodHostname { hostname: "web-1".into(), domain: None };
        let with_domain = PodHostname { hostname: "db-0".into(), domain: Some("db.ns1.svc.cluster.local".into()) };
        let aliases = vec![
            HostAlias { ip: "127.0.0.1".into(), hostnames: Some(vec!["foo.local".into(), "bar.local".into()]) },
            HostAlias { ip: "10.1.2.3".into(), hostnames: Some(vec!["foo.remote".into()]) },
        ];
        let cases: Vec<(&str, &PodHostname, &[HostAlias], String)> = vec![
            ("hostname", &plain, &[], format!("{HEADER}10.244.0.7\tweb-1\n")),
            ("fqdn", &with_domain, &[], format!("{HEADER}10.244.0.7\tdb-0.db.ns1.svc.cluster.local\tdb-0\n")),
            (
                "host aliases",
                &plain,
                &aliases,
                format!(
                    "{HEADER}10.244.0.7\tweb-1\n\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"
                ),
            ),
        ];
        for (case, names, aliases, want) in cases {
            assert_eq!(managed_hosts_file(ip, names, aliases), want, "{case}");
        }
    }
}
