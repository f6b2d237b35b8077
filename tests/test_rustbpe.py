"""
rustbpe against references: the merges it learns against tests/bpe_reference.py (a slow Python
trainer that recounts everything each step), its encoding against tiktoken built from its own ranks,
plus determinism, early stopping and every bad-input error.

Not here: the Rust-level unit tests (`cargo test` in rustbpe/) and speed (bench/tokenizer.py).
"""

import random
import unicodedata

import pytest
import tiktoken

import rustbpe
from tests import bpe_reference

ASCII_WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "It's", "we'll", "THEY'RE",
               "don't", "Hello", "world", "token", "tokenizer", "data", "a", "I", "x"]
ACCENTED = ["café", "naïve", "façade", "Ångström", "über", "señor", "straße", "Øresund", "élève", "ÉCOLE"]
CJK = ["中文", "日本語", "한국어", "漢字かな交じり文", "東京", "你好世界"]
EMOJI = ["🙂", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🏳️‍🌈", "❤️", "🙂🙂🙂"]
PUNCT = [",", ".", "!", "?!", "...", "(", ")", "--", "'", '"', ":", ";"]
SYLLABLES = ["ka", "to", "ri", "mé", "ñu", "st", "ing", "ö", "zz", "q", "中", "ß"]
SPACES = [" ", " ", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\r\n\r\n", "    \t "]


def make_document(rng, n_pieces):
    """A document mixing every kind of text the split pattern treats differently."""
    parts = []
    for _ in range(n_pieces):
        kind = rng.random()
        if kind < 0.3:
            parts.append(rng.choice(ASCII_WORDS))
        elif kind < 0.45:  # made-up words: many distinct chunks that share pairs
            parts.append("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
        elif kind < 0.55:
            parts.append(rng.choice(ACCENTED))
        elif kind < 0.62:
            parts.append(rng.choice(CJK))
        elif kind < 0.68:
            parts.append(rng.choice(EMOJI))
        elif kind < 0.78:
            parts.append(str(rng.randrange(10 ** rng.randint(1, 9))))  # digit runs of 1-9 digits
        else:
            parts.append(rng.choice(PUNCT))
        parts.append(rng.choice(SPACES))
    return "".join(parts)


def make_corpus(seed=0):
    rng = random.Random(seed)
    docs = [make_document(rng, rng.randint(0, 40)) for _ in range(80)]
    docs += ["", "", "x", " ", "\r\n"]
    # One long document: repeated prose with a long whitespace run and a long digit run inside it.
    long_doc = make_document(rng, 300) * 20 + " " * 3000 + "7" * 1001 + "\t\n" * 50 + make_document(rng, 200)
    docs.insert(17, long_doc)
    return docs


CORPUS = make_corpus()
CUSTOM_PATTERN = r"\p{L}+|\p{N}|[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def train(texts, vocab_size, **kwargs):
    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(iter(texts), vocab_size, **kwargs)
    return tok


def tiktoken_of(tok):
    ranks = dict(tok.get_mergeable_ranks())
    return tiktoken.Encoding(name="rustbpe_test", pat_str=tok.get_pattern(), mergeable_ranks=ranks, special_tokens={})


@pytest.fixture(scope="module")
def reference_ranks():
    """The reference trained once at the largest size: a smaller vocab is a prefix (BPE is greedy)."""
    return bpe_reference.train(CORPUS, 700, rustbpe.GPT4_PATTERN)


@pytest.fixture(scope="module")
def trained():
    return train(CORPUS, 700)


# -----------------------------------------------------------------------------
# Same merges as the reference


@pytest.mark.parametrize("vocab_size", [256, 257, 300, 450, 700])
def test_same_merges_as_reference(reference_ranks, vocab_size):
    assert len(reference_ranks) == 700, "corpus too small: the reference stopped early"
    tok = train(CORPUS, vocab_size)
    assert tok.vocab_size == vocab_size
    assert tok.get_mergeable_ranks() == reference_ranks[:vocab_size]


def test_same_merges_as_reference_with_custom_pattern():
    texts = CORPUS[:30]
    tok = train(texts, 400, pattern=CUSTOM_PATTERN)
    assert tok.get_pattern() == CUSTOM_PATTERN
    assert tok.get_mergeable_ranks() == bpe_reference.train(texts, 400, CUSTOM_PATTERN)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_merges_as_reference_on_random_small_corpora(seed):
    # Tiny alphabets make equal counts, overlapping pairs ("aaa") and early stops common.
    rng = random.Random(seed)
    texts = ["".join(rng.choice("ab \n1") for _ in range(rng.randint(0, 30))) for _ in range(50)]
    assert train(texts, 400).get_mergeable_ranks() == bpe_reference.train(texts, 400, rustbpe.GPT4_PATTERN)


@pytest.mark.parametrize("seed", [0, 1])
def test_same_merges_as_reference_on_random_unicode(seed):
    # The reference splits with Python's `regex` module: an independent engine for the split too.
    rng = random.Random(seed)
    texts = [random_unicode(rng, rng.randint(0, 60)) for _ in range(60)]
    assert train(texts, 400).get_mergeable_ranks() == bpe_reference.train(texts, 400, rustbpe.GPT4_PATTERN)


def test_ranks_are_bytes_then_merges_and_unique(trained):
    ranks = trained.get_mergeable_ranks()
    assert [r for _, r in ranks] == list(range(700))
    assert [b for b, _ in ranks[:256]] == [bytes([i]) for i in range(256)]
    assert len({b for b, _ in ranks}) == len(ranks), "two ranks share the same bytes: tiktoken would break"


def test_untrained_tokenizer_describes_bytes_only():
    tok = rustbpe.Tokenizer()
    assert tok.vocab_size == 256
    assert tok.get_pattern() == rustbpe.GPT4_PATTERN
    assert tok.get_mergeable_ranks() == [(bytes([i]), i) for i in range(256)]


# -----------------------------------------------------------------------------
# Encoding == tiktoken built from the same ranks and pattern


def random_unicode(rng, n):
    """n random code points: ASCII-heavy, plus whitespace, Latin, CJK, emoji and any other assigned one."""
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.4:
            cp = rng.randrange(0x20, 0x7F)
        elif kind < 0.5:
            cp = rng.choice([0x09, 0x0A, 0x0D, 0x20, 0x3000, 0x00A0, 0x2028])
        elif kind < 0.6:
            cp = rng.randrange(0xA0, 0x250)
        elif kind < 0.7:
            cp = rng.randrange(0x4E00, 0x9FFF)
        elif kind < 0.8:
            cp = rng.randrange(0x1F300, 0x1FAFF)
        else:
            cp = rng.randrange(0x80, 0x110000)
            # Not a surrogate, and assigned as of this Python's Unicode tables: engines built on
            # different Unicode versions disagree about \p{L} for code points assigned since.
            if 0xD800 <= cp <= 0xDFFF or unicodedata.category(chr(cp)) == "Cn":
                cp = 0xFFFD
        out.append(chr(cp))
    return "".join(out)


def test_encode_matches_tiktoken_on_corpus(trained):
    enc = tiktoken_of(trained)
    for text in CORPUS:
        assert trained.encode(text) == enc.encode_ordinary(text)
    assert trained.batch_encode(CORPUS) == enc.encode_ordinary_batch(CORPUS)


def test_encode_matches_tiktoken_and_round_trips_on_random_unicode(trained):
    enc = tiktoken_of(trained)
    rng = random.Random(0)
    texts = [random_unicode(rng, rng.randint(0, 200)) for _ in range(300)]
    batch = trained.batch_encode(texts)
    for text, ids in zip(texts, batch):
        assert ids == trained.encode(text) == enc.encode_ordinary(text), repr(text)
        assert enc.decode(ids) == text


def test_round_trips_any_code_point(trained):
    # Unassigned code points included: the split may differ between Unicode versions, bytes may not.
    token_bytes = [b for b, _ in trained.get_mergeable_ranks()]
    rng = random.Random(2)
    for _ in range(100):
        text = "".join(chr(rng.choice([rng.randrange(0xD800), rng.randrange(0xE000, 0x110000)])) for _ in range(50))
        ids = trained.encode(text)
        assert b"".join(token_bytes[i] for i in ids).decode("utf-8") == text


def test_encode_matches_tiktoken_with_custom_pattern():
    tok = train(CORPUS[:30], 400, pattern=CUSTOM_PATTERN)
    enc = tiktoken_of(tok)
    for text in CORPUS:
        assert tok.encode(text) == enc.encode_ordinary(text)


def test_encode_long_chunks_matches_tiktoken(trained):
    # Chunks over 128 bytes take a different (heap-based) join path than short ones.
    enc = tiktoken_of(trained)
    rng = random.Random(5)
    texts = ["".join(rng.choice("thequickbrownfox") for _ in range(n)) for n in [129, 1000, 20_000]]
    texts += [" " * 5000 + "x", "é" * 3000, "🙂" * 500, make_document(rng, 50).replace(" ", "")]
    for text in texts:
        assert trained.encode(text) == enc.encode_ordinary(text)


def test_gpt4_fast_split_path_equals_fancy_regex(trained):
    # rustbpe runs GPT4_PATTERN on a lookahead-free fast path; any other string goes to fancy-regex.
    # Wrapping the pattern in a group changes nothing but the string, so it forces the slow path.
    slow = train(CORPUS, 700, pattern=f"(?:{rustbpe.GPT4_PATTERN})")
    assert slow.get_mergeable_ranks() == trained.get_mergeable_ranks()
    rng = random.Random(1)
    texts = [random_unicode(rng, rng.randint(0, 100)) for _ in range(300)]
    texts += ["".join(rng.choice([" ", "\t", "\u3000", "\n", "\r", "a", "1", "!", "'s"]) for _ in range(30))
              for _ in range(300)]
    assert slow.batch_encode(texts) == trained.batch_encode(texts)


def test_batch_encode_edge_cases(trained):
    assert trained.batch_encode([]) == []
    assert trained.batch_encode(["", "a"]) == [[], [ord("a")]]
    assert trained.batch_encode(("tuple", "works")) == [trained.encode("tuple"), trained.encode("works")]


# -----------------------------------------------------------------------------
# Determinism and early stop


def test_deterministic_and_independent_of_buffer_size(trained):
    want = trained.get_mergeable_ranks()
    assert train(CORPUS, 700).get_mergeable_ranks() == want
    for buffer_size in [1, 7, 10_000]:
        assert train(CORPUS, 700, buffer_size=buffer_size).get_mergeable_ranks() == want


def test_accepts_any_iterable_of_str(trained):
    def gen():
        yield from CORPUS

    assert train(gen(), 700).get_mergeable_ranks() == trained.get_mergeable_ranks()


def test_stops_early_when_pairs_run_out():
    # Chunks "ab", " ab", "c": merges a+b, then " "+"ab", then nothing is left to merge.
    tok = train(["ab ab", "c"], 1000)
    assert tok.vocab_size == 258
    assert [b for b, _ in tok.get_mergeable_ranks()[256:]] == [b"ab", b" ab"]
    assert tok.get_mergeable_ranks() == bpe_reference.train(["ab ab", "c"], 1000, rustbpe.GPT4_PATTERN)
    # Single characters only: no pair at all, zero merges, still a usable tokenizer.
    tok = train(["a", "b", "a"], 300)
    assert tok.vocab_size == 256
    assert tok.encode("ab") == [97, 98]


def test_retraining_replaces_the_previous_model():
    tok = train(["aaaa"], 300)
    tok.train_from_iterator(["bcbc bc"], 260, pattern=CUSTOM_PATTERN)
    assert tok.get_pattern() == CUSTOM_PATTERN
    assert tok.get_mergeable_ranks() == bpe_reference.train(["bcbc bc"], 260, CUSTOM_PATTERN)


# -----------------------------------------------------------------------------
# Bad input: clear Python exceptions, and a failed training leaves the tokenizer as it was


@pytest.mark.parametrize("vocab_size", [-1, 0, 255, 2**24 + 1, 2**80])
def test_vocab_size_out_of_range(vocab_size):
    with pytest.raises(ValueError, match=f"vocab_size={vocab_size} is out of range"):
        rustbpe.Tokenizer().train_from_iterator(["hello"], vocab_size)


def test_vocab_size_not_an_int():
    with pytest.raises(TypeError, match="vocab_size must be an int, got float"):
        rustbpe.Tokenizer().train_from_iterator(["hello"], 300.0)


def test_buffer_size_must_be_positive():
    with pytest.raises(ValueError, match="buffer_size=0"):
        rustbpe.Tokenizer().train_from_iterator(["hello"], 300, buffer_size=0)


@pytest.mark.parametrize("bad, type_name", [(5, "int"), (b"bytes", "bytes"), (None, "NoneType")])
def test_non_str_item_names_its_type_and_index(bad, type_name):
    with pytest.raises(TypeError, match=f"item 2 is of type {type_name}, expected str"):
        rustbpe.Tokenizer().train_from_iterator(["a", "b", bad, "c"], 300)


def test_lone_surrogate_is_a_value_error():
    with pytest.raises(ValueError, match="item 1 is not valid UTF-8"):
        rustbpe.Tokenizer().train_from_iterator(["ok", "bad \ud800"], 300)


def test_invalid_pattern():
    with pytest.raises(ValueError, match=r"invalid split pattern.*\(unclosed"):
        rustbpe.Tokenizer().train_from_iterator(["hello"], 300, pattern="(unclosed")


@pytest.mark.parametrize("texts", [[], [""], ["", "", ""]])
def test_empty_corpus(texts):
    with pytest.raises(ValueError, match="no text to learn from"):
        rustbpe.Tokenizer().train_from_iterator(texts, 300)


def test_pattern_matching_nothing_is_an_empty_corpus():
    with pytest.raises(ValueError, match="no text to learn from"):
        rustbpe.Tokenizer().train_from_iterator(["hello world"], 300, pattern=r"\d+")


def test_not_an_iterable():
    with pytest.raises(TypeError, match="not iterable"):
        rustbpe.Tokenizer().train_from_iterator(42, 300)


def test_iterator_errors_propagate_and_leave_the_tokenizer_unchanged():
    tok = train(["hello hello world"], 300)
    before = tok.get_mergeable_ranks()

    def failing():
        yield "some text"
        raise KeyError("boom from the iterator")

    with pytest.raises(KeyError, match="boom from the iterator"):
        tok.train_from_iterator(failing(), 500, buffer_size=1)
    assert tok.get_mergeable_ranks() == before
    assert tok.get_pattern() == rustbpe.GPT4_PATTERN


def test_encode_before_training():
    tok = rustbpe.Tokenizer()
    with pytest.raises(RuntimeError, match="not been trained"):
        tok.encode("hello")
    with pytest.raises(RuntimeError, match="not been trained"):
        tok.batch_encode(["hello"])


def test_encode_bad_arguments(trained):
    with pytest.raises(TypeError):
        trained.encode(b"bytes")
    with pytest.raises(TypeError, match="not a single str"):
        trained.batch_encode("a str")
    with pytest.raises(TypeError, match="item 1 is of type int, expected str"):
        trained.batch_encode(["ok", 1])


# -----------------------------------------------------------------------------
# The benchmark script still runs (tiny sizes; it prints numbers and asserts nothing about speed)


@pytest.mark.slow
def test_bench_tokenizer_runs(capsys):
    from bench import tokenizer as bench_tokenizer

    bench_tokenizer.main(["--mb", "0.2", "--vocab", "300"])
    out = capsys.readouterr().out
    assert "tokenizers" in out and "rustbpe" in out
    assert out.rstrip().endswith("True"), out  # rustbpe and tiktoken gave the same ids
