//! rustbpe: fast byte-level BPE training for nanochat, as a Python extension module.
//!
//! Training has two halves. `chunks` splits the corpus with the regex in `pattern` and counts
//! distinct chunks in parallel; `train` then learns merges incrementally over those chunks, each a
//! `word`. `encode` applies learned merges exactly as tiktoken does. `python` is the thin pyo3
//! boundary and the only module that knows about Python.
//!
//! Deliberately absent: decoding, special tokens and serialisation (the Python side builds a
//! tiktoken Encoding from the learned ranks and does all of that).

pub mod chunks;
pub mod encode;
pub mod pattern;
mod python;
pub mod train;
pub mod word;

use pyo3::prelude::*;

/// Byte-level BPE training (rustbpe.Tokenizer) and the GPT-4 style split pattern (GPT4_PATTERN).
#[pymodule]
fn rustbpe(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("GPT4_PATTERN", pattern::GPT4_PATTERN)?;
    m.add_class::<python::Tokenizer>()?;
    Ok(())
}
