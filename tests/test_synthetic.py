"""
Tests for the embedded corpus (nanochat/synthetic.py): determinism (also across PYTHONHASHSEED), variety of
the text, the parquet shard format, GSM8K-style math annotations checked with an independent evaluator, and
chat answers checked against the world table by an independent reference reader.
"""

import ast
import collections
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from nanochat.synthetic import (
    generate_conversations,
    generate_documents,
    generate_identity_conversations,
    generate_math_problems,
    write_embedded_corpus,
)
from nanochat.synthetic import world as W

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _docs(seed, n):
    return list(itertools.islice(generate_documents(seed), n))


@pytest.fixture(scope="module")
def sample_docs():
    return _docs(0, 1500)  # ~1 MB, ~0.3 s


# -----------------------------------------------------------------------------
# Determinism

_DIGEST_CODE = """
import hashlib, itertools, json
from nanochat.synthetic import generate_documents, generate_conversations, generate_math_problems
h = hashlib.sha256()
for d in itertools.islice(generate_documents(3), 300):
    h.update(d.encode())
h.update(json.dumps(generate_conversations(3, 100)).encode())
h.update(json.dumps(generate_math_problems(3, 100)).encode())
print(h.hexdigest())
"""


def _digest_here():
    h = hashlib.sha256()
    for d in itertools.islice(generate_documents(3), 300):
        h.update(d.encode())
    h.update(json.dumps(generate_conversations(3, 100)).encode())
    h.update(json.dumps(generate_math_problems(3, 100)).encode())
    return h.hexdigest()


def test_same_seed_same_output_different_seed_different_output():
    assert _docs(5, 200) == _docs(5, 200)
    assert _docs(5, 50) != _docs(6, 50)
    assert generate_conversations(1, 50) == generate_conversations(1, 50)
    assert generate_conversations(1, 50) != generate_conversations(2, 50)
    assert generate_math_problems(1, 50) == generate_math_problems(1, 50)
    assert generate_math_problems(1, 50) != generate_math_problems(2, 50)


def test_items_depend_only_on_seed_and_index():
    assert generate_math_problems(4, 30) == generate_math_problems(4, 60)[:30]
    assert generate_conversations(4, 30) == generate_conversations(4, 60)[:30]
    assert generate_math_problems(4, 0) == [] and generate_conversations(4, 0) == []


def test_identical_across_processes_with_different_hash_seeds():
    digests = set()
    for hash_seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=REPO)
        out = subprocess.run([sys.executable, "-c", _DIGEST_CODE], env=env, cwd=REPO, capture_output=True,
                             text=True, check=True)
        digests.add(out.stdout.strip())
    assert digests == {_digest_here()}


@pytest.mark.parametrize("bad", [-1, 2.5, "3"])
def test_bad_counts_and_seeds_are_rejected(bad):
    with pytest.raises(ValueError, match="n must be"):
        generate_math_problems(0, bad)
    with pytest.raises(ValueError, match="n must be"):
        generate_conversations(0, bad)
    if bad != -1:  # negative seeds are fine
        with pytest.raises(ValueError, match="seed must be"):
            generate_documents(bad)


# -----------------------------------------------------------------------------
# Variety. Thresholds are set well below the measured values on seed 0 (in brackets) and well above what a
# handful of fixed templates would give: those would repeat most sentences verbatim.

def _sentences(docs):
    return [s for d in docs for s in re.split(r"(?<=[.!?])\s+|\n+", d) if len(s.split()) >= 4]


def _bank_words():
    """Every word that appears in any word bank or fact table: replacing these in a sentence leaves its frame."""
    words = set()

    def add(x):
        if isinstance(x, str) and "{" not in x:  # a word, not a sentence template
            words.update(w.lower() for w in re.findall(r"[A-Za-z']+", x))
        elif isinstance(x, tuple):
            for y in x:
                add(y)
    for name in dir(W):
        if name.isupper():
            add(getattr(W, name))
    return words - {"the", "a", "an", "and", "of", "in", "to", "is", "it", "on", "for", "at", "with", "he", "she",
                    "i", "his", "her", "my", "was", "are", "has", "that", "by", "as", "its"}


def test_text_is_varied(sample_docs):
    sents = _sentences(sample_docs)
    counts = collections.Counter(sents)
    assert len(sents) > 10_000
    assert len(counts) / len(sents) > 0.5  # distinct-sentence ratio [0.75]
    assert counts.most_common(1)[0][1] / len(sents) < 0.01  # no sentence is everywhere [0.5%]
    vocab = {w.lower() for d in sample_docs for w in re.findall(r"[A-Za-z']+", d)}
    assert len(vocab) > 2000  # [~2600]
    bank = _bank_words()
    frames = collections.Counter(
        " ".join("_" if w.lower() in bank or w.isdigit() else w.lower() for w in re.findall(r"[A-Za-z']+|\d+", s))
        for s in sents)
    assert len(frames) > 2000  # many sentence frames [~4900]
    assert frames.most_common(1)[0][1] / len(sents) < 0.03  # no single frame dominates [1.1%]


def test_document_lengths_and_kinds_vary(sample_docs):
    lengths = sorted(map(len, sample_docs))
    assert lengths[0] < 100 and lengths[-1] > 3000  # from one sentence to a few thousand characters
    assert 200 < lengths[len(lengths) // 2] < 2000
    text = "\n".join(sample_docs)
    for marker in ('"', "Dear ", "How to ", "Q: ", "#### ", "User: ", "capital", "1. ", "- ", " = "):
        assert marker in text, f"no document with {marker!r}: a document kind has gone missing"


def test_documents_state_facts_consistently(sample_docs):
    capital = {country: cap for country, cap, *_ in W.COUNTRIES}
    countries = "|".join(re.escape(c) for c in sorted(capital, key=len, reverse=True))
    text = "\n".join(sample_docs)
    seen = 0
    for m in re.finditer(rf"\b[Tt]he capital (?:city )?of ({countries}) is ([A-Z][a-z]+)", text):
        assert capital[m.group(1)].split()[0].rstrip(",") == m.group(2), m.group(0)
        seen += 1
    for m in re.finditer(rf"\b(?!What\b)([A-Z][a-z]+) is the capital (?:city )?of ({countries})\b", text):
        assert capital[m.group(2)].split()[-1] == m.group(1), m.group(0)
        seen += 1
    assert seen > 10


# -----------------------------------------------------------------------------
# Parquet shards

def test_shards_in_the_real_format(tmp_path):
    paths = write_embedded_corpus(str(tmp_path), num_shards=3, chars_per_shard=800_000, seed=1)
    assert [os.path.basename(p) for p in paths] == [f"shard_{i:05d}.parquet" for i in range(3)]
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)  # no *.tmp left
    texts = []
    for p in paths:
        f = pq.ParquetFile(p)
        assert f.schema_arrow.names == ["text"] and str(f.schema_arrow.field("text").type) == "string"
        meta = f.metadata
        assert meta.num_row_groups >= 2  # > 1024 documents, so the row-group size is really exercised
        for i in range(meta.num_row_groups):
            assert meta.row_group(i).column(0).compression == "ZSTD"
            if i < meta.num_row_groups - 1:
                assert meta.row_group(i).num_rows == 1024
        docs = f.read().column("text").to_pylist()
        assert sum(map(len, docs)) >= 800_000 and all(isinstance(d, str) and d for d in docs)
        texts.append(docs)
    # The validation shard is its own stream: only short stock documents ("A square has four sides.") recur.
    shared = set(texts[2]) & (set(texts[0]) | set(texts[1]))
    assert texts[0] != texts[1] and len(shared) < 0.05 * len(texts[2])
    # Shard i and the validation shard do not depend on how many shards were asked for.
    other = write_embedded_corpus(str(tmp_path / "two"), num_shards=2, chars_per_shard=800_000, seed=1)
    assert pq.read_table(other[0]).column("text").to_pylist() == texts[0]
    assert pq.read_table(other[1]).column("text").to_pylist() == texts[2]


def test_shards_are_idempotent_and_repaired(tmp_path):
    paths = write_embedded_corpus(str(tmp_path), num_shards=2, chars_per_shard=50_000)
    stamps = [os.stat(p).st_mtime_ns for p in paths]
    os.utime(paths[0], ns=(1, 1))  # a marker: a rewrite would reset it
    assert write_embedded_corpus(str(tmp_path), num_shards=2, chars_per_shard=50_000) == paths
    assert os.stat(paths[0]).st_mtime_ns == 1 and os.stat(paths[1]).st_mtime_ns == stamps[1]
    good = pq.read_table(paths[1]).column("text").to_pylist()
    with open(paths[1], "r+b") as f:  # a half-written file (e.g. from a crash in someone else's writer)
        f.truncate(100)
    with open(paths[0], "wb") as f:
        f.write(b"not parquet")
    write_embedded_corpus(str(tmp_path), num_shards=2, chars_per_shard=50_000)
    assert pq.read_table(paths[1]).column("text").to_pylist() == good
    assert pq.read_table(paths[0]).num_rows > 0
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


@pytest.mark.parametrize("kwargs", [{"num_shards": 1}, {"num_shards": 0}, {"chars_per_shard": 0}, {"seed": 1.5}])
def test_bad_shard_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError, match="num_shards|chars_per_shard|seed"):
        write_embedded_corpus(str(tmp_path), **kwargs)


# -----------------------------------------------------------------------------
# Math problems: a tiny evaluator that only knows integers and + - * /

def _safe_eval(expr):
    ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b}

    def ev(node):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"not plain arithmetic: {ast.dump(node)}")
    return ev(ast.parse(expr, mode="eval").body)


def test_safe_eval_reference():
    assert _safe_eval("3*4") == 12 and _safe_eval("48/2") == 24 and _safe_eval("7-10") == -3
    with pytest.raises(ValueError):
        _safe_eval("__import__('os')")


_MATH_FRAMES = {"shopping": r"\bbuys\b", "sharing": r"\bshares\b", "speed": r"per hour", "ages": r"years old",
                "saving": r"\bsaves?\b", "recipes": r"recipe"}


def test_math_problems_have_correct_calculator_annotations():
    problems = generate_math_problems(0, 2000)
    frames = collections.Counter()
    for p in problems:
        assert set(p) == {"question", "answer"} and p["question"].endswith("?")
        *steps, last = p["answer"].split("\n")
        assert re.fullmatch(r"#### \d+", last), last
        notes = re.findall(r"<<([^=<>]+)=([^<>]+)>>(\d+)", p["answer"])
        assert 1 <= len(notes) <= 3 and len(notes) == len(steps) == p["answer"].count("<<")
        for expr, shown, after in notes:
            value = _safe_eval(expr)
            assert value == int(value) and 0 <= value < 1000, (expr, p)  # exact division, no negatives, small
            assert shown == after == str(int(value)), p
            assert all(int(n) < 1000 for n in re.findall(r"\d+", expr))
        assert last == f"#### {notes[-1][2]}"
        for frame, pattern in _MATH_FRAMES.items():
            frames[frame] += bool(re.search(pattern, p["question"]))
    for frame, count in frames.items():  # the story frames the brief asks for, none of them dominating
        assert 0.02 < count / len(problems) < 0.25, (frame, count)


# -----------------------------------------------------------------------------
# Conversations, checked against the world table by a reader that does not use the generator's templates.

_CAPITAL = {c: row for c, *row in W.COUNTRIES}  # country -> [capital, continent, language, currency]
_ANIMAL = {}
for _row in W.ANIMALS:
    _ANIMAL[_row[0]] = _row
    _ANIMAL[_row[0] + "s"] = _row  # crude plural is enough for the names the reader looks for
_DAYS, _MONTHS = list(W.DAYS), dict(W.MONTHS)
_IDENTITY_QUESTIONS = {q for q, _ in W.IDENTITY_QA}


def _finder(names):
    """A function returning the longest of `names` found in a text as whole words (first letter any case)."""
    by_lower = {n.lower(): n for n in names}
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(by_lower, key=len, reverse=True)) + r")\b",
                         re.I)

    def find(text):
        hits = [m.group(1).lower() for m in pattern.finditer(text)]
        return by_lower[max(hits, key=len)] if hits else None
    return find


_find_country, _find_animal = _finder(_CAPITAL), _finder(_ANIMAL)
_find_month, _find_day = _finder(_MONTHS), _finder(_DAYS)


def _expected(topic_text, subject_text, prev_result):
    """What the reply must contain, or None if this reader does not check this kind of question."""
    t = topic_text.lower()
    country = _find_country(subject_text)
    animal = _find_animal(subject_text)
    if country and "capital" in t and "which country" not in t and "as its capital" not in t:
        return _CAPITAL[country][0]
    if country and ("continent" in t or "where is" in t):
        return _CAPITAL[country][1]
    if country and "language" in t:
        return _CAPITAL[country][2]
    if country and ("currency" in t or "money" in t):
        return _CAPITAL[country][3]
    if animal and "legs" in t:
        legs = _ANIMAL[animal][6]
        return "no legs" if legs == "0" else W.number_word(int(legs))
    if animal and ("eat" in t or "diet" in t):
        return _ANIMAL[animal][2]
    if animal and ("live" in t or "find" in t):
        return _ANIMAL[animal][3]
    month = _find_month(subject_text)
    if month and "how many days" in t:
        return _MONTHS[month]
    day = _find_day(subject_text)
    if day and "after" in t and "day" in t:
        return _DAYS[(_DAYS.index(day) + 1) % 7]
    m = re.search(r"(\d+) ([-+*/]|plus|minus|times|divided by) (\d+)", subject_text)
    if m:
        op = {"plus": "+", "minus": "-", "times": "*", "divided by": "/"}.get(m.group(2), m.group(2))
        return str(int(_safe_eval(f"{m.group(1)}{op}{m.group(3)}")))
    m = re.fullmatch(r"(?:Now multiply that by|And if you add|Subtract) (\d+)(?: from that)?[.?]", subject_text)
    if m and prev_result is not None:
        k = int(m.group(1))
        op = "*" if "multiply" in subject_text else "+" if "add" in subject_text else "-"
        return str(int(_safe_eval(f"{prev_result}{op}{k}")))
    return None


def test_conversations_alternate_and_answers_match_the_world_table():
    convs = generate_conversations(0, 3000)
    checked = identity = followups = 0
    turns = collections.Counter()
    for conv in convs:
        msgs = conv["messages"]
        assert set(conv) == {"messages"}
        if msgs[0]["role"] == "system":
            assert msgs[0]["content"]
            msgs = msgs[1:]
        assert 2 <= len(msgs) <= 8 and len(msgs) % 2 == 0
        turns[len(msgs) // 2] += 1
        prev_user, prev_result, last_subject = "", None, ""
        for i in range(0, len(msgs), 2):
            user, bot = msgs[i], msgs[i + 1]
            assert user["role"] == "user" and bot["role"] == "assistant"
            assert isinstance(user["content"], str) and user["content"].strip()
            assert isinstance(bot["content"], str) and bot["content"].strip()
            q, a = user["content"], bot["content"]
            if q in _IDENTITY_QUESTIONS:
                assert "nanochat" in a, (q, a)
                identity += 1
            follow_up = re.match(r"(What about|And|How about) (?!what )(.+)\?$", q)
            topic_text = prev_user if follow_up else q
            # "Which continent is it in?": the subject is whatever the conversation last talked about
            subject_text = last_subject if re.search(r"\b(it|there|they)\b", q) and not follow_up else q
            want = _expected(topic_text, subject_text, prev_result)
            if want is not None:
                assert want in a, (prev_user, q, a, want)
                checked += 1
                followups += bool(follow_up) or subject_text is not q
            numbers = re.findall(r"\d+", a)
            prev_result = int(numbers[-1]) if numbers else None
            prev_user = topic_text if follow_up else q
            if _find_country(q) or _find_animal(q):
                last_subject = q
    assert set(turns) == {1, 2, 3, 4}
    print(f"checked {checked} answers ({followups} follow-ups), {identity} identity answers")
    assert checked > 800 and identity > 100 and followups > 20  # the checks really ran


def test_identity_facts_are_in_the_documents(sample_docs):
    text = "\n".join(sample_docs)
    assert text.count("nanochat") > 20
    assert "built by" in text


def test_identity_conversations():
    from nanochat.tokenizer import check_messages
    convs = generate_identity_conversations(seed=0, n=300)
    assert convs[:40] == generate_identity_conversations(seed=0, n=40)        # i depends only on (seed, i)
    assert convs != generate_identity_conversations(seed=1, n=300)
    answers = {a for _, a in W.IDENTITY_QA}
    questions = {q.lower().rstrip("?.") for q, _ in W.IDENTITY_QA}
    greeted = 0
    for messages in convs:
        check_messages(messages, last="assistant")                             # the identity .jsonl format
        pairs = [(messages[i]["content"], messages[i + 1]["content"]) for i in range(0, len(messages), 2)]
        if pairs[0][1] not in answers:
            greeted += 1
            pairs = pairs[1:]
        assert 1 <= len(pairs) <= 3
        asked = [q.lower().rstrip("?.") for q, _ in pairs]
        assert len(set(asked)) == len(asked) and set(asked) <= questions       # no question twice, all known
        assert all(a == dict((k.lower().rstrip("?."), v) for k, v in W.IDENTITY_QA)[q] for q, (_, a) in
                   zip(asked, pairs))                                          # each answer belongs to its question
    assert 0.15 < greeted / len(convs) < 0.35


def test_no_table_is_bound_twice():
    """A module-level name assigned twice silently replaces the first table for every reader (SUBJECTS was
    once both the school subjects and the follow-up names, so "favorite subject was planet")."""
    for module in ("world", "grammar", "documents", "chat", "problems", "__init__"):
        with open(os.path.join(REPO, "nanochat", "synthetic", module + ".py")) as f:
            tree = ast.parse(f.read())
        names = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                 if isinstance(t, ast.Name)]
        twice = [n for n, c in collections.Counter(names).items() if c > 1]
        assert not twice, f"nanochat/synthetic/{module}.py binds {twice} more than once"


def test_favorite_subject_is_a_school_subject(sample_docs):
    found = re.findall(r"favorite subject was ([a-z ]+)\.", "\n".join(sample_docs))
    assert len(found) > 10
    assert set(found) <= set(W.SUBJECTS), set(found) - set(W.SUBJECTS)
    assert {"mathematics", "history", "music", "science"} & set(found), set(found)   # not topic names
