//! The Python boundary: the `Tokenizer` class. It checks and converts arguments, releases the GIL
//! around the heavy work, and turns every error into a Python exception (never a panic).

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyString};
use rayon::prelude::*;

use crate::chunks::ChunkCounts;
use crate::encode::{Encoder, token_bytes};
use crate::pattern::{GPT4_PATTERN, Splitter};
use crate::train::learn_merges;

/// 2**24 tokens: far beyond any useful vocabulary, and small enough that ids fit in a u32 with room.
const MAX_VOCAB_SIZE: i64 = 1 << 24;

/// A byte-level BPE tokenizer: train it on an iterator of str, then encode or export its ranks.
#[pyclass(module = "rustbpe")]
pub struct Tokenizer {
    pattern: String,
    encoder: Option<Encoder>, // None until trained
}

#[pymethods]
impl Tokenizer {
    #[new]
    fn new() -> Self {
        Tokenizer { pattern: GPT4_PATTERN.to_string(), encoder: None }
    }

    /// Learns vocab_size - 256 merges (fewer if the corpus runs out of pairs) from an iterable of
    /// str, pulled buffer_size items at a time. pattern defaults to GPT4_PATTERN. Memory grows with
    /// the number of distinct chunks, not the size of the corpus. On error the tokenizer is unchanged.
    #[pyo3(signature = (iterator, vocab_size, buffer_size = 8192, pattern = None))]
    fn train_from_iterator(
        &mut self,
        py: Python<'_>,
        iterator: &Bound<'_, PyAny>,
        vocab_size: &Bound<'_, PyAny>,
        buffer_size: i64,
        pattern: Option<&str>,
    ) -> PyResult<()> {
        let vocab_size = check_vocab_size(vocab_size)?;
        if buffer_size < 1 {
            return Err(PyValueError::new_err(format!("buffer_size={buffer_size} must be at least 1")));
        }
        let buffer_size = buffer_size as usize;
        let pattern = pattern.unwrap_or(GPT4_PATTERN);
        let splitter = Splitter::new(pattern).map_err(PyValueError::new_err)?;

        let mut counts = ChunkCounts::default();
        let mut buffer: Vec<String> = Vec::with_capacity(buffer_size.min(1 << 16));
        let mut n_items = 0;
        for item in iterator.try_iter()? {
            // `?` on the item: an exception raised inside the user's iterator propagates unchanged.
            buffer.push(text_item(&item?, n_items)?);
            n_items += 1;
            if buffer.len() == buffer_size {
                count_buffer(py, &splitter, &mut counts, &mut buffer)?;
            }
        }
        count_buffer(py, &splitter, &mut counts, &mut buffer)?;
        if counts.is_empty() {
            return Err(PyValueError::new_err(format!(
                "train_from_iterator: no text to learn from: the iterator gave {n_items} item(s) and the split \
                 pattern found no chunk in any of them; pass non-empty strings"
            )));
        }

        let chunks = counts.into_sorted();
        // GIL released: learning merges touches only Rust data and can take minutes.
        let merges = py.detach(|| learn_merges(&chunks, vocab_size - 256)).map_err(PyValueError::new_err)?;
        self.encoder = Some(Encoder::new(splitter, &merges));
        self.pattern = pattern.to_string();
        Ok(())
    }

    /// 256 + the number of merges learned (256 before training).
    #[getter]
    fn vocab_size(&self) -> usize {
        self.encoder.as_ref().map_or(256, |e| e.token_bytes().len())
    }

    /// The split pattern: the one used in training, or GPT4_PATTERN before training.
    fn get_pattern(&self) -> String {
        self.pattern.clone()
    }

    /// [(token bytes, rank)] in rank order: the 256 single bytes (rank == byte value), then the
    /// merges in learned order. dict() of it is tiktoken's mergeable_ranks.
    fn get_mergeable_ranks<'py>(&self, py: Python<'py>) -> Vec<(Bound<'py, PyBytes>, u32)> {
        let untrained = token_bytes(&[]);
        let all = self.encoder.as_ref().map_or(untrained.as_slice(), |e| e.token_bytes());
        all.iter().enumerate().map(|(rank, b)| (PyBytes::new(py, b), rank as u32)).collect()
    }

    /// Token ids of text: split with the pattern, then apply merges lowest rank first (tiktoken's
    /// result for the same ranks and pattern).
    fn encode(&self, py: Python<'_>, text: &str) -> PyResult<Vec<u32>> {
        let encoder = self.trained("encode")?;
        // GIL released: `text` borrows a str the caller keeps alive for the whole call.
        py.detach(|| encoder.encode(text)).map_err(PyValueError::new_err)
    }

    /// encode() of every text in a list, in parallel on all cores.
    fn batch_encode(&self, py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u32>>> {
        let encoder = self.trained("batch_encode")?;
        if texts.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err("batch_encode takes a list of str, not a single str; use encode()"));
        }
        let objects = texts.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        let views = objects
            .iter()
            .enumerate()
            .map(|(i, obj)| obj.cast::<PyString>().map_err(|_| not_a_str("batch_encode", obj, i))?.to_str())
            .collect::<PyResult<Vec<&str>>>()?;
        // GIL released: the &str views borrow strings that `objects` keeps alive until we return.
        py.detach(|| views.par_iter().map(|t| encoder.encode(t)).collect::<Result<Vec<_>, _>>())
            .map_err(PyValueError::new_err)
    }
}

impl Tokenizer {
    fn trained(&self, method: &str) -> PyResult<&Encoder> {
        self.encoder.as_ref().ok_or_else(|| {
            PyRuntimeError::new_err(format!(
                "{method}: this Tokenizer has not been trained yet; call train_from_iterator(...) first"
            ))
        })
    }
}

/// Splits and counts the buffered texts with the GIL released, then empties the buffer.
fn count_buffer(
    py: Python<'_>,
    splitter: &Splitter,
    counts: &mut ChunkCounts,
    buffer: &mut Vec<String>,
) -> PyResult<()> {
    // GIL released: the buffer is owned Rust strings, and the split runs on rayon's threads.
    py.detach(|| counts.add_texts(splitter, buffer)).map_err(PyValueError::new_err)?;
    buffer.clear();
    Ok(())
}

/// The str at position `index` of the training iterator, as an owned Rust string.
fn text_item(item: &Bound<'_, PyAny>, index: usize) -> PyResult<String> {
    let s = item.cast::<PyString>().map_err(|_| not_a_str("train_from_iterator", item, index))?;
    match s.to_str() {
        Ok(text) => Ok(text.to_owned()),
        Err(e) => Err(PyValueError::new_err(format!(
            "train_from_iterator: item {index} is not valid UTF-8 text (a lone surrogate?): {e}"
        ))),
    }
}

fn not_a_str(method: &str, obj: &Bound<'_, PyAny>, index: usize) -> PyErr {
    PyTypeError::new_err(format!("{method}: item {index} is of type {}, expected str", type_name(obj)))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map_or_else(|_| "?".to_string(), |n| n.to_string())
}

/// vocab_size as a usize in [256, 2**24], or an error naming the offending value. Taken as any
/// object so that a float, or an int too big for i64, still gets this message.
fn check_vocab_size(obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    if !obj.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!("vocab_size must be an int, got {}", type_name(obj))));
    }
    match obj.extract::<i64>() {
        Ok(v) if (256..=MAX_VOCAB_SIZE).contains(&v) => Ok(v as usize),
        _ => Err(PyValueError::new_err(format!(
            "vocab_size={obj} is out of range: it must be between 256 (the byte tokens) and 2**24"
        ))),
    }
}
