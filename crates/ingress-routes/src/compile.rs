//! Merging every source's routes into one [`RouteTable`], deterministically.
//!
//! Sources are taken in precedence order: the oldest `creationTimestamp` first, then kind,
//! namespace and name (Gateway API's rule for HTTPRoutes; ingress-nginx sorts the same way but
//! breaks timestamp ties by descending `namespace/name`). Where two claim the same thing the
//! first keeps it and the other gets a [`Problem`]:
//! - one host and path (Exact and Prefix of one path are different things; `/foo` and `/foo/`
//!   as Prefix are the same, and `/foo/` wins as the longer path, as the specification orders
//!   them);
//! - a host's default backend (a dedicated one, from a source that routes nothing else, first);
//! - a host's TLS Secret.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use crate::catalog::{Catalog, Resolved};
use crate::model::{BackendRef, DefaultRoute, HostMatch, PathMatch, RouteSet, RouteSource, SecretRef};
use crate::problem::{Problem, Reason};
use crate::table::{prefix_key, Backend, BackendId, RouteTable, VirtualHost};

/// A built table and what it could not honour.
#[derive(Clone, Debug, Default)]
pub struct CompiledRoutes {
    pub table: RouteTable,
    /// Sorted by source, deduplicated.
    pub problems: Vec<Problem>,
}

/// One claim on a path or default, with what decides between claims (lower wins).
struct Claim {
    /// Longer literal paths first (`/foo/` before `/foo`), then the source's precedence.
    rank: (Reverse<usize>, usize),
    backend: Backend,
}

#[derive(Default)]
struct HostDraft {
    exact: HashMap<String, Claim>,
    prefix: HashMap<String, Claim>,
    fallback: Option<Claim>,
}

/// Resolves each distinct backend once per build.
struct Resolver<'a> {
    catalog: &'a Catalog,
    resolved: HashMap<&'a BackendRef, Resolved>,
}

impl<'a> Resolver<'a> {
    fn backend(&mut self, id: BackendId, target: &'a BackendRef, problems: &mut BTreeSet<Problem>) -> Backend {
        let catalog = self.catalog;
        let resolved = self.resolved.entry(target).or_insert_with(|| catalog.resolve(target));
        if let Some((reason, message)) = &resolved.problem {
            problems.insert(Problem::new(&id.source, *reason, message.clone()));
        }
        Backend {
            id,
            service: target.clone(),
            service_port: resolved.port,
            protocol: resolved.protocol,
            endpoints: resolved.endpoints.clone(),
        }
    }
}

type Conflict = fn(loser: &Backend, winner: &Backend) -> Problem;

/// Keeps the better of two claims; the loser's source hears why.
fn contest(old: &mut Claim, new: Claim, problems: &mut BTreeSet<Problem>, conflict: Conflict) {
    if old.rank <= new.rank {
        problems.insert(conflict(&new.backend, &old.backend));
    } else {
        problems.insert(conflict(&old.backend, &new.backend));
        *old = new;
    }
}

fn path_conflict(loser: &Backend, winner: &Backend) -> Problem {
    let path = loser.id.path.as_ref().map_or_else(String::new, PathMatch::to_string);
    Problem::new(
        &loser.id.source,
        Reason::PathConflict,
        format!("path {path} of host {} is already served by {}", loser.id.host, winner.id.source),
    )
}

fn default_conflict(loser: &Backend, winner: &Backend) -> Problem {
    Problem::new(
        &loser.id.source,
        Reason::DefaultBackendConflict,
        format!("host {} already takes its default backend from {}", loser.id.host, winner.id.source),
    )
}

/// The key of a wildcard's tables: the name after `*.`.
fn wildcard_key(pattern: &str) -> String {
    pattern.strip_prefix("*.").unwrap_or(pattern).to_string()
}

/// Compiles every source's routes into one table, resolving backends in `catalog`.
pub fn compile(sets: &[&RouteSet], catalog: &Catalog) -> CompiledRoutes {
    let mut ordered: Vec<&RouteSet> = sets.to_vec();
    ordered.sort_by(|a, b| a.precedence().cmp(&b.precedence()));

    let mut resolver = Resolver { catalog, resolved: HashMap::new() };
    let mut hosts: HashMap<&HostMatch, HostDraft> = HashMap::new();
    let mut problems = BTreeSet::new();

    for (precedence, set) in ordered.iter().enumerate() {
        for host in &set.hosts {
            hosts.entry(host).or_default();
        }
        for route in &set.paths {
            let id = BackendId { source: set.source.clone(), host: route.host.clone(), path: Some(route.path.clone()) };
            let backend = resolver.backend(id, &route.backend, &mut problems);
            let claim = Claim { rank: (Reverse(route.path.path().len()), precedence), backend };
            let draft = hosts.entry(&route.host).or_default();
            let (map, key) = match &route.path {
                PathMatch::Exact(path) => (&mut draft.exact, path.as_str()),
                PathMatch::Prefix(path) => (&mut draft.prefix, prefix_key(path)),
            };
            match map.get_mut(key) {
                Some(old) => contest(old, claim, &mut problems, path_conflict),
                None => {
                    map.insert(key.to_string(), claim);
                }
            }
        }
    }

    // Default backends: dedicated ones first, each group in precedence order.
    let mut defaults: Vec<(bool, usize, &RouteSet, &DefaultRoute)> = ordered
        .iter()
        .enumerate()
        .flat_map(|(precedence, set)| set.defaults.iter().map(move |d| (!d.dedicated, precedence, *set, d)))
        .collect();
    defaults.sort_by_key(|(not_dedicated, precedence, _, _)| (*not_dedicated, *precedence));
    for (rank, (_, _, set, default)) in defaults.into_iter().enumerate() {
        let id = BackendId { source: set.source.clone(), host: default.host.clone(), path: None };
        let backend = resolver.backend(id, &default.backend, &mut problems);
        let claim = Claim { rank: (Reverse(0), rank), backend };
        match &mut hosts.entry(&default.host).or_default().fallback {
            // Two sources agreeing on the default is no conflict.
            Some(old) if old.backend.service == claim.backend.service => {}
            Some(old) => contest(old, claim, &mut problems, default_conflict),
            slot @ None => *slot = Some(claim),
        }
    }

    let mut table = RouteTable::default();
    for (host, draft) in hosts {
        let vhost = VirtualHost {
            exact: draft.exact.into_iter().map(|(path, claim)| (path, claim.backend)).collect(),
            prefix: draft.prefix.into_iter().map(|(path, claim)| (path, claim.backend)).collect(),
            fallback: draft.fallback.map(|claim| claim.backend),
        };
        match host {
            HostMatch::Any => table.any_host = vhost,
            HostMatch::Exact(name) => {
                table.exact_hosts.insert(name.clone(), vhost);
            }
            HostMatch::Wildcard(pattern) => {
                table.wildcard_hosts.insert(wildcard_key(pattern), vhost);
            }
        }
    }

    // TLS: the first usable Secret named for a host serves it.
    let mut tls: HashMap<&HostMatch, (&SecretRef, &RouteSource)> = HashMap::new();
    for set in &ordered {
        for binding in &set.tls {
            if let Some((reason, message)) = catalog.secret_problem(&binding.secret) {
                problems.insert(Problem::new(&set.source, reason, message));
                continue;
            }
            match tls.get(&binding.host) {
                Some((secret, _)) if **secret == binding.secret => {}
                Some((secret, owner)) => {
                    let message =
                        format!("TLS for host {} is already served by Secret {secret} of {owner}", binding.host);
                    problems.insert(Problem::new(&set.source, Reason::CertificateConflict, message));
                }
                None => {
                    tls.insert(&binding.host, (&binding.secret, &set.source));
                }
            }
        }
    }
    for (host, (secret, _)) in tls {
        match host {
            HostMatch::Any => {}
            HostMatch::Exact(name) => {
                table.tls_exact.insert(name.clone(), secret.clone());
            }
            HostMatch::Wildcard(pattern) => {
                table.tls_wildcard.insert(wildcard_key(pattern), secret.clone());
            }
        }
    }

    CompiledRoutes { table, problems: problems.into_iter().collect() }
}
