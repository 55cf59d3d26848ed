//! What is programmed in the kernel, kept in memory, and the difference a sync sends.
//!
//! A sync never lists the table: [`Programmed`] remembers every element, chain and set it has
//! put there, and [`Programmed::plan`] turns the changed Services' new fragments into one batch
//! that adds, changes and removes only what differs. Elements several Services claim (a pod
//! behind two Services in the hairpin set, a cluster IP with two ports) stay until the last claim
//! goes. A failed batch leaves this state unreliable: the caller then does a full sync, which
//! starts from [`Programmed::full`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use std::net::Ipv4Addr;

use frontdoor_netfilter::{Batch, Element, ElementData, Family, SetSpec, Value};
use frontdoor_proxy_model::ServiceKey;

use crate::render::{fixed_chains, set_specs, shared_chain, ChainSpec, Fragment, RenderConfig};

/// Chains a sync stopped using are flushed at once and deleted this much later: kernels before
/// 6.2 may still count a reference from a map element removed in the same transaction (as
/// kube-proxy does).
const STALE_CHAIN_DELAY: Duration = Duration::from_secs(1);

/// An element of a shared set, held without allocation: the set (its index in
/// [`set_specs`]) and the key's fields.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ElementId {
    set: u8,
    len: u8,
    key: [Value; MAX_KEY_FIELDS],
}

const MAX_KEY_FIELDS: usize = 4;

impl ElementId {
    fn new(set: u8, values: &[Value]) -> ElementId {
        let mut key = [Value::U32(0); MAX_KEY_FIELDS];
        let len = values.len().min(MAX_KEY_FIELDS);
        key[..len].copy_from_slice(&values[..len]);
        ElementId { set, len: len as u8, key }
    }

    fn values(&self) -> Vec<Value> {
        self.key[..usize::from(self.len)].to_vec()
    }
}

/// An element's data, held compactly for the common shapes.
#[derive(Clone, PartialEq, Eq)]
enum Data {
    /// A member of a plain set.
    Member,
    /// `ip . port`, a DNAT target.
    Target(Ipv4Addr, u16),
    Other(ElementData),
}

impl Data {
    fn of(data: &Option<ElementData>) -> Data {
        match data {
            None => Data::Member,
            Some(ElementData::Values(values)) => match values.as_slice() {
                [Value::Ipv4(ip), Value::Port(port)] => Data::Target(*ip, *port),
                _ => Data::Other(ElementData::Values(values.clone())),
            },
            Some(other) => Data::Other(other.clone()),
        }
    }

    fn element_data(&self) -> Option<ElementData> {
        match self {
            Data::Member => None,
            Data::Target(ip, port) => Some(ElementData::Values(vec![Value::Ipv4(*ip), Value::Port(*port)])),
            Data::Other(data) => Some(data.clone()),
        }
    }
}

/// The Services that claim an element, each with the data it wants (the first one's is
/// programmed). Almost every element has one.
enum Claims {
    One(u32, Data),
    Many(Vec<(u32, Data)>),
}

impl Claims {
    fn first(&self) -> Option<&Data> {
        match self {
            Claims::One(_, data) => Some(data),
            Claims::Many(claims) => claims.first().map(|(_, data)| data),
        }
    }

    fn add(&mut self, owner: u32, data: Data) {
        match self {
            Claims::One(first, _) if *first == owner => {}
            Claims::One(..) => {
                let Claims::One(first, first_data) = std::mem::replace(self, Claims::Many(Vec::new())) else {
                    return;
                };
                *self = Claims::Many(vec![(first, first_data), (owner, data)]);
            }
            Claims::Many(claims) => {
                if !claims.iter().any(|(o, _)| *o == owner) {
                    claims.push((owner, data));
                }
            }
        }
    }

    /// Removes `owner`'s claim; true when none is left.
    fn remove(&mut self, owner: u32) -> bool {
        match self {
            Claims::One(first, _) => *first == owner,
            Claims::Many(claims) => {
                claims.retain(|(o, _)| *o != owner);
                claims.is_empty()
            }
        }
    }
}

/// What the kernel holds for one Service: its own sets and chains, and which shared elements
/// it claims.
#[derive(Default)]
struct Owned {
    sets: Vec<SetSpec>,
    chains: Vec<ChainSpec>,
    elements: Vec<ElementId>,
}

/// The programmed ruleset.
pub struct Programmed {
    table: String,
    specs: Vec<SetSpec>,
    owners: HashMap<ServiceKey, u32>,
    next_owner: u32,
    services: HashMap<ServiceKey, Owned>,
    elements: HashMap<ElementId, Claims>,
    shared_chains: BTreeSet<String>,
    stale_chains: Vec<(String, Instant)>,
}

/// One sync's batch, and how much it changes.
pub struct Plan {
    pub batch: Batch,
    pub elements_added: usize,
    pub elements_removed: usize,
}

/// Adds `chains` to `table` in `batch`: every chain first (a base chain with its hook), then
/// their rules, since a rule may jump to a chain later in the list.
pub fn add_chains(batch: &mut Batch, table: &str, chains: &[ChainSpec]) {
    for chain in chains {
        batch.add_chain(table, &chain.name, chain.base.as_ref());
    }
    for chain in chains {
        for rule in &chain.rules {
            batch.add_rule(table, &chain.name, rule);
        }
    }
}

impl Programmed {
    fn empty(table: &str) -> Programmed {
        Programmed {
            table: table.to_string(),
            specs: set_specs(),
            owners: HashMap::new(),
            next_owner: 0,
            services: HashMap::new(),
            elements: HashMap::new(),
            shared_chains: BTreeSet::new(),
            stale_chains: Vec::new(),
        }
    }

    fn set_index(&self, name: &str) -> u8 {
        let index = self.specs.iter().position(|spec| spec.name == name).expect("fragments name only shared sets");
        index as u8
    }

    fn owner(&mut self, key: &ServiceKey) -> u32 {
        if let Some(id) = self.owners.get(key) {
            return *id;
        }
        self.next_owner += 1;
        self.owners.insert(key.clone(), self.next_owner);
        self.next_owner
    }

    /// A full sync: the table deleted and written again, with every Service. Returns the state
    /// it leaves once applied, and its plan.
    pub fn full(
        table: &str,
        config: &RenderConfig,
        services: impl IntoIterator<Item = (ServiceKey, Fragment)>,
    ) -> (Programmed, Plan) {
        let mut state = Programmed::empty(table);
        let mut batch = Batch::new(Family::Ipv4);
        // Adding first makes the delete succeed whether or not the table exists.
        batch.add_table(table);
        batch.delete_table(table);
        batch.add_table(table);
        let mut specs: Vec<&SetSpec> = state.specs.iter().collect();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        for spec in specs {
            batch.add_set(table, spec);
        }
        add_chains(&mut batch, table, &fixed_chains(config));
        // One Service at a time: each fragment is rendered, taken in and dropped before the next.
        let changes = services.into_iter().map(|(key, fragment)| (key, Some(fragment)));
        let plan = state.plan_into(batch, changes, Instant::now());
        (state, plan)
    }

    /// A partial sync: the batch that takes each changed Service from what is programmed to its
    /// new fragment (`None`: the Service is gone). The state is updated as if the batch applied.
    pub fn plan(&mut self, changes: Vec<(ServiceKey, Option<Fragment>)>, now: Instant) -> Plan {
        let batch = Batch::new(Family::Ipv4);
        self.plan_into(batch, changes, now)
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    pub fn element_count(&self) -> usize {
        self.elements.len()
    }

    fn plan_into(
        &mut self,
        mut batch: Batch,
        changes: impl IntoIterator<Item = (ServiceKey, Option<Fragment>)>,
        now: Instant,
    ) -> Plan {
        let table = self.table.clone();
        // What each touched element was before any change of this sync.
        // (Outer `None`: absent; inner `None`: a member of a plain set, which has no data.)
        let mut before: HashMap<ElementId, Option<Data>> = HashMap::new();
        let mut new_sets: Vec<SetSpec> = Vec::new();
        let mut gone_sets: Vec<String> = Vec::new();
        let mut new_chains: Vec<ChainSpec> = Vec::new();
        let mut rewritten_chains: Vec<ChainSpec> = Vec::new();
        let mut gone_chains: Vec<String> = Vec::new();
        let mut new_shared: BTreeSet<String> = BTreeSet::new();

        for (key, fragment) in changes {
            let owner = self.owner(&key);
            let old = self.services.remove(&key).unwrap_or_default();
            let new = fragment.unwrap_or_default();
            for id in &old.elements {
                self.record_before(&mut before, id);
                if self.elements.get_mut(id).is_some_and(|claims| claims.remove(owner)) {
                    self.elements.remove(id);
                }
            }
            let mut new_elements = Vec::with_capacity(new.elements.len());
            for (set, element) in &new.elements {
                let id = ElementId::new(self.set_index(set), &element.key);
                self.record_before(&mut before, &id);
                let data = Data::of(&element.data);
                match self.elements.get_mut(&id) {
                    Some(claims) => claims.add(owner, data),
                    None => {
                        self.elements.insert(id, Claims::One(owner, data));
                    }
                }
                new_elements.push(id);
            }
            // Sets and chains of its own, by name.
            let old_sets: BTreeMap<&str, &SetSpec> = old.sets.iter().map(|s| (s.name.as_str(), s)).collect();
            let new_set_names: BTreeMap<&str, &SetSpec> = new.sets.iter().map(|s| (s.name.as_str(), s)).collect();
            for (name, spec) in &new_set_names {
                match old_sets.get(name) {
                    Some(old_spec) if old_spec == spec => {}
                    Some(_) => {
                        // Changed type or timeout: replaced (its chains are rewritten below).
                        gone_sets.push(name.to_string());
                        new_sets.push((*spec).clone());
                    }
                    None => new_sets.push((*spec).clone()),
                }
            }
            gone_sets.extend(old_sets.keys().filter(|name| !new_set_names.contains_key(*name)).map(|n| n.to_string()));
            let old_chains: BTreeMap<&str, &ChainSpec> = old.chains.iter().map(|c| (c.name.as_str(), c)).collect();
            let new_chain_names: BTreeSet<&str> = new.chains.iter().map(|c| c.name.as_str()).collect();
            for chain in &new.chains {
                match old_chains.get(chain.name.as_str()) {
                    Some(old_chain) if *old_chain == chain => {
                        // Unchanged, unless a set it uses was replaced.
                        if gone_sets.iter().any(|set| chain_uses_set(chain, set)) {
                            rewritten_chains.push(chain.clone());
                        }
                    }
                    Some(_) => rewritten_chains.push(chain.clone()),
                    None => new_chains.push(chain.clone()),
                }
            }
            gone_chains
                .extend(old_chains.keys().filter(|name| !new_chain_names.contains(*name)).map(|n| n.to_string()));
            for shared in &new.shared_chains {
                if !self.shared_chains.contains(shared) {
                    new_shared.insert(shared.clone());
                }
            }
            if new_elements.is_empty() && new.chains.is_empty() && new.sets.is_empty() {
                self.owners.remove(&key);
            } else {
                self.services.insert(key, Owned { sets: new.sets, chains: new.chains, elements: new_elements });
            }
        }

        // 1. Sets and chains that elements and rules will refer to.
        for name in &gone_sets {
            if new_sets.iter().any(|s| &s.name == name) {
                // Replaced: the chains using it are flushed first, then it goes, then it comes back.
                for chain in rewritten_chains.iter().filter(|c| chain_uses_set(c, name)) {
                    batch.flush_chain(&table, &chain.name);
                }
                batch.delete_set(&table, name);
            }
        }
        for spec in &new_sets {
            batch.add_set(&table, spec);
        }
        // The shared chains first: the services' chains jump to them.
        let shared: Vec<ChainSpec> = new_shared.iter().filter_map(|name| shared_chain(name)).collect();
        self.shared_chains.extend(new_shared);
        add_chains(&mut batch, &table, &shared);
        add_chains(&mut batch, &table, &new_chains);
        for chain in &rewritten_chains {
            batch.flush_chain(&table, &chain.name);
            for rule in &chain.rules {
                batch.add_rule(&table, &chain.name, rule);
            }
        }

        // 2. Elements: removed and changed ones out, new and changed ones in.
        let mut removals: BTreeMap<u8, Vec<Element>> = BTreeMap::new();
        let mut additions: BTreeMap<u8, Vec<Element>> = BTreeMap::new();
        for (id, was) in before {
            let now_data = self.programmed_data(&id);
            let element = |data: &Data| Element { key: id.values(), data: data.element_data() };
            match (&was, &now_data) {
                (None, None) => {}
                (Some(old), None) => removals.entry(id.set).or_default().push(element(old)),
                (None, Some(new)) => additions.entry(id.set).or_default().push(element(new)),
                (Some(old), Some(new)) if old == new => {}
                (Some(old), Some(new)) => {
                    removals.entry(id.set).or_default().push(element(old));
                    additions.entry(id.set).or_default().push(element(new));
                }
            }
        }
        let (mut elements_added, mut elements_removed) = (0, 0);
        for (set, elements) in &removals {
            elements_removed += elements.len();
            batch.delete_elements(&table, &self.specs[usize::from(*set)], elements);
        }
        for (set, elements) in &additions {
            elements_added += elements.len();
            batch.add_elements(&table, &self.specs[usize::from(*set)], elements);
        }

        // 3. What is no longer used: chains flushed now and deleted later, then their sets.
        for chain in &gone_chains {
            batch.flush_chain(&table, chain);
            self.stale_chains.push((chain.clone(), now));
        }
        for name in &gone_sets {
            if !new_sets.iter().any(|s| &s.name == name) {
                batch.delete_set(&table, name);
            }
        }
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.stale_chains)
            .into_iter()
            .partition(|(_, since)| now.duration_since(*since) >= STALE_CHAIN_DELAY);
        self.stale_chains = waiting;
        for (chain, _) in due {
            // A chain that came back meanwhile is in use again.
            if !self.services.values().any(|owned| owned.chains.iter().any(|c| c.name == chain)) {
                batch.delete_chain(&table, &chain);
            }
        }
        Plan { batch, elements_added, elements_removed }
    }

    fn record_before(&self, before: &mut HashMap<ElementId, Option<Data>>, id: &ElementId) {
        if !before.contains_key(id) {
            before.insert(*id, self.programmed_data(id));
        }
    }

    /// The data programmed for an element (`None`: absent).
    fn programmed_data(&self, id: &ElementId) -> Option<Data> {
        self.elements.get(id).and_then(Claims::first).cloned()
    }

    /// Whether stale chains are waiting to be deleted (the runner then syncs again later).
    pub fn has_pending_cleanup(&self) -> bool {
        !self.stale_chains.is_empty()
    }
}

fn chain_uses_set(chain: &ChainSpec, set: &str) -> bool {
    use frontdoor_netfilter::Expr;
    chain.rules.iter().flatten().any(|expr| match expr {
        Expr::Lookup { set: name, .. } | Expr::Dynset { set: name, .. } => name == set,
        _ => false,
    })
}
