//! Learning the merges: the second half of training, on the distinct chunks and their counts.
//!
//! Rule: at each step merge the pair with the highest count, ties going to the smallest
//! (left, right); the new token gets id 256 + step. A pair's count is the sum over chunks of
//! (chunk count x adjacent occurrences in the chunk), overlaps included ("aaa" has (a, a) twice).
//!
//! Incremental, not recounting: we keep
//!   - `counts`: pair -> current count,
//!   - `wheres`: pair -> the words that contained it when it appeared (a superset of those that
//!     contain it now: a word is never taken off a list, and merging a stale one does nothing),
//!   - `heap`: one candidate per live pair, max count first, whose stored count may be stale.
//!
//! Why a stale heap is enough: merging (a, b) into z only *removes* occurrences of old pairs
//! (they contain a or b) and only *creates* pairs containing the brand-new z. So every old pair's
//! stored count is an upper bound of its true count, and new pairs are pushed with exact counts.
//! When the top candidate's count is still exact it is the true maximum (any pair ranked below it
//! has a true count no larger); when it is stale we push it back with its true count and look again.
//!
//! Deterministic by construction: choices depend only on counts and pair order, never on hash-map
//! iteration order or on how rayon split the initial count.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::word::{Pair, Word};

pub struct Trainer {
    words: Vec<Word>,
    weights: Vec<i64>, // weights[w]: how often words[w] occurred in the corpus
    counts: FxHashMap<Pair, i64>,
    wheres: FxHashMap<Pair, Vec<u32>>, // word indices, ascending, no duplicates
    // (count, Reverse(pair)): the max-heap pops the highest count, then the *smallest* pair, as the rule says
    heap: BinaryHeap<(i64, Reverse<Pair>)>,
    merges: Vec<Pair>,
}

impl Trainer {
    /// Starts from distinct chunks (as bytes) and their counts; counts the pairs in parallel.
    pub fn new(chunks: &[(Vec<u8>, i64)]) -> Result<Self, String> {
        if u32::try_from(chunks.len()).is_err() {
            return Err(format!("{} distinct chunks is more than this trainer indexes (2^32)", chunks.len()));
        }
        let words: Vec<Word> = chunks.iter().map(|(bytes, _)| Word::from_bytes(bytes)).collect();
        let weights: Vec<i64> = chunks.iter().map(|&(_, n)| n).collect();
        let (counts, wheres) = count_pairs(&words, &weights);
        let heap = counts.iter().map(|(&pair, &count)| (count, Reverse(pair))).collect();
        Ok(Trainer { words, weights, counts, wheres, heap, merges: Vec::new() })
    }

    /// Learns one merge and applies it to every word that contains it. Returns the merged pair,
    /// or None when no adjacent pair is left (every word is a single token).
    pub fn step(&mut self) -> Option<Pair> {
        let pair = self.pop_best()?;
        let new_id = 256 + self.merges.len() as u32;
        self.merges.push(pair);
        self.counts.remove(&pair);
        let word_ids = self.wheres.remove(&pair).unwrap_or_default();

        // Pairs containing new_id, with their counts and (ascending) word lists.
        let mut born: FxHashMap<Pair, (i64, Vec<u32>)> = FxHashMap::default();
        let counts = &mut self.counts;
        for &w in &word_ids {
            let weight = self.weights[w as usize];
            self.words[w as usize].merge(pair, new_id, |p, delta| {
                if delta < 0 {
                    // `pair` itself is already gone from `counts`; every other removed pair is live.
                    if let Some(n) = counts.get_mut(&p) {
                        *n -= weight;
                    }
                } else {
                    let (n, list) = born.entry(p).or_default();
                    *n += weight;
                    if list.last() != Some(&w) {
                        list.push(w);
                    }
                }
            });
        }
        for (p, (count, list)) in born {
            self.counts.insert(p, count);
            self.wheres.insert(p, list);
            self.heap.push((count, Reverse(p)));
        }
        Some(pair)
    }

    /// Pops candidates until one's stored count is exact (see the module docs for why that one is
    /// the true best). Stale ones go back with their true count; dead ones (count 0) are dropped.
    fn pop_best(&mut self) -> Option<Pair> {
        while let Some((count, Reverse(pair))) = self.heap.pop() {
            let now = self.counts.get(&pair).copied().unwrap_or(0);
            if now == count {
                return Some(pair);
            }
            if now > 0 {
                self.heap.push((now, Reverse(pair)));
            } else {
                self.counts.remove(&pair);
                self.wheres.remove(&pair);
            }
        }
        None
    }
}

/// Learns up to `num_merges` merges; fewer if the words run out of pairs first.
pub fn learn_merges(chunks: &[(Vec<u8>, i64)], num_merges: usize) -> Result<Vec<Pair>, String> {
    let mut trainer = Trainer::new(chunks)?;
    while trainer.merges.len() < num_merges && trainer.step().is_some() {}
    Ok(trainer.merges)
}

/// Counts every adjacent pair (weighted) and records which words contain it. Blocks of words are
/// counted in parallel, then combined in block order so each word list comes out ascending.
fn count_pairs(words: &[Word], weights: &[i64]) -> (FxHashMap<Pair, i64>, FxHashMap<Pair, Vec<u32>>) {
    const BLOCK: usize = 8192;
    let partial: Vec<_> = words
        .par_chunks(BLOCK)
        .enumerate()
        .map(|(b, block)| {
            let mut counts: FxHashMap<Pair, i64> = FxHashMap::default();
            let mut wheres: FxHashMap<Pair, Vec<u32>> = FxHashMap::default();
            for (j, word) in block.iter().enumerate() {
                let w = (b * BLOCK + j) as u32;
                for pair in word.pairs() {
                    *counts.entry(pair).or_insert(0) += weights[w as usize];
                    let list = wheres.entry(pair).or_default();
                    // A pair repeated inside one word is listed once: the word was pushed last.
                    if list.last() != Some(&w) {
                        list.push(w);
                    }
                }
            }
            (counts, wheres)
        })
        .collect();
    let mut counts: FxHashMap<Pair, i64> = FxHashMap::default();
    let mut wheres: FxHashMap<Pair, Vec<u32>> = FxHashMap::default();
    for (block_counts, block_wheres) in partial {
        for (pair, n) in block_counts {
            *counts.entry(pair).or_insert(0) += n;
        }
        for (pair, list) in block_wheres {
            wheres.entry(pair).or_default().extend(list);
        }
    }
    (counts, wheres)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::word::tests::Rng;

    fn chunks(items: &[(&str, i64)]) -> Vec<(Vec<u8>, i64)> {
        items.iter().map(|&(s, n)| (s.as_bytes().to_vec(), n)).collect()
    }

    fn byte(c: char) -> u32 {
        c as u32
    }

    /// The slow reference: recount every pair from scratch before each merge.
    fn naive_merges(chunks: &[(Vec<u8>, i64)], num_merges: usize) -> Vec<Pair> {
        let mut words: Vec<Word> = chunks.iter().map(|(b, _)| Word::from_bytes(b)).collect();
        let mut merges = Vec::new();
        for step in 0..num_merges {
            let counts = recount(&words, chunks);
            // max count, then smallest pair: BTreeMap iterates pairs in ascending order.
            let best = counts.iter().fold(None, |best: Option<(Pair, i64)>, (&p, &n)| match best {
                Some((_, bn)) if bn >= n => best,
                _ => Some((p, n)),
            });
            let Some((pair, _)) = best else { break };
            for w in &mut words {
                w.merge(pair, 256 + step as u32, |_, _| {});
            }
            merges.push(pair);
        }
        merges
    }

    fn recount(words: &[Word], chunks: &[(Vec<u8>, i64)]) -> std::collections::BTreeMap<Pair, i64> {
        let mut counts = std::collections::BTreeMap::new();
        for (w, (_, n)) in words.iter().zip(chunks) {
            for p in w.pairs() {
                *counts.entry(p).or_insert(0) += n;
            }
        }
        counts
    }

    fn random_chunks(rng: &mut Rng, n: usize) -> Vec<(Vec<u8>, i64)> {
        let mut out: Vec<(Vec<u8>, i64)> = (0..n)
            .map(|_| {
                let len = 1 + rng.below(10) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| b'a' + rng.below(4) as u8).collect();
                (bytes, 1 + rng.below(5) as i64)
            })
            .collect();
        // Chunks are distinct in real use (they come from a map).
        out.sort();
        out.dedup_by(|x, y| x.0 == y.0);
        out
    }

    #[test]
    fn picks_the_most_frequent_pair() {
        let merges = learn_merges(&chunks(&[("ab", 1), ("cd", 5)]), 1).unwrap();
        assert_eq!(merges, [(byte('c'), byte('d'))]);
    }

    #[test]
    fn ties_go_to_the_smallest_pair() {
        let merges = learn_merges(&chunks(&[("xa", 2), ("by", 2), ("bz", 2)]), 3).unwrap();
        assert_eq!(merges, [(byte('b'), byte('y')), (byte('b'), byte('z')), (byte('x'), byte('a'))]);
    }

    #[test]
    fn overlapping_occurrences_count() {
        // "aaa" x3 has (a, a) six times, beating (x, y) x5; without overlaps it would be 3.
        let merges = learn_merges(&chunks(&[("aaa", 3), ("xy", 5)]), 1).unwrap();
        assert_eq!(merges, [(byte('a'), byte('a'))]);
    }

    #[test]
    fn stops_when_no_pairs_are_left() {
        let merges = learn_merges(&chunks(&[("abab", 1), ("c", 9)]), 100).unwrap();
        assert_eq!(merges, [(byte('a'), byte('b')), (256, 256)]);
    }

    #[test]
    fn incremental_counts_equal_a_full_recount_after_every_merge() {
        let mut rng = Rng(12345);
        for _ in 0..20 {
            let input = random_chunks(&mut rng, 60);
            let mut trainer = Trainer::new(&input).unwrap();
            while trainer.step().is_some() {
                let want = recount(&trainer.words, &input);
                let mut got: Vec<(Pair, i64)> =
                    trainer.counts.iter().filter(|&(_, &n)| n != 0).map(|(&p, &n)| (p, n)).collect();
                got.sort();
                assert_eq!(got, want.into_iter().collect::<Vec<_>>());
                // Every word containing a live pair is listed for it.
                for (w, word) in trainer.words.iter().enumerate() {
                    for p in word.pairs() {
                        assert!(trainer.wheres[&p].contains(&(w as u32)), "word {w} missing for {p:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn same_merges_as_the_naive_trainer_on_random_input() {
        let mut rng = Rng(777);
        for _ in 0..30 {
            let input = random_chunks(&mut rng, 80);
            assert_eq!(learn_merges(&input, 200).unwrap(), naive_merges(&input, 200));
        }
    }

    #[test]
    fn deterministic_and_independent_of_chunk_order() {
        let mut rng = Rng(4242);
        let input = random_chunks(&mut rng, 500);
        let first = learn_merges(&input, 300).unwrap();
        assert_eq!(first, learn_merges(&input, 300).unwrap());
        let mut shuffled = input.clone();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i as u64 + 1) as usize);
        }
        assert_eq!(first, learn_merges(&shuffled, 300).unwrap());
    }

    #[test]
    fn parallel_pair_count_matches_sequential_on_many_words() {
        // More words than one block, so the block-combining path runs.
        let mut rng = Rng(99);
        let input: Vec<(Vec<u8>, i64)> =
            (0..20_000u32).map(|i| (i.to_le_bytes().to_vec(), 1 + rng.below(3) as i64)).collect();
        let words: Vec<Word> = input.iter().map(|(b, _)| Word::from_bytes(b)).collect();
        let weights: Vec<i64> = input.iter().map(|&(_, n)| n).collect();
        let (counts, wheres) = count_pairs(&words, &weights);
        let want = recount(&words, &input);
        assert_eq!(counts.len(), want.len());
        for (p, n) in want {
            assert_eq!(counts[&p], n);
            assert!(wheres[&p].windows(2).all(|w| w[0] < w[1]), "word list for {p:?} not ascending");
        }
    }
}
