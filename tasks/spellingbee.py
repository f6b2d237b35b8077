"""SpellingBee: "how many r's are in strawberry?", a skill BPE models lack because they see tokens, not letters.
The reply spells the word, calls the calculator (`'strawberry'.count('r')`) and ends with "#### 3". Example i
depends only on (seed, i) and a word list (/usr/share/dict/words, else the embedded corpus's vocabulary).
Deliberately not here: upper-case letters or multi-letter substrings (prompts stay simple for small models).
"""

import functools
import itertools
import os
import random
import re
import string

from tasks.common import Task, score_final_answer

DEFAULT_WORDS_PATH = "/usr/share/dict/words"

_QUESTIONS = (
    "How many times does the letter '{l}' appear in the word '{w}'?",
    "How many {l}'s are in {w}?",
    "Count the letter {l} in the word {w}.",
    'In "{w}", how many times does "{l}" occur?',
    "How many times is {l} in {w}?",
)


def read_words(path):
    """Distinct lower-case ASCII words of at least 2 letters from a one-word-per-line file, sorted."""
    with open(path, encoding="utf-8", errors="replace") as f:
        words = {w.strip().lower() for w in f}
    return sorted(w for w in words if len(w) >= 2 and w.isascii() and w.isalpha())


@functools.lru_cache(maxsize=1)  # ~0.3 s of generation; the result is a tuple, so sharing it is safe
def embedded_words(num_documents=1000):
    """Lower-case words (3+ letters) of the first `num_documents` of the embedded corpus (~2,000 words)."""
    from nanochat.synthetic import generate_documents
    words = set()
    for doc in itertools.islice(generate_documents(0), num_documents):
        words.update(re.findall(r"\b[a-z]{3,}\b", doc))  # \b: no fragments of capitalised names
    return tuple(sorted(words))


class SpellingBee(Task):
    def __init__(self, size=1000, seed=0, words_path=None, **view):
        assert isinstance(size, int) and size >= 0, size
        if words_path is None:
            words_path = DEFAULT_WORDS_PATH if os.path.isfile(DEFAULT_WORDS_PATH) else None
        self.words = read_words(words_path) if words_path else embedded_words()
        if not self.words:
            raise ValueError(f"word list {words_path!r} has no usable words (lower-case ASCII letters only)")
        self.size, self.seed = size, seed
        super().__init__(name=f"SpellingBee/seed{seed}", **view)

    def num_examples(self):
        return self.size

    def example(self, index):
        rng = random.Random(f"spellingbee:{self.seed}:{index}")  # a str seed is hashed stably (SHA-512)
        word = rng.choice(self.words)
        # mostly letters of the word; sometimes any letter, so that 0 is a possible answer too
        letter = rng.choice(word) if rng.random() < 0.7 else rng.choice(string.ascii_lowercase)
        count = word.count(letter)
        question = rng.choice(_QUESTIONS).format(l=letter, w=word)
        times = "time" if count == 1 else "times"
        parts = [
            {"type": "text", "text": f"Spelled out, '{word}' is {'-'.join(word)}. Let me count with Python: "},
            {"type": "python", "text": f"'{word}'.count('{letter}')"},
            {"type": "python_output", "text": str(count)},
            {"type": "text", "text": f"\nThe letter '{letter}' appears {count} {times} in '{word}'.\n#### {count}"},
        ]
        return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": parts}]}

    evaluate = staticmethod(score_final_answer)  # also the RL reward (scripts/chat_rl.py calls evaluate)
