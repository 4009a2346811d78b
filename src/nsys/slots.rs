//! Dense slots for keys that come in runs, such as the process of each API
//! call or the stream of each kernel: numbered 0, 1, … in the order keys
//! first appear, with the last key's slot reused so that only a change of
//! key costs a hash lookup. Also [`OptionalIds`], the per-row optional
//! index that such slots and row numbers are kept in.

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

/// Per row, an optional index (a call, a step, a slot) in 4 bytes, with
/// [`OptionalIds::NONE`] for none, where `Option<u32>` takes 8: the
/// SYNTHETIC 1 GB export has 5.9 M kernels, each with several of these.
#[derive(Debug, Default)]
pub struct OptionalIds(Vec<u32>);

impl OptionalIds {
    /// Stands for "none"; never a real index, as rows are counted in
    /// fewer than 2^32 − 1.
    const NONE: u32 = u32::MAX;

    pub fn with_capacity(rows: usize) -> OptionalIds {
        OptionalIds(Vec::with_capacity(rows))
    }

    pub fn push(&mut self, id: Option<u32>) {
        self.0.push(id.unwrap_or(Self::NONE));
    }

    /// The index of row `row`.
    #[inline]
    pub fn get(&self, row: usize) -> Option<u32> {
        Some(self.0[row]).filter(|&c| c != Self::NONE)
    }

    /// Each row's index, in row order.
    pub fn iter(&self) -> impl Iterator<Item = Option<u32>> + '_ {
        self.0.iter().map(|&c| Some(c).filter(|&c| c != Self::NONE))
    }
}

impl FromIterator<Option<u32>> for OptionalIds {
    fn from_iter<I: IntoIterator<Item = Option<u32>>>(ids: I) -> Self {
        OptionalIds(ids.into_iter().map(|c| c.unwrap_or(Self::NONE)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{OptionalIds, RunSlots};

    #[test]
    fn optional_ids_round_trip() {
        let want = [Some(3), None, Some(0), Some(u32::MAX - 1), None];
        let ids: OptionalIds = want.into_iter().collect();
        assert_eq!(ids.iter().collect::<Vec<_>>(), want);
        assert_eq!((ids.get(0), ids.get(1)), (Some(3), None));
        let mut pushed = OptionalIds::with_capacity(2);
        pushed.push(None);
        pushed.push(Some(7));
        assert_eq!(pushed.iter().collect::<Vec<_>>(), [None, Some(7)]);
    }

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
