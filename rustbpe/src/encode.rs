//! Encoding text with learned merges, giving exactly tiktoken's ids for the same ranks and pattern.
//!
//! tiktoken's rule, per chunk: if the whole chunk is a token, that token; otherwise start from the
//! bytes and repeatedly join the adjacent pair of parts whose *concatenated bytes* form the token of
//! lowest rank (leftmost on a tie) until no adjacent pair forms a token. We run the same rule on ids:
//! `joins` maps every (left, right) whose bytes concatenate to a token, not just the pair that
//! created it in training, to that token's id (id == rank here).
//!
//! This module does not train and knows nothing about Python; special tokens are not its business.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::pattern::Splitter;
use crate::word::Pair;

/// Chunks longer than this (in bytes) are joined with a heap instead of by rescanning.
const LONG_CHUNK: usize = 128;

pub struct Encoder {
    splitter: Splitter,
    token_bytes: Vec<Vec<u8>>,          // id -> bytes
    token_ids: FxHashMap<Vec<u8>, u32>, // bytes -> id
    joins: FxHashMap<Pair, u32>,        // (left, right) -> id of the token their bytes spell
}

impl Encoder {
    /// Builds the vocabulary from merges: ids 0..=255 are bytes, id 256 + i is `merges[i]` joined.
    /// Each merge must refer to earlier ids only (the trainer guarantees it).
    pub fn new(splitter: Splitter, merges: &[Pair]) -> Self {
        let token_bytes = token_bytes(merges);
        let token_ids: FxHashMap<Vec<u8>, u32> =
            token_bytes.iter().enumerate().map(|(id, b)| (b.clone(), id as u32)).collect();
        let mut joins = FxHashMap::default();
        for (id, bytes) in token_bytes.iter().enumerate().skip(256) {
            for cut in 1..bytes.len() {
                if let (Some(&left), Some(&right)) = (token_ids.get(&bytes[..cut]), token_ids.get(&bytes[cut..])) {
                    joins.insert((left, right), id as u32);
                }
            }
        }
        Encoder { splitter, token_bytes, token_ids, joins }
    }

    pub fn token_bytes(&self) -> &[Vec<u8>] {
        &self.token_bytes
    }

    /// Splits `text` with the pattern and encodes every chunk.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let mut ids = Vec::with_capacity(text.len() / 3);
        self.splitter.for_each_chunk(text, |chunk| self.encode_chunk(chunk.as_bytes(), &mut ids))?;
        Ok(ids)
    }

    /// Appends the ids of one chunk to `out` (see the module docs for the rule).
    fn encode_chunk(&self, chunk: &[u8], out: &mut Vec<u32>) {
        if let Some(&id) = self.token_ids.get(chunk) {
            out.push(id);
        } else if chunk.len() <= LONG_CHUNK {
            self.join_by_scanning(chunk, out);
        } else {
            self.join_with_heap(chunk, out);
        }
    }

    /// The rank of joining `left` and `right`: the id of the token their bytes spell, if any.
    fn rank(&self, left: u32, right: u32) -> Option<u32> {
        self.joins.get(&(left, right)).copied()
    }

    /// The rule as stated: rescan all adjacent pairs for the lowest rank before every join.
    /// Quadratic in the chunk length, and the fastest way for short chunks.
    fn join_by_scanning(&self, chunk: &[u8], out: &mut Vec<u32>) {
        let mut parts: Vec<u32> = chunk.iter().map(|&b| u32::from(b)).collect();
        // ranks[i] belongs to (parts[i], parts[i + 1]); u32::MAX: they do not join.
        let rank = |l, r| self.rank(l, r).unwrap_or(u32::MAX);
        let mut ranks: Vec<u32> = parts.windows(2).map(|w| rank(w[0], w[1])).collect();
        loop {
            let mut best = (u32::MAX, 0);
            for (i, &r) in ranks.iter().enumerate() {
                if r < best.0 {
                    best = (r, i); // strict `<` keeps the leftmost of equal ranks
                }
            }
            let (id, i) = best;
            if id == u32::MAX {
                break;
            }
            parts[i] = id;
            parts.remove(i + 1);
            ranks.remove(i);
            if i > 0 {
                ranks[i - 1] = rank(parts[i - 1], id);
            }
            if i < ranks.len() {
                ranks[i] = rank(id, parts[i + 1]);
            }
        }
        out.extend_from_slice(&parts);
    }

    /// The same joins in O(n log n), for long chunks (a 100 KB run of letters took seconds by
    /// scanning). Candidate joins sit in a min-heap ordered by (rank, start offset), so the top is
    /// the lowest rank, leftmost. Entries are not removed when their parts change; instead a popped
    /// entry is used only if the pair now at its offset still has its rank. Every pair that exists
    /// was pushed when it formed, so nothing valid is missed.
    fn join_with_heap(&self, chunk: &[u8], out: &mut Vec<u32>) {
        let n = chunk.len();
        // A part is named by its start offset s. For a live part: id[s], end[s] (the next part's
        // start, n for the last part) and prev[s] (the previous part's start, None for the first).
        // end[s] == 0 marks an offset whose part was joined into the one before it.
        let mut id: Vec<u32> = chunk.iter().map(|&b| u32::from(b)).collect();
        let mut end: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<Option<usize>> = (0..n).map(|s| s.checked_sub(1)).collect();
        let mut heap: BinaryHeap<Reverse<(u32, usize)>> =
            (0..n.saturating_sub(1)).filter_map(|s| self.rank(id[s], id[s + 1]).map(|r| Reverse((r, s)))).collect();
        while let Some(Reverse((r, s))) = heap.pop() {
            let next = end[s];
            if next == 0 || next == n || self.rank(id[s], id[next]) != Some(r) {
                continue; // stale: the part at s is gone, has no right neighbour, or changed
            }
            id[s] = r;
            end[s] = end[next];
            end[next] = 0;
            if end[s] < n {
                prev[end[s]] = Some(s);
                if let Some(r) = self.rank(r, id[end[s]]) {
                    heap.push(Reverse((r, s)));
                }
            }
            if let Some(p) = prev[s]
                && let Some(r) = self.rank(id[p], r)
            {
                heap.push(Reverse((r, p)));
            }
        }
        let mut s = 0;
        while s < n {
            out.push(id[s]);
            s = end[s];
        }
    }
}

/// Bytes of every token: the 256 single bytes, then each merge's two halves joined.
pub fn token_bytes(merges: &[Pair]) -> Vec<Vec<u8>> {
    let mut bytes: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    for &(a, b) in merges {
        bytes.push([bytes[a as usize].as_slice(), bytes[b as usize].as_slice()].concat());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::ChunkCounts;
    use crate::pattern::GPT4_PATTERN;
    use crate::train::learn_merges;
    use crate::word::tests::Rng;

    fn trained(texts: &[&str], num_merges: usize) -> Encoder {
        let re = Splitter::new(GPT4_PATTERN).unwrap();
        let mut counts = ChunkCounts::default();
        counts.add_texts(&re, texts).unwrap();
        let merges = learn_merges(&counts.into_sorted(), num_merges).unwrap();
        Encoder::new(re, &merges)
    }

    fn decode(enc: &Encoder, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| enc.token_bytes()[id as usize].clone()).collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn without_merges_encoding_is_the_bytes() {
        let enc = Encoder::new(Splitter::new(GPT4_PATTERN).unwrap(), &[]);
        let ids = enc.encode("hé!").unwrap();
        assert_eq!(ids, [104, 0xC3, 0xA9, 33]);
    }

    #[test]
    fn merges_apply_in_rank_order() {
        // merges: (a, b) -> 256, (b, c) -> 257. In "abc" the pair (a, b) has the lower rank.
        let enc = Encoder::new(Splitter::new(r"\w+").unwrap(), &[(97, 98), (98, 99)]);
        assert_eq!(enc.encode("abc bcd").unwrap(), [256, 99, 257, 100]);
    }

    #[test]
    fn joins_cover_every_split_of_a_token() {
        // 256 = "ab", 257 = "bc", 258 = "ab" + "c" = "abc". The parts "a" + "bc" also spell "abc",
        // so tiktoken joins them into 258, and so must we.
        let enc = Encoder::new(Splitter::new(r"\w+").unwrap(), &[(97, 98), (98, 99), (256, 99)]);
        assert_eq!(enc.joins.get(&(97, 257)), Some(&258));
        assert_eq!(enc.encode("abc").unwrap(), [258]);
    }

    #[test]
    fn heap_and_scanning_joins_agree() {
        // Few letters, many merges: long chunks go through many joins, with many ties.
        let mut rng = Rng(31337);
        let texts: Vec<String> =
            (0..200).map(|_| (0..rng.below(300)).map(|_| ['a', 'b', 'c'][rng.below(3) as usize]).collect()).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let enc = trained(&refs, 300);
        for text in &texts {
            let (mut scanned, mut heaped) = (Vec::new(), Vec::new());
            enc.join_by_scanning(text.as_bytes(), &mut scanned);
            if !text.is_empty() {
                enc.join_with_heap(text.as_bytes(), &mut heaped);
            }
            assert_eq!(scanned, heaped, "{text}");
        }
    }

    #[test]
    fn round_trips_and_compresses() {
        let text = "the cat sat on the mat; the cat ate the rat. 12345 🙂🙂 naïve café\n\n";
        let enc = trained(&[text, text, "other words entirely"], 60);
        let ids = enc.encode(text).unwrap();
        assert_eq!(decode(&enc, &ids), text);
        assert!(ids.len() < text.len() / 2, "{} ids for {} bytes", ids.len(), text.len());
        // Unseen text still round-trips (byte fallback).
        let unseen = "Ωμέγα 漢字 \u{1F9D1}\u{200D}\u{1F4BB} zzz";
        assert_eq!(decode(&enc, &enc.encode(unseen).unwrap()), unseen);
    }
}
