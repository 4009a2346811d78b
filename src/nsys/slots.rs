//! Dense slots for keys that come in runs, such as the process of each API
//! call or the stream of each kernel: numbered 0, 1, … in the order keys
//! first appear, with the last key's slot reused so that only a change of
//! key costs a hash lookup; dense slots for ids ([`DenseIds`]), and groups
//! found by two slots ([`GroupTable`], [`RunIdGroups`]) rather than by
//! hashing each row's key. Also [`OptionalIds`], the per-row optional
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
        self.iter_rows(0..self.0.len())
    }

    /// The indexes of rows `rows`, in row order.
    pub fn iter_rows(
        &self,
        rows: std::ops::Range<usize>,
    ) -> impl Iterator<Item = Option<u32>> + '_ {
        self.0[rows]
            .iter()
            .map(|&c| Some(c).filter(|&c| c != Self::NONE))
    }
}

impl FromIterator<Option<u32>> for OptionalIds {
    fn from_iter<I: IntoIterator<Item = Option<u32>>>(ids: I) -> Self {
        OptionalIds(ids.into_iter().map(|c| c.unwrap_or(Self::NONE)).collect())
    }
}

/// Stands for "none yet" in the slot tables and in per-row indexes kept
/// beside them.
pub const NONE: u32 = u32::MAX;

/// Groups found by two dense slots, such as (range key, kernel name): a row
/// per first slot, grown as second slots appear, where hashing the pair for
/// every kernel cost far more.
#[derive(Default)]
pub struct GroupTable {
    rows: Vec<Vec<u32>>,
}

impl GroupTable {
    /// The group at (`row`, `column`), or `next` given to it now; and
    /// whether it was given now.
    #[inline]
    pub fn group(&mut self, row: usize, column: usize, next: u32) -> (u32, bool) {
        match self.get(row, column) {
            Some(g) => (g, false),
            None => self.give(row, column, next),
        }
    }

    /// The first row of a group, out of line so that the lookup inlines.
    #[inline(never)]
    fn give(&mut self, row: usize, column: usize, next: u32) -> (u32, bool) {
        if self.rows.len() <= row {
            self.rows.resize_with(row + 1, Vec::new);
        }
        let cells = &mut self.rows[row];
        if cells.len() <= column {
            cells.resize(column + 1, NONE);
        }
        match cells[column] {
            NONE => {
                cells[column] = next;
                (next, true)
            }
            g => (g, false),
        }
    }

    /// The group at (`row`, `column`), if it has one.
    #[inline]
    pub fn get(&self, row: usize, column: usize) -> Option<u32> {
        let g = *self.rows.get(row)?.get(column)?;
        (g != NONE).then_some(g)
    }
}

/// Dense slots for ids: a table for the small non-negative ids string
/// tables use, a map for anything else.
#[derive(Default)]
pub struct DenseIds {
    table: Vec<u32>,
    others: FxHashMap<i64, u32>,
    count: u32,
}

impl DenseIds {
    /// Ids up to this get a table entry (4 MiB at most).
    const TABLE_IDS: i64 = 1 << 20;

    #[inline]
    pub fn slot(&mut self, id: i64) -> u32 {
        let known = usize::try_from(id).ok().and_then(|i| self.table.get(i));
        match known {
            Some(&slot) if slot != NONE => slot,
            _ => self.new_or_other(id),
        }
    }

    /// An id not in the table yet, or outside it; out of line so that the
    /// table lookup inlines.
    #[inline(never)]
    fn new_or_other(&mut self, id: i64) -> u32 {
        if (0..Self::TABLE_IDS).contains(&id) {
            let i = id as usize;
            if self.table.len() <= i {
                self.table.resize(i + 1, NONE);
            }
            if self.table[i] == NONE {
                self.table[i] = self.count;
                self.count += 1;
            }
            self.table[i]
        } else {
            let next = self.count;
            let slot = *self.others.entry(id).or_insert(next);
            self.count += u32::from(slot == next);
            slot
        }
    }
}

/// Groups keyed by a key that comes in runs (a process, a thread, a phase)
/// and an id with a dense slot (a kernel or API name): the group of a row is
/// two table lookups, and a hash lookup only where the run key changes. At
/// 1 GB, hashing every row's full key cost more than the rest of a pass.
pub struct RunIdGroups<P, V> {
    places: RunSlots<P>,
    ids: DenseIds,
    table: GroupTable,
    groups: Vec<(P, i64, V)>,
}

impl<P, V> Default for RunIdGroups<P, V> {
    fn default() -> Self {
        RunIdGroups {
            places: RunSlots::default(),
            ids: DenseIds::default(),
            table: GroupTable::default(),
            groups: Vec::new(),
        }
    }
}

impl<P: Copy + Eq + Hash, V: Default> RunIdGroups<P, V> {
    /// The group of (`place`, `id`), made empty on its first row.
    #[inline]
    pub fn get(&mut self, place: P, id: i64) -> &mut V {
        let (row, _) = self.places.slot(place);
        let column = self.ids.slot(id) as usize;
        let (g, new) = self.table.group(row, column, self.groups.len() as u32);
        if new {
            self.groups.push((place, id, V::default()));
        }
        &mut self.groups[g as usize].2
    }

    /// Every group, in the order the groups first appeared.
    pub fn into_groups(self) -> Vec<(P, i64, V)> {
        self.groups
    }
}

#[cfg(test)]
mod tests {
    use super::{DenseIds, OptionalIds, RunIdGroups, RunSlots};

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

    /// Hand-made ids on both paths: table ids, NULL (-1) and one past the
    /// table share one numbering, and a repeat finds its first slot.
    #[test]
    fn dense_ids_number_table_and_map_ids_alike() {
        let mut ids = DenseIds::default();
        let slots: Vec<u32> = [5, -1, 1 << 40, 5, 0, -1, DenseIds::TABLE_IDS, 1 << 40]
            .into_iter()
            .map(|id| ids.slot(id))
            .collect();
        assert_eq!(slots, [0, 1, 2, 0, 3, 1, 4, 2]);
    }

    /// Hand-made keys: a group per (place, id) pair, whatever the order the
    /// rows come in, listed in first-appearance order.
    #[test]
    fn run_id_groups_find_each_pair_once() {
        let mut groups: RunIdGroups<char, u32> = RunIdGroups::default();
        for (place, id) in [
            ('a', 5),
            ('a', 7),
            ('b', 5),
            ('a', 5),
            ('b', 5),
            ('a', 1 << 40),
        ] {
            *groups.get(place, id) += 1;
        }
        assert_eq!(
            groups.into_groups(),
            [('a', 5, 2), ('a', 7, 1), ('b', 5, 2), ('a', 1 << 40, 1)]
        );
    }
}
