//! Counting chunks: the first half of training. Texts arrive in buffers; each buffer is split
//! with the pattern in parallel and folded into one `chunk -> count` map.
//!
//! Memory grows with the number of *distinct* chunks, not with the corpus: a 10 GB corpus of
//! ordinary text has a few million distinct words. This module knows nothing about Python or BPE.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::pattern::Splitter;

/// How often each distinct chunk occurred in every text added so far.
#[derive(Default)]
pub struct ChunkCounts {
    counts: FxHashMap<String, i64>,
}

impl ChunkCounts {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Splits every text with `splitter` and adds its chunks. The texts are split in parallel on rayon's
    /// pool; each worker counts into its own map keyed by slices of the texts (no copies), and only
    /// chunks new to the running total are copied into it.
    pub fn add_texts<S: AsRef<str> + Sync>(&mut self, splitter: &Splitter, texts: &[S]) -> Result<(), String> {
        let batch: FxHashMap<&str, i64> = texts
            .par_iter()
            .try_fold(FxHashMap::default, |mut local, text| {
                splitter.for_each_chunk(text.as_ref(), |chunk| *local.entry(chunk).or_insert(0) += 1)?;
                Ok::<_, String>(local)
            })
            .try_reduce(FxHashMap::default, |a, b| {
                // Add the smaller map into the larger one (fewer inserts than always right into left).
                let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
                for (chunk, n) in small {
                    *big.entry(chunk).or_insert(0) += n;
                }
                Ok(big)
            })?;
        for (chunk, n) in batch {
            if let Some(total) = self.counts.get_mut(chunk) {
                *total += n;
            } else {
                self.counts.insert(chunk.to_owned(), n);
            }
        }
        Ok(())
    }

    /// The distinct chunks as bytes with their counts, sorted by bytes. Sorting removes any
    /// dependence on hash-map iteration order, so everything downstream is deterministic.
    pub fn into_sorted(self) -> Vec<(Vec<u8>, i64)> {
        let mut out: Vec<(Vec<u8>, i64)> = self.counts.into_iter().map(|(s, n)| (s.into_bytes(), n)).collect();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::GPT4_PATTERN;

    #[test]
    fn counts_chunks_across_texts_and_calls() {
        let re = Splitter::new(GPT4_PATTERN).unwrap();
        let mut counts = ChunkCounts::default();
        counts.add_texts(&re, &["a cat, a cat", ""]).unwrap();
        counts.add_texts(&re, &[String::from(" cat")]).unwrap();
        let want: Vec<(Vec<u8>, i64)> =
            vec![(b" a".to_vec(), 1), (b" cat".to_vec(), 3), (b",".to_vec(), 1), (b"a".to_vec(), 1)];
        assert_eq!(counts.into_sorted(), want);
    }

    #[test]
    fn result_does_not_depend_on_how_texts_are_batched() {
        let re = Splitter::new(GPT4_PATTERN).unwrap();
        let texts: Vec<String> = (0..500).map(|i| format!("word{} and {} more\n", i % 37, i % 11)).collect();
        let mut whole = ChunkCounts::default();
        whole.add_texts(&re, &texts).unwrap();
        let mut pieces = ChunkCounts::default();
        for batch in texts.chunks(7) {
            pieces.add_texts(&re, batch).unwrap();
        }
        assert_eq!(whole.into_sorted(), pieces.into_sorted());
    }
}
