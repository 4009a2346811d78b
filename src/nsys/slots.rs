//! Dense slots for keys that come in runs, such as the process of each API
//! call or the stream of each kernel: numbered 0, 1, … in the order keys
//! first appear, with the last key's slot reused so that only a change of
//! key costs a hash lookup.

use rustc_hash::FxHashMap;
use std::hash::Hash;

#[derive(Debug)]
pub struct RunSlots<K> {
    slots: FxHashMap<K, usize>,
    last: Option<(K, usize)>,
}

impl<K> Default for RunSlots<K> {
    fn default() -> Self {
        RunSlots {
            slots: FxHashMap::default(),
            last: None,
        }
    }
}

impl<K: Copy + Eq + Hash> RunSlots<K> {
    /// The key's slot, and whether it was numbered just now.
    #[inline]
    pub fn slot(&mut self, key: K) -> (usize, bool) {
        if let Some((k, slot)) = self.last {
            if k == key {
                return (slot, false);
            }
        }
        let next = self.slots.len();
        let slot = *self.slots.entry(key).or_insert(next);
        self.last = Some((key, slot));
        (slot, slot == next)
    }

    /// A key's slot, if it has one, without numbering it.
    pub fn get(&self, key: K) -> Option<usize> {
        self.slots.get(&key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::RunSlots;

    #[test]
    fn keys_are_numbered_in_first_appearance_order() {
        let mut slots = RunSlots::default();
        let got: Vec<_> = [7, 7, 3, 7, 3, 3, 9].map(|k| slots.slot(k)).to_vec();
        assert_eq!(
            got,
            [
                (0, true),
                (0, false),
                (1, true),
                (0, false),
                (1, false),
                (1, false),
                (2, true)
            ]
        );
        assert_eq!(
            (slots.get(3), slots.get(9), slots.get(4)),
            (Some(1), Some(2), None)
        );
    }
}
