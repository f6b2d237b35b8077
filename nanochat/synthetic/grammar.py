"""
The grammar engine of the embedded corpus (nanochat/synthetic/): how a template with named slots becomes a
sentence, and how a row of the world table becomes statements about it and questions with their answers.

- `_Gen`: a seeded random.Random plus the few draws the grammar needs; `g.say(templates, ctx)` picks a
  template and fills its slots (`{He} {move} to {place}.`) from `ctx` or from the word banks (`_WORDS`).
- `_Choice` (a weighted table), `_with_forms` (capitalised and with-article forms), `_paragraphs`.
- Facts: `_TOPICS` (each topic's rows and phrasings), `fact_statement`, `fact_qa`, `science_qa`.

The underscore names are shared with documents.py, chat.py and problems.py and no further: they are the
inside of one generator, not an API. Same determinism rule as there: no set is iterated, and
only a `random.Random` seeded from a string is drawn from.

Deliberately NOT here: any document, conversation or word problem (documents.py, chat.py, problems.py), and
any word or fact (world.py).
"""

import bisect
import itertools
import random
from types import MappingProxyType

from nanochat.synthetic import world as W
from nanochat.synthetic.world import article, cap, number_word, plural

# -----------------------------------------------------------------------------
# The grammar engine: templates are str.format strings whose slots are filled on demand.

_HE = {"he": "he", "him": "him", "his": "his", "himself": "himself"}
_SHE = {"he": "she", "him": "her", "his": "her", "himself": "herself"}
_ME = {"he": "I", "him": "me", "his": "my", "himself": "myself"}


def _bank(seq, field=None):
    """A slot filler drawing uniformly from `seq` (or from column `field` of a table of rows)."""
    seq = tuple(seq) if field is None else tuple(row[field] for row in seq)
    n = len(seq)
    return lambda g: seq[int(g.rand() * n)]


_ANIMAL_NAMES = tuple(r[0] for r in W.ANIMALS)
_PLURAL_OF = {kind: tuple(plural(w) for w in bank) for kind, bank in
              (("object", W.OBJECTS), ("food", W.FOODS), ("animal", _ANIMAL_NAMES))}
_NAMES = W.FEMALE_NAMES + W.MALE_NAMES
# Slot name -> how to invent a value. `{x2}` is a second, independent `{x}`; `{a_x}` is `{x}` with its
# article; `{X}` is `{x}` capitalised (see _Slots).
_WORDS = {
    "object": _bank(W.OBJECTS), "objects": _bank(_PLURAL_OF["object"]), "food": _bank(W.FOODS),
    "foods": _bank(_PLURAL_OF["food"]), "animal": _bank(_ANIMAL_NAMES), "animals": _bank(_PLURAL_OF["animal"]),
    "adj": _bank(W.ADJECTIVES), "trait": _bank(W.TRAITS), "feeling": _bank(W.FEELINGS),
    "weather": _bank(W.WEATHER), "view": _bank(W.VIEWS), "color": _bank(W.COLORS), "adverb": _bank(W.ADVERBS),
    "place": _bank(W.PLACES), "town": _bank(W.TOWNS), "scenery": _bank(W.SCENERY),
    "act": _bank(W.ACTIONS, 0), "acted": _bank(W.ACTIONS, 1), "do": _bank(W.ACTIVITIES, 0),
    "did": _bank(W.ACTIVITIES, 1), "move": _bank(W.MOVES), "say": _bank(W.SAY), "greet": _bank(W.GREETINGS),
    "name": _bank(_NAMES), "surname": _bank(W.SURNAMES), "relative": _bank(W.RELATIVES), "time": _bank(W.TIMES),
    "hobby": _bank(W.HOBBIES), "instrument": _bank(W.INSTRUMENTS), "clothing": _bank(W.CLOTHES),
    "vehicle": _bank(W.VEHICLES), "subject": _bank(W.SUBJECTS), "material": _bank(W.MATERIALS),
    "job": _bank(W.PROFESSIONS, 0), "weekday": _bank(W.DAYS), "month": _bank(W.MONTHS, 0),
    "season": _bank(W.SEASONS), "lesson": _bank(W.LESSONS), "contest": _bank(W.CONTESTS),
    "few": _bank(number_word(i) for i in range(2, 10)), "num": _bank(str(i) for i in range(2, 41)),
    "year": _bank(str(y) for y in range(1890, 2025)), "date": _bank(str(d) for d in range(1, 29)),
}


class _Slots(dict):
    """The namespace a template is formatted with: a read-only context (the hero's name, the country of
    this article, ...) plus words invented on first use and then remembered, so `{object}` names the same
    thing twice within one sentence. The context is looked up, not copied: copying it for every sentence
    cost ~10% of the generation time."""

    __slots__ = ("g", "ctx")

    def __init__(self, g, ctx):
        self.g, self.ctx = g, ctx

    def __missing__(self, key):
        value = self.ctx.get(key)
        if value is None:
            make = _WORDS.get(key)  # the common case: a plain word-bank slot
            if make is not None:
                value = make(self.g)
            elif key[0].isupper():
                value = cap(self[key[0].lower() + key[1:]])
            elif key.startswith("a_"):
                value = article(self[key[2:]])
            else:
                value = _WORDS[key.rstrip("0123456789")](self.g)
        self[key] = value
        return value


_NO_CONTEXT = MappingProxyType({})


class _Gen:
    """A random.Random plus the few draws the grammar needs. `seq[int(random() * len)]` is used instead of
    rng.choice because it is ~2x faster, and generation speed is a requirement (>= 5 MB/s)."""

    def __init__(self, key):
        self.rng = random.Random(key)  # str seed -> SHA-512 inside random: independent of PYTHONHASHSEED
        self.rand = self.rng.random

    def pick(self, seq):
        return seq[int(self.rand() * len(seq))]

    def randint(self, lo, hi):
        return lo + int(self.rand() * (hi - lo + 1))

    def chance(self, p):
        return self.rand() < p

    def sample(self, seq, k):
        return self.rng.sample(seq, min(k, len(seq)))

    def fill(self, template, ctx=_NO_CONTEXT):
        return template.format_map(_Slots(self, ctx))

    def say(self, templates, ctx=_NO_CONTEXT):
        return templates[int(self.rand() * len(templates))].format_map(_Slots(self, ctx))


class _Choice:
    """A weighted table: calling it with a _Gen returns an item with probability proportional to its weight."""

    def __init__(self, *pairs):
        self.items = tuple(item for item, _ in pairs)
        self.cumulative = tuple(itertools.accumulate(weight for _, weight in pairs))

    def __call__(self, g):
        return self.items[bisect.bisect(self.cumulative, g.rand() * self.cumulative[-1])]


def _with_forms(ctx, keys=None):
    """Add the capitalised (`Name`) and with-article (`a_kind`, `A_kind`) forms of string fields (all of them,
    or just `keys`), so templates find them directly: before this, deriving them in _Slots.__missing__ was a
    quarter of all slot look-ups in a profile of the document stream."""
    out = dict(ctx)
    for key in keys or ctx:
        value = ctx[key]
        if isinstance(value, str):
            out[key[0].upper() + key[1:]] = cap(value)
            out["a_" + key] = a = article(value)
            out["A_" + key] = cap(a)
    return out


def _paragraphs(g, sentences, lo=2, hi=5):
    """Group sentences into paragraphs of random size: varied layout is part of the variety."""
    out, i = [], 0
    while i < len(sentences):
        n = g.randint(lo, hi)
        out.append(" ".join(sentences[i:i + n]))
        i += n
    return "\n\n".join(out)


# -----------------------------------------------------------------------------
# Facts: every row of the world table becomes a dict of fields, and each "aspect" of it has several
# statement phrasings and several (questions, answers) pairs. Documents state facts; chats ask them.

def _country_rows():
    keys = ("country", "capital", "continent", "language", "currency")
    return tuple(dict(zip(keys, r)) for r in W.COUNTRIES)


def _animal_rows():
    meaning = {"herbivore": "only plants", "carnivore": "meat", "omnivore": "both plants and animals"}
    rows = []
    for name, cls, food, home, diet, sound, legs in W.ANIMALS:
        rows.append({"animal": name, "animals": plural(name), "cls": cls, "clss": plural(cls), "food": food,
                     "home": home, "diet": diet, "diet_meaning": meaning.get(diet), "sound": sound,
                     "legs": None if legs is None else ("no" if legs == "0" else number_word(int(legs)))})
    return tuple(rows)


def _planet_rows():
    names = [r[0] for r in W.PLANETS]
    return tuple({"planet": p, "order": W.ORDINALS[int(o)], "kind": k, "note": note,
                  "next": names[i + 1] if i + 1 < len(names) else None}
                 for i, (p, o, k, note) in enumerate(W.PLANETS))


def _calendar_rows():
    rows = []
    for i, day in enumerate(W.DAYS):
        rows.append({"day": day, "next": W.DAYS[(i + 1) % 7], "prev": W.DAYS[i - 1]})
    months = [m for m, _ in W.MONTHS]
    for i, (month, days) in enumerate(W.MONTHS):
        days = "28 days, or 29 in a leap year" if month == "February" else f"{days} days"
        rows.append({"month": month, "days": days, "order": W.ORDINALS[i + 1], "next": months[(i + 1) % 12],
                     "prev": months[i - 1]})
    return tuple(rows)


_ROWS = {
    "country": _country_rows(), "animal": _animal_rows(), "planet": _planet_rows(), "calendar": _calendar_rows(),
    "color": tuple({"thing": t, "color": c} for t, c in W.THING_COLORS),
    "shape": tuple({"shape": s, "sides": number_word(int(n))} for s, n in W.SHAPES),
    "thing": tuple({"thing": t, "cat": c, "purpose": p} for t, c, p in W.DEFINED_THINGS),
    "job": tuple({"job": j, "does": d} for j, d in W.PROFESSIONS),
}
# topic -> (rows, aspects). An aspect is (field, Phrasing) and applies to the rows where that field is set
# (not every country has a single main language in the table, not every animal a sound).
_TOPICS = {topic: (tuple(_with_forms(row) for row in _ROWS[topic]), tuple(W.FACTS[topic].items()))
           for topic in W.FACTS}
_TOPIC_NAMES = tuple(_TOPICS)


def _fact_row(g, topic):
    """A random row of a topic, plus a random aspect of it that the row has a value for."""
    rows, aspects = _TOPICS[topic]
    row = g.pick(rows)
    usable = [a for a in aspects if row.get(a[0]) is not None]
    return row, g.pick(usable)


def fact_statement(g, topic=None):
    row, (_, phrasing) = _fact_row(g, topic or g.pick(_TOPIC_NAMES))
    return g.say(phrasing.statements, row)


def fact_qa(g, topic=None):
    """(question, answer) about a random fact; answers come from the same table as the statements."""
    row, (_, phrasing) = _fact_row(g, topic or g.pick(_TOPIC_NAMES))
    questions, answers = g.pick(phrasing.qa)
    return g.say(questions, row), g.say(answers, row)


def science_qa(g):
    question, answer, _ = g.pick(W.SCIENCE)
    return question, answer


def science_statement(g):
    return g.pick(g.pick(W.SCIENCE)[2])
