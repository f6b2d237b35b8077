//! One distinct chunk as a sequence of token ids, and the merge of one pair inside it.
//!
//! The merge reports exactly which adjacent pairs disappeared and which appeared, so the trainer
//! can update its global pair counts without recounting the word. It knows nothing about counts,
//! heaps or other words.

/// Two adjacent token ids (left, right).
pub type Pair = (u32, u32);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub ids: Vec<u32>,
}

impl Word {
    /// A chunk starts as its bytes: token ids 0..=255 are the single bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Word { ids: bytes.iter().map(|&b| u32::from(b)).collect() }
    }

    /// Adjacent pairs, left to right, overlapping: [a, a, a] has (a, a) twice.
    pub fn pairs(&self) -> impl Iterator<Item = Pair> + '_ {
        self.ids.windows(2).map(|w| (w[0], w[1]))
    }

    /// Replaces the non-overlapping occurrences of `(a, b)`, scanning left to right, by `new_id`,
    /// in place. For every adjacent pair that disappears it calls `report(pair, -1)`, for every
    /// one that appears `report(pair, +1)`; pairs away from the merges are neither. Every removed
    /// pair contains `a` or `b` and every added one contains `new_id`, so they never cancel.
    ///
    /// At an occurrence at old position r, with `prev` the last id written so far:
    ///   removed: (a, b); (old[r-1], a) unless the previous merge ended at r-1 (it already removed
    ///            that pair as its right neighbour); (b, old[r+2]) if r+2 exists.
    ///   added:   (prev, new_id) if anything was written; (new_id, old[r+2]) unless old[r+2..r+4]
    ///            is itself an occurrence, whose merge will add (new_id, new_id) as its left pair.
    pub fn merge(&mut self, (a, b): Pair, new_id: u32, mut report: impl FnMut(Pair, i64)) {
        let ids = &mut self.ids;
        let n = ids.len();
        let (mut read, mut write) = (0, 0);
        // Old position of the `b` of the last merge; usize::MAX means no merge yet.
        let mut last_end = usize::MAX;
        while read < n {
            if read + 1 < n && ids[read] == a && ids[read + 1] == b {
                report((a, b), -1);
                // ids[read - 1] still holds the old value: write <= read - 1 once a merge happened,
                // and before that every write copied a value onto itself.
                if read > 0 && last_end != read - 1 {
                    report((ids[read - 1], a), -1);
                }
                if write > 0 {
                    report((ids[write - 1], new_id), 1);
                }
                if read + 2 < n {
                    let next = ids[read + 2];
                    report((b, next), -1);
                    let next_merges = read + 3 < n && next == a && ids[read + 3] == b;
                    if !next_merges {
                        report((new_id, next), 1);
                    }
                }
                ids[write] = new_id;
                last_end = read + 1;
                read += 2;
            } else {
                ids[write] = ids[read];
                read += 1;
            }
            write += 1;
        }
        ids.truncate(write);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A tiny deterministic PRNG (xorshift64*) so tests need no extra crate.
    pub struct Rng(pub u64);
    impl Rng {
        pub fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }

    /// The obvious merge: build a new vector, copying or replacing.
    fn naive_merge(ids: &[u32], pair: Pair, new_id: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            if i + 1 < ids.len() && (ids[i], ids[i + 1]) == pair {
                out.push(new_id);
                i += 2;
            } else {
                out.push(ids[i]);
                i += 1;
            }
        }
        out
    }

    fn pair_counts(word: &Word) -> BTreeMap<Pair, i64> {
        let mut counts = BTreeMap::new();
        for p in word.pairs() {
            *counts.entry(p).or_insert(0) += 1;
        }
        counts
    }

    /// Merges and checks both the result and that old counts + reported deltas == new counts.
    fn check(ids: &[u32], pair: Pair) {
        let new_id = 99;
        let mut word = Word { ids: ids.to_vec() };
        let mut counts = pair_counts(&word);
        word.merge(pair, new_id, |p, d| *counts.entry(p).or_insert(0) += d);
        counts.retain(|_, n| *n != 0);
        assert_eq!(word.ids, naive_merge(ids, pair, new_id), "ids {ids:?} pair {pair:?}");
        assert_eq!(counts, pair_counts(&word), "ids {ids:?} pair {pair:?}");
    }

    #[test]
    fn overlapping_runs_merge_left_to_right() {
        let mut w = Word { ids: vec![1, 1, 1] };
        w.merge((1, 1), 9, |_, _| {});
        assert_eq!(w.ids, [9, 1]);
        let mut w = Word { ids: vec![1, 1, 1, 1] };
        w.merge((1, 1), 9, |_, _| {});
        assert_eq!(w.ids, [9, 9]);
    }

    #[test]
    fn edge_cases() {
        check(&[], (1, 2));
        check(&[1], (1, 2));
        check(&[1, 2], (1, 2));
        check(&[1, 2, 1, 2], (1, 2));
        check(&[3, 1, 2, 1, 2, 3], (1, 2));
        check(&[1, 1, 1, 1, 1], (1, 1));
        check(&[2, 1, 1, 2, 1, 1, 1], (1, 1));
        check(&[1, 2, 2, 1], (2, 1));
    }

    #[test]
    fn deltas_match_a_recount_on_random_words() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let len = rng.below(12) as usize;
            // A 3-letter alphabet makes repeats and overlaps common.
            let ids: Vec<u32> = (0..len).map(|_| rng.below(3) as u32).collect();
            let pair = (rng.below(3) as u32, rng.below(3) as u32);
            check(&ids, pair);
        }
    }
}
