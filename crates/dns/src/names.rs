//! The index's table of names: every owner name in lower-cased wire form, packed end to end into
//! one byte string, with a hash table of their positions beside it.
//!
//! A `HashMap<Box<[u8]>, Node>` held a heap allocation and a 16-byte pointer per name, and its
//! buckets the whole value: at 78,000 names that was two thirds of the index. Here a name costs
//! its bytes, four for where it starts, and four in the table.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

#[derive(Debug)]
pub(crate) struct NameTable<T> {
    /// The names, one after another, in insertion order.
    bytes: Vec<u8>,
    /// Where each name starts in `bytes` (it ends where the next starts), and its value.
    entries: Vec<(u32, T)>,
    /// Indexes into `entries`, by the hash of their name.
    table: HashTable<u32>,
    /// Keyed per table, as std's maps are: names come from API objects.
    hasher: RandomState,
}

impl<T> NameTable<T> {
    /// A table for `names` names of `bytes` bytes in all.
    pub(crate) fn with_capacity(names: usize, bytes: usize) -> Self {
        NameTable {
            bytes: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(names),
            table: HashTable::with_capacity(names),
            hasher: RandomState::new(),
        }
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        self.find_hashed(self.hasher.hash_one(name), name)
    }

    fn find_hashed(&self, hash: u64, name: &[u8]) -> Option<usize> {
        self.table.find(hash, |&i| name_at(&self.bytes, &self.entries, i) == name).map(|&i| i as usize)
    }

    /// Adds `name` with `value`, or replaces the value of a name already there. The name is
    /// hashed once, for the look-up and the insertion both.
    pub(crate) fn insert(&mut self, name: &[u8], value: T) {
        let hash = self.hasher.hash_one(name);
        if let Some(i) = self.find_hashed(hash, name) {
            self.entries[i].1 = value;
            return;
        }
        let i = u32::try_from(self.entries.len()).expect("fewer than 2³² names");
        let start = u32::try_from(self.bytes.len()).expect("names shorter than 4 GiB in all");
        self.bytes.extend_from_slice(name);
        self.entries.push((start, value));
        let NameTable { bytes, entries, table, hasher } = self;
        table.insert_unique(hash, i, |&i| hasher.hash_one(name_at(bytes, entries, i)));
    }

    pub(crate) fn get(&self, name: &[u8]) -> Option<&T> {
        self.find(name).map(|i| &self.entries[i].1)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Gives back what growing left unused.
    pub(crate) fn shrink_to_fit(&mut self) {
        let NameTable { bytes, entries, table, hasher } = self;
        bytes.shrink_to_fit();
        entries.shrink_to_fit();
        table.shrink_to_fit(|&i| hasher.hash_one(name_at(bytes, entries, i)));
    }
}

/// Name `i`: from where it starts to where the next one does.
fn name_at<'a, T>(bytes: &'a [u8], entries: &[(u32, T)], i: u32) -> &'a [u8] {
    let i = i as usize;
    let end = entries.get(i + 1).map_or(bytes.len(), |next| next.0 as usize);
    &bytes[entries[i].0 as usize..end]
}

#[cfg(test)]
mod tests {
    use super::NameTable;

    #[test]
    fn names_are_found_by_their_exact_bytes() {
        let names: [&[u8]; 4] = [b"\x03api\x07default\x00", b"\x03api\x00", b"\x00", b"\x02db\x07default\x00"];
        let mut table = NameTable::with_capacity(1, 1);
        for (i, name) in names.iter().enumerate() {
            table.insert(name, i);
        }
        table.shrink_to_fit();
        assert_eq!(table.len(), 4);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(table.get(name), Some(&i), "{name:?}");
        }
        // A prefix, a suffix and a longer name than any stored are all absent.
        for absent in [&b"\x03api"[..], b"\x07default\x00", b"\x03api\x07default\x00\x00", b""] {
            assert_eq!(table.get(absent), None, "{absent:?}");
        }
    }

    #[test]
    fn inserting_a_name_again_replaces_its_value() {
        let mut table = NameTable::with_capacity(0, 0);
        table.insert(b"\x01a\x00", 1);
        table.insert(b"\x01b\x00", 2);
        table.insert(b"\x01a\x00", 3);
        assert_eq!((table.len(), table.get(b"\x01a\x00"), table.get(b"\x01b\x00")), (2, Some(&3), Some(&2)));
    }

    #[test]
    fn a_table_of_many_names_finds_every_one() {
        let names: Vec<Vec<u8>> = (0..5000).map(|i| format!("\x05n{i:04}\x00").into_bytes()).collect();
        let mut table = NameTable::with_capacity(10, 10);
        for (i, name) in names.iter().enumerate() {
            table.insert(name, i);
        }
        assert!(names.iter().enumerate().all(|(i, name)| table.get(name) == Some(&i)));
        assert_eq!(table.get(b"\x05n5000\x00"), None);
    }
}
