//! A fixed-size set of small integers, one bit each: API calls that
//! launched work, calls already counted, correlation ids in use. On a 1 GB
//! export there are 12 M calls, so a bit beats a `bool` eightfold.

/// Members `0..len`, one bit each.
#[derive(Debug, Clone, Default)]
pub struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    /// An empty set with room for `0..len`.
    pub fn new(len: usize) -> BitSet {
        BitSet {
            words: vec![0; len.div_ceil(64)],
        }
    }

    /// Room for `0..capacity()`.
    /// A set over `64 * words.len()` bits, from its words.
    pub fn from_words(words: Vec<u64>) -> BitSet {
        BitSet { words }
    }

    pub fn capacity(&self) -> usize {
        self.words.len() * 64
    }

    /// Adds `i` (below `capacity()`); true when it was not there yet.
    pub fn insert(&mut self, i: usize) -> bool {
        let (word, bit) = (&mut self.words[i / 64], 1u64 << (i % 64));
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }

    /// Whether `i` is in the set; false past the capacity.
    pub fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    /// Adds every member of `other`, of the same capacity, and returns
    /// those that were members already, in increasing order.
    pub fn union_keeping_common(&mut self, other: &BitSet) -> Vec<usize> {
        let mut common = Vec::new();
        for (w, (mine, &theirs)) in self.words.iter_mut().zip(&other.words).enumerate() {
            let mut both = *mine & theirs;
            while both != 0 {
                common.push(w * 64 + both.trailing_zeros() as usize);
                both &= both - 1;
            }
            *mine |= theirs;
        }
        common
    }

    /// Members in increasing order.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &bits)| {
            let mut bits = bits;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let i = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    i
                })
            })
        })
    }

    /// For each 64-bit word, how many members lie before it.
    pub fn word_ranks(&self) -> (Vec<u32>, u32) {
        let mut total = 0u32;
        let ranks = self
            .words
            .iter()
            .map(|w| {
                let before = total;
                total += w.count_ones();
                before
            })
            .collect();
        (ranks, total)
    }

    /// How many members are below `i`, given `word_ranks()`.
    pub fn rank(&self, i: usize, word_ranks: &[u32]) -> usize {
        let below = self.words[i / 64] & ((1u64 << (i % 64)) - 1);
        word_ranks[i / 64] as usize + below.count_ones() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::BitSet;

    #[test]
    fn insert_contains_ones_and_rank_agree() {
        let members = [0, 5, 63, 64, 130, 199];
        let mut set = BitSet::new(200);
        assert_eq!(set.capacity(), 256);
        for &i in &members {
            assert!(set.insert(i), "{i}");
        }
        assert!(!set.insert(63), "a second insert is not fresh");
        assert_eq!(set.ones().collect::<Vec<_>>(), members);
        assert!(set.contains(130) && !set.contains(131) && !set.contains(10_000));
        let (ranks, total) = set.word_ranks();
        assert_eq!(total, members.len() as u32);
        for (n, &i) in members.iter().enumerate() {
            assert_eq!(set.rank(i, &ranks), n, "{i}");
        }
    }
}
