//! Upstream's format checks (`k8s.io/apimachinery/pkg/util/validation`, `.../api/validate/content`,
//! `k8s.io/utils/net`): each returns the list of problem messages, empty when the value is valid,
//! worded exactly as upstream words them.

use crate::FieldError;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const WILDCARD_SUBDOMAIN_FMT: &str = "\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const HTTP_PATH_FMT: &str = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+";

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const WILDCARD_SUBDOMAIN_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character";
const LABEL_KEY_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

pub(crate) const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
pub(crate) const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
pub(crate) const FIELD_IMMUTABLE: &str = "field is immutable";

/// Upstream's `RegexError`.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

pub(crate) fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
}

fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

pub(crate) fn dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errs
}

pub(crate) fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

pub(crate) fn dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !(matches_dns1123_label(value) && value.as_bytes()[0].is_ascii_lowercase()) {
        errs.push(regex_error(DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, &["my-name", "abc-123"]));
    }
    errs
}

pub(crate) fn wildcard_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !value.strip_prefix("*.").is_some_and(matches_dns1123_subdomain) {
        errs.push(regex_error(WILDCARD_SUBDOMAIN_MSG, WILDCARD_SUBDOMAIN_FMT, &["*.example.com"]));
    }
    errs
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
fn matches_label_key_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsQualifiedName` / `IsLabelKey`: `[prefix/]name`.
pub(crate) fn qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(LABEL_KEY_MSG, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !matches_label_key_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(LABEL_KEY_MSG, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

pub(crate) fn label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !value.is_empty() && !matches_label_key_name(value) {
        errs.push(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"]));
    }
    errs
}

/// `ValidateLabels`: key problems and value problems, all reported at `path` itself.
pub(crate) fn labels(pairs: &[(String, String)], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (key, value) in pairs {
        for msg in qualified_name(key) {
            errs.push(FieldError::invalid(path, crate::gofmt::quote(key), &msg));
        }
        for msg in label_value(value) {
            errs.push(FieldError::invalid(path, crate::gofmt::quote(value), &msg));
        }
    }
    errs
}

pub(crate) fn port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// IANA_SVC_NAME: 1–15 of `[-a-z0-9]`, at least one letter, no `--`, no leading/trailing `-`.
/// The port protocols Services, Endpoints and EndpointSlices accept.
pub(crate) const SUPPORTED_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// `<path>.protocol: Unsupported value` unless `protocol` is one of [`SUPPORTED_PROTOCOLS`].
pub(crate) fn supported_protocol(path: &str, protocol: &str) -> Option<FieldError> {
    (!SUPPORTED_PROTOCOLS.contains(&protocol)).then(|| {
        FieldError::not_supported(format!("{path}.protocol"), crate::gofmt::quote(protocol), SUPPORTED_PROTOCOLS)
    })
}

/// `<path>.appProtocol` must be a qualified name when set.
pub(crate) fn app_protocol(path: &str, app: Option<&str>) -> Vec<FieldError> {
    app.map(|app| invalid_each(&format!("{path}.appProtocol"), app, qualified_name(app))).unwrap_or_default()
}

pub(crate) fn port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    let b = port.as_bytes();
    if b.is_empty() || !b.iter().all(|&c| is_lower_alnum(c) || c == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !b.iter().any(u8::is_ascii_lowercase) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if !b.is_empty() && (b[0] == b'-' || b[b.len() - 1] == b'-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// `IsPathSegmentName`.
pub(crate) fn path_segment_name(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"].iter().filter(|bad| name.contains(**bad)).map(|bad| format!("may not contain '{bad}'")).collect()
}

/// `IsFullyQualifiedDomainName` (a trailing dot allowed, at least two labels).
pub(crate) fn fully_qualified_domain_name(path: &str, name: &str) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let errs = dns1123_subdomain(name);
    if !errs.is_empty() {
        return vec![FieldError::invalid(path, crate::gofmt::quote(name), &errs.join(","))];
    }
    if name.split('.').count() < 2 {
        return vec![FieldError::invalid(
            path,
            crate::gofmt::quote(name),
            "should be a domain with at least two segments separated by dots",
        )];
    }
    for label in name.split('.') {
        let errs = dns1123_label(label);
        if !errs.is_empty() {
            return vec![FieldError::invalid(path, crate::gofmt::quote(label), &errs.join(","))];
        }
    }
    Vec::new()
}

/// `IsDomainPrefixedPath` (IngressClass controllers).
pub(crate) fn domain_prefixed_path(path: &str, value: &str) -> Vec<FieldError> {
    if value.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let Some((host, rest)) = value.split_once('/').filter(|(h, r)| !h.is_empty() && !r.is_empty()) else {
        return vec![FieldError::invalid(
            path,
            crate::gofmt::quote(value),
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )];
    };
    let mut errs: Vec<FieldError> =
        dns1123_subdomain(host).into_iter().map(|m| FieldError::invalid(path, crate::gofmt::quote(host), &m)).collect();
    let ok = rest.bytes().all(|c| c.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&c));
    if !ok {
        errs.push(FieldError::invalid(
            path,
            crate::gofmt::quote(rest),
            &regex_error("Invalid path", HTTP_PATH_FMT, &[]),
        ));
    }
    errs
}

/// An IP address as Go's (pre-1.17, "sloppy") `net.ParseIP` reads it: IPv4 octets may carry
/// leading zeros; IPv4-mapped IPv6 addresses count as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ip {
    V4([u8; 4]),
    V6([u8; 16]),
}

fn parse_ipv4_sloppy(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for slot in &mut out {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut n: u32 = 0;
        for c in part.bytes() {
            n = n * 10 + u32::from(c - b'0');
            if n > 0xFF {
                return None;
            }
        }
        *slot = n as u8;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(out)
}

fn parse_ipv6_sloppy(s: &str) -> Option<[u8; 16]> {
    // Rust rejects leading zeros in an embedded IPv4 tail; Go accepts them, so rewrite the tail.
    let rewritten;
    let text = if s.contains('.') {
        let (head, tail) = s.rsplit_once(':')?;
        let v4 = parse_ipv4_sloppy(tail)?;
        rewritten = format!("{head}:{:x}:{:x}", u16::from_be_bytes([v4[0], v4[1]]), u16::from_be_bytes([v4[2], v4[3]]));
        rewritten.as_str()
    } else {
        s
    };
    text.parse::<std::net::Ipv6Addr>().ok().map(|a| a.octets())
}

/// `netutils.ParseIPSloppy`.
pub(crate) fn parse_ip(s: &str) -> Option<Ip> {
    let first = s.bytes().find(|c| *c == b'.' || *c == b':')?;
    if first == b'.' {
        return parse_ipv4_sloppy(s).map(Ip::V4);
    }
    let octets = parse_ipv6_sloppy(s)?;
    if octets[..10].iter().all(|b| *b == 0) && octets[10] == 0xff && octets[11] == 0xff {
        return Some(Ip::V4([octets[12], octets[13], octets[14], octets[15]]));
    }
    Some(Ip::V6(octets))
}

/// `IPv4` or `IPv6` for a parseable address.
pub(crate) fn ip_family(s: &str) -> Option<&'static str> {
    match parse_ip(s)? {
        Ip::V4(_) => Some("IPv4"),
        Ip::V6(_) => Some("IPv6"),
    }
}

/// `validation.IsValidIP`.
pub(crate) fn valid_ip(path: &str, value: &str) -> Vec<FieldError> {
    if parse_ip(value).is_some() {
        Vec::new()
    } else {
        vec![FieldError::invalid(path, crate::gofmt::quote(value), IP_MSG)]
    }
}

/// `validation.IsValidIPv4Address` / `IsValidIPv6Address`.
pub(crate) fn valid_ip_of_family(path: &str, value: &str, v6: bool) -> Vec<FieldError> {
    let ok = match parse_ip(value) {
        Some(Ip::V4(_)) => !v6,
        Some(Ip::V6(_)) => v6,
        None => false,
    };
    if ok {
        Vec::new()
    } else {
        let msg = if v6 { "must be a valid IPv6 address" } else { "must be a valid IPv4 address" };
        vec![FieldError::invalid(path, crate::gofmt::quote(value), msg)]
    }
}

/// `ValidateNonSpecialIP`: no unspecified, loopback, link-local or link-local multicast addresses.
pub(crate) fn non_special_ip(path: &str, value: &str) -> Vec<FieldError> {
    let q = crate::gofmt::quote(value);
    let Some(ip) = parse_ip(value) else {
        return vec![FieldError::invalid(path, q, "must be a valid IP address")];
    };
    let (unspecified, loopback, link_local, link_local_multicast) = match ip {
        Ip::V4(a) => (a == [0; 4], a[0] == 127, a[0] == 169 && a[1] == 254, a[0] == 224 && a[1] == 0 && a[2] == 0),
        Ip::V6(a) => (
            a == [0; 16],
            a[..15].iter().all(|b| *b == 0) && a[15] == 1,
            a[0] == 0xfe && a[1] & 0xc0 == 0x80,
            a[0] == 0xff && a[1] & 0x0f == 0x02,
        ),
    };
    let mut errs = Vec::new();
    if unspecified {
        errs.push(FieldError::invalid(path, q.clone(), &format!("may not be unspecified ({value})")));
    }
    if loopback {
        errs.push(FieldError::invalid(path, q.clone(), "may not be in the loopback range (127.0.0.0/8, ::1/128)"));
    }
    if link_local {
        errs.push(FieldError::invalid(
            path,
            q.clone(),
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_multicast {
        errs.push(FieldError::invalid(
            path,
            q,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

/// `netutils.ParseCIDRSloppy` succeeds.
pub(crate) fn is_cidr(s: &str) -> bool {
    let Some((addr, prefix)) = s.split_once('/') else {
        return false;
    };
    let bits = match addr.bytes().find(|c| *c == b'.' || *c == b':') {
        Some(b'.') if parse_ipv4_sloppy(addr).is_some() => 32,
        Some(b':') if parse_ipv6_sloppy(addr).is_some() => 128,
        _ => return false,
    };
    !prefix.is_empty()
        && prefix.len() <= 8
        && prefix.bytes().all(|c| c.is_ascii_digit())
        && prefix.parse::<u32>().is_ok_and(|n| n <= bits)
}

/// `validation.IsValidCIDR`.
pub(crate) fn valid_cidr(path: &str, value: &str) -> Vec<FieldError> {
    if is_cidr(value) {
        Vec::new()
    } else {
        vec![FieldError::invalid(path, crate::gofmt::quote(value), CIDR_MSG)]
    }
}

/// Reports each message as `field.Invalid(path, quoted value, msg)`.
pub(crate) fn invalid_each(path: &str, value: &str, msgs: Vec<String>) -> Vec<FieldError> {
    let q = crate::gofmt::quote(value);
    msgs.into_iter().map(|m| FieldError::invalid(path, q.clone(), &m)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABEL_REGEX_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

    #[test]
    fn dns_names() {
        let label_cases: &[(&str, &[&str])] = &[
            ("http", &[]),
            ("a-1", &[]),
            ("Http", &[LABEL_REGEX_MSG]),
            ("-a", &[LABEL_REGEX_MSG]),
            ("a.b", &["must not contain dots"]),
            ("", &[LABEL_REGEX_MSG]),
        ];
        for (input, want) in label_cases {
            assert_eq!(dns1123_label(input), *want, "{input:?}");
        }
        assert_eq!(dns1123_label(&"a".repeat(64)), ["must be no more than 63 characters"]);
        assert!(dns1123_subdomain("db.example.com").is_empty());
        assert_eq!(dns1123_subdomain("bad_name").len(), 1);
        assert!(dns1123_subdomain("bad_name")[0].ends_with(
            "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ));
        assert!(dns1035_label("web").is_empty());
        assert_eq!(dns1035_label("1web")[0], "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')");
        assert!(wildcard_dns1123_subdomain("*.example.com").is_empty());
        assert_eq!(wildcard_dns1123_subdomain("*.*.example.com").len(), 1);
    }

    #[test]
    fn qualified_names_and_ports() {
        assert!(qualified_name("kubernetes.io/h2c").is_empty());
        assert!(qualified_name("http").is_empty());
        assert_eq!(qualified_name("/x"), ["prefix part must be non-empty"]);
        assert_eq!(qualified_name("a/b/c").len(), 1);
        assert!(qualified_name("a/b/c")[0].starts_with("a valid label key must consist of"));
        assert_eq!(qualified_name("bad name")[0], "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')");
        assert!(port_name("http").is_empty());
        assert_eq!(port_name("8080"), ["must contain at least one letter (a-z)"]);
        assert_eq!(port_name("-a--b"), ["must not contain consecutive hyphens", "must not begin or end with a hyphen"]);
        assert_eq!(port_name("averyveryverylongname"), ["must be no more than 15 characters"]);
        assert_eq!(port_num(0), ["must be between 1 and 65535, inclusive"]);
        assert!(port_num(65535).is_empty());
    }

    #[test]
    fn ips_and_cidrs() {
        assert_eq!(parse_ip("10.0.0.1"), Some(Ip::V4([10, 0, 0, 1])));
        assert_eq!(parse_ip("010.000.000.001"), Some(Ip::V4([10, 0, 0, 1])));
        assert_eq!(parse_ip("::ffff:1.2.3.4"), Some(Ip::V4([1, 2, 3, 4])));
        assert_eq!(ip_family("fd00::10"), Some("IPv6"));
        for bad in
            ["", "None", "256.0.0.1", "1.2.3", "1.2.3.4.5", "1.2.3.4%eth0", "fe80::1%eth0", "1.2.3.4/32", " 1.2.3.4"]
        {
            assert_eq!(parse_ip(bad), None, "{bad:?}");
        }
        for ok in ["10.0.0.0/8", "0.0.0.0/0", "2001:db8::/64", "10.1.2.3/32", "010.0.0.0/08"] {
            assert!(is_cidr(ok), "{ok:?}");
        }
        for bad in ["10.0.0.0", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/", "/8", "10.0.0.0/-1", "x/8"] {
            assert!(!is_cidr(bad), "{bad:?}");
        }
        let special = |ip: &str| non_special_ip("p", ip).into_iter().map(|e| e.message).collect::<Vec<_>>();
        assert!(special("10.1.2.3").is_empty());
        assert_eq!(special("0.0.0.0"), ["Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)"]);
        assert_eq!(
            special("127.0.0.1"),
            ["Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"]
        );
        assert_eq!(special("::1"), ["Invalid value: \"::1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"]);
        assert_eq!(
            special("169.254.1.1"),
            ["Invalid value: \"169.254.1.1\": may not be in the link-local range (169.254.0.0/16, fe80::/10)"]
        );
        assert_eq!(
            special("224.0.0.5"),
            ["Invalid value: \"224.0.0.5\": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"]
        );
        assert_eq!(special("nope"), ["Invalid value: \"nope\": must be a valid IP address"]);
    }

    #[test]
    fn fqdn_and_domain_paths() {
        assert!(fully_qualified_domain_name("p", "example.com.").is_empty());
        assert_eq!(fully_qualified_domain_name("p", "")[0].message, "Required value");
        assert_eq!(
            fully_qualified_domain_name("p", "localhost")[0].message,
            "Invalid value: \"localhost\": should be a domain with at least two segments separated by dots"
        );
        assert!(domain_prefixed_path("p", "example.com/ingress-nginx").is_empty());
        assert_eq!(
            domain_prefixed_path("p", "nginx")[0].message,
            "Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"
        );
        assert_eq!(
            domain_prefixed_path("p", "a.io/x y")[0].message,
            "Invalid value: \"x y\": Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')"
        );
        assert_eq!(path_segment_name(".."), ["may not be '..'"]);
        assert_eq!(path_segment_name("a/b%"), ["may not contain '/'", "may not contain '%'"]);
    }
}
