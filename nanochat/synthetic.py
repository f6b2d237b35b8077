"""
The embedded corpus: a small deterministic generator of pretraining text, chat conversations and
GSM8K-style math word problems, so every stage of the pipeline can run offline on data it makes itself.

- `generate_documents(seed)`: an endless stream of English documents (stories, encyclopedia-style
  articles, how-to guides, letters, diaries, dialogues, lists, Q&A, worked arithmetic, math problems,
  chat transcripts, poems). Sentences come from a compositional grammar: templates with named slots
  (`{He} {move} to {place}.`) filled from the word banks in `synthetic_world.py`.
- `write_embedded_corpus(data_dir)`: writes those documents as parquet shards in the real format.
- `generate_conversations(seed, n)` / `generate_math_problems(seed, n)`: chat and GSM8K data.

All facts come from the one table in `synthetic_world.py`, and documents and chat answers phrase the same
facts, so a model trained on the documents can learn to answer the chat questions.

Determinism: each stream owns a `random.Random` seeded from a string (hashed with SHA-512 by the random
module, so independent of PYTHONHASHSEED); no code here iterates over a set or uses the global RNG.

Deliberately NOT here: natural-language quality beyond "reads like simple English", facts outside the
table, tokenization, and any downloading. The text is toy data for toy models, not a benchmark.
"""

import bisect
import itertools
import operator
import os
import random
import re
from collections.abc import Iterator
from types import MappingProxyType

from nanochat import synthetic_world as W
from nanochat.common import atomic_path
from nanochat.synthetic_world import article, cap, number_word, plural

__all__ = ["generate_documents", "write_embedded_corpus", "generate_conversations", "generate_math_problems"]

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


# -----------------------------------------------------------------------------
# Stories. A story is an arc (setup, middle, resolution) padded with generic events, descriptions and
# dialogue, all about one hero and one friend. The same frames, told with "I", make diaries and letters.

_ARC_NAMES = tuple(W.ARCS)


def _character(g, first_person=False):
    """Context for the hero of a story: name, pronouns, a friend with pronouns, and story props."""
    if first_person:
        ctx = dict(_ME, name="I", kind="person")
    elif g.chance(0.2):  # an animal hero
        ctx = dict(_HE if g.chance(0.5) else _SHE, name=g.pick(W.PET_NAMES),
                   kind=g.pick(("little", "young", "clever", "brave", "old")) + " " + g.pick(_ANIMAL_NAMES))
    else:
        female = g.chance(0.5)
        ctx = dict(_SHE if female else _HE, name=g.pick(W.FEMALE_NAMES if female else W.MALE_NAMES),
                   kind=g.pick(("girl", "young woman", "old woman") if female else ("boy", "young man", "old man"))
                   if g.chance(0.6) else g.pick(W.PROFESSIONS)[0])
    fp = _SHE if g.chance(0.5) else _HE
    ctx.update(friend=g.pick(W.FEMALE_NAMES if fp is _SHE else W.MALE_NAMES), fhe=fp["he"], fhim=fp["him"],
               fhis=fp["his"], town=g.pick(W.TOWNS), item=g.pick(W.OBJECTS), goal=g.pick(W.PLACES),
               rel=g.pick(W.RELATIVES), beast=g.pick(_ANIMAL_NAMES), contest=g.pick(W.CONTESTS),
               the_season="the " + g.pick(W.SEASONS))
    return _with_forms(ctx, ("name", "he", "his", "friend"))  # the fields most templates capitalise


def _quote(g, ctx):
    """One line of dialogue, attached to a speaker in one of several ways."""
    line = g.say(W.LINES, ctx)
    speaker = ctx["name"] if g.chance(0.5) else ctx["friend"]
    say = g.pick(W.SAY)
    form = g.rand()
    if form < 0.4 or speaker == "I":
        who = "I " + say if speaker == "I" else say + " " + speaker
        return f'"{line}" {who}.' if line[-1] in "?!" else f'"{line[:-1]}," {who}.'
    if form < 0.7:
        return f'{speaker} {say}, "{line}"'
    return f'"{line}"'


def _story_sentences(g, ctx, length):
    """Arc setup, `length` sentences of middle (events, dialogue, description), resolution, maybe a moral.
    An exact repeat of an earlier sentence is dropped: long stories would otherwise echo themselves."""
    arc = W.ARCS[ctx.get("arc") or g.pick(_ARC_NAMES)]
    out = [g.say(arc.setup, ctx)]
    seen = set(out)  # membership tests only, never iterated: order cannot depend on the hash seed
    for _ in range(length):
        r = g.rand()
        if r < 0.25:
            s = _quote(g, ctx)
        elif r < 0.35:
            s = g.say(arc.middle, ctx)
        elif r < 0.42:
            s = g.say(W.INTRO, ctx)
        else:
            s = g.say(W.EVENTS, ctx)
        if s not in seen:
            seen.add(s)
            out.append(s)
    out.append(g.say(arc.resolution, ctx))
    if g.chance(0.6):
        out.append(g.say(W.ENDINGS, ctx))
    return out


def _title(g, ctx):
    return g.fill(g.pick(W.ARCS[ctx["arc"]].titles), {k: v.title() for k, v in ctx.items() if isinstance(v, str)})


def story(g, ctx=None, length=None, openings=W.OPENINGS):
    ctx = ctx or _character(g)
    ctx.setdefault("arc", g.pick(_ARC_NAMES))
    length = length if length is not None else int(2 + 45 * g.rand() ** 2)  # mostly short, some long
    body = [g.say(openings, ctx)] + _story_sentences(g, ctx, length)
    text = _paragraphs(g, body, 2, 6)
    if g.chance(0.4):
        text = _title(g, ctx) + "\n\n" + text
    return text


def diary(g):
    ctx = _character(g, first_person=True)
    head = g.pick(("{Weekday}, {month} {date}", "Dear Diary,", "{Month} {date}, {year}", "Diary, {weekday}"))
    body = [g.say(("Today was {a_adj} day.", "I woke up early because it was {weather} outside.", "I don't "
                   "know where to begin.", "So much happened today."), ctx)]
    body += _story_sentences(g, ctx, int(2 + 25 * g.rand() ** 2))
    body.append(g.say(("I'm going to sleep now.", "Tomorrow I want to {act} the {object}.", "I feel "
                       "{feeling}.", "More tomorrow."), ctx))
    return g.fill(head) + "\n\n" + _paragraphs(g, body, 2, 5)


def letter(g):
    ctx = _character(g, first_person=True)
    opening = g.pick(("Dear {friend},", "Hi {friend},", "Dearest {friend},", "Hello {friend},"))
    body = [g.say(("I hope you are well.", "Thank you for your last letter.", "It has been a long time since "
                   "I wrote to you.", "How is everything in {town}?"), ctx)]
    body += _story_sentences(g, ctx, int(1 + 20 * g.rand() ** 2))
    body.append(g.say(("Please write back soon.", "Say hello to your {relative} for me.", "I miss you.",
                       "Let me know when you can visit."), ctx))
    closing = g.pick(("Love,", "Best wishes,", "Yours,", "Warmly,", "See you soon,", "Yours sincerely,"))
    return f"{g.fill(opening, ctx)}\n\n{_paragraphs(g, body, 2, 4)}\n\n{closing}\n{_WORDS['name'](g)}"


# -----------------------------------------------------------------------------
# Expository documents: encyclopedia-style articles, how-to guides, lists, Q&A, poems.

def encyclopedia(g):
    """An article about one country, animal or planet, or a page of facts on one theme."""
    topic = g.pick(("country", "country", "animal", "animal", "planet", "color", "calendar", "shape", "thing",
                    "job", "science"))
    if topic == "science":
        facts = [g.pick(f[2]) for f in g.sample(W.SCIENCE, g.randint(1, 8))]
        return (g.pick(("Science facts", "Did you know?", "Facts about the world", "")) + "\n\n" +
                _paragraphs(g, facts, 1, 4)).lstrip()
    if topic not in W.ARTICLE_FILLER:
        facts = [fact_statement(g, topic) for _ in range(g.randint(1, 9))]
        return _paragraphs(g, facts, 1, 5)
    rows, aspects = _TOPICS[topic]
    sections = []
    for ctx in g.sample(rows, 1 if g.chance(0.6) else g.randint(2, 6)):
        usable = [a for a in aspects if ctx.get(a[0]) is not None]
        sentences = [g.say(a[1].statements, ctx) for a in g.sample(usable, len(usable))]
        for _ in range(g.randint(0, 3)):
            sentences.insert(g.randint(1, len(sentences)), g.say(W.ARTICLE_FILLER[topic], ctx))
        title = cap(ctx[topic]) + "\n\n" if g.chance(0.6) else ""
        sections.append(title + _paragraphs(g, sentences, 2, 5))
    return "\n\n".join(sections)


_STEP_WORDS = ("Next", "Then", "After that", "Now")


def howto(g):
    task, steps = g.pick(W.HOWTO)
    title = g.pick((f"How to {task}", f"How to {task}:", f"Guide: how to {task}", f"{cap(task)} in "
                    f"{number_word(len(steps))} steps"))
    intro = g.pick((f"Here is a simple way to {task}.", f"Learning to {task} is easier than it looks.",
                    f"Many people ask how to {task}. Follow these steps.", ""))
    style = g.rand()
    if style < 0.4:
        body = "\n".join(f"{i + 1}. {cap(s)}." for i, s in enumerate(steps))
    elif style < 0.6:
        body = "\n".join(f"- {cap(s)}." for s in steps)
    else:
        parts = [f"{g.pick(_STEP_WORDS) if 0 < i < len(steps) - 1 else ('First' if i == 0 else 'Finally')}, "
                 f"{s}." for i, s in enumerate(steps)]
        body = _paragraphs(g, parts, 2, 4)
    outro = g.pick(("That's it!", f"With a little practice, you will be able to {task} in no time.", "", ""))
    return "\n\n".join(p for p in (title, intro, body, outro) if p)


def _grounded_list(g):
    """A list whose items are true of the world table, with its heading."""
    kind = g.randint(0, 5)
    if kind == 0:
        cont = g.pick(W.CONTINENTS[:1] + W.CONTINENTS[2:])  # no countries listed for Antarctica
        items = [cap(r[0]) for r in W.COUNTRIES if r[2] == cont]
        return f"Some countries in {cont}", g.sample(items, g.randint(2, len(items)))
    if kind == 1:
        diet = g.pick(("herbivore", "carnivore", "omnivore"))
        items = [plural(r[0]) for r in W.ANIMALS if r[4] == diet]
        return f"Animals that are {plural(diet)}", g.sample(items, g.randint(2, 7))
    if kind == 2:
        return "The planets in order from the Sun", [p[0] for p in W.PLANETS]
    if kind == 3:
        return "The days of the week", list(W.DAYS)
    if kind == 4:
        n = g.pick(("30", "31"))
        return f"Months with {n} days", [m for m, d in W.MONTHS if d == n]
    cls = g.pick(("mammal", "bird", "reptile", "insect", "fish"))
    return f"Some {plural(cls)}", g.sample([plural(r[0]) for r in W.ANIMALS if r[1] == cls], g.randint(2, 6))


def list_doc(g):
    r = g.rand()
    if r < 0.4:
        head, items = _grounded_list(g)
    elif r < 0.6:
        head = g.pick(("Shopping list", "Things to buy", "Groceries for the week"))
        items = [f"{g.randint(2, 6)} {g.pick(_PLURAL_OF['food'])}" for _ in range(g.randint(2, 9))]
    elif r < 0.8:
        head = g.fill("Things to do on {weekday}")
        items = [g.fill("{act} the {object}") for _ in range(g.randint(2, 8))]
    else:
        head = g.pick(("Packing list", "What to bring", "Things I need for the trip"))
        items = [article(g.pick(W.CLOTHES)) for _ in range(g.randint(2, 7))]
    numbered = g.chance(0.4)
    lines = [f"{i + 1}. {cap(x)}" if numbered else f"- {cap(x)}" for i, x in enumerate(items)]
    if g.chance(0.3):  # lists also appear inline in prose
        return f"{head}: {', '.join(items[:-1])} and {items[-1]}." if len(items) > 1 else f"{head}: {items[0]}."
    return head + ":\n" + "\n".join(lines)


def _any_qa(g):
    r = g.rand()
    if r < 0.12:
        return g.pick(W.IDENTITY_QA)
    if r < 0.3:
        return science_qa(g)
    return fact_qa(g)


def qa_doc(g):
    q_label, a_label = g.pick((("Q:", "A:"), ("Question:", "Answer:"), ("Q.", "A.")))
    pairs = [_any_qa(g) for _ in range(g.randint(1, 16))]
    head = g.pick(("Frequently asked questions", "Quiz", "Test your knowledge", "", "", ""))
    body = "\n\n".join(f"{q_label} {q}\n{a_label} {a}" for q, a in pairs)
    return (head + "\n\n" + body).lstrip()


def poem(g, topic=None):
    topic = topic or g.pick(W.SCENERY + ("moon", "sun", "snow", "rain", "wind", "night", "morning"))
    ctx = {"topic": topic}
    lines = []
    for _ in range(g.randint(1, 3)):
        for _ in range(2):
            # endings that repeat the topic ("the sun ... in the sun") read badly, so skip them
            a, b = g.sample([e for e in g.pick(W.RHYMES) if topic not in e], 2)
            lines.append(f"{g.say(W.POEM_OPENERS, ctx)} {a},")
            lines.append(f"{g.say(W.POEM_OPENERS, ctx)} {b}.")
        lines.append("")
    return "\n".join(lines).strip()


def poem_doc(g):
    title = g.pick(("The {Topic}", "A Song of the {Topic}", "{Topic}", "Untitled"))
    topic = g.pick(W.SCENERY)
    return g.fill(title, {"topic": topic}) + "\n\n" + poem(g, topic)


# -----------------------------------------------------------------------------
# Arithmetic: worked in prose for the documents, and GSM8K-style word problems with calculator annotations.

def arithmetic_doc(g):
    out = []
    for _ in range(g.randint(1, 8)):
        k = g.randint(0, 5)
        a, b = g.randint(11, 89), g.randint(11, 89)
        if k == 0:
            out.append(f"To add {a} and {b}, add the tens first: {a // 10 * 10} + {b // 10 * 10} = "
                       f"{a // 10 * 10 + b // 10 * 10}. Then add the ones: {a % 10} + {b % 10} = {a % 10 + b % 10}. "
                       f"Together that makes {a + b}, so {a} + {b} = {a + b}.")
        elif k == 1:
            hi, lo = max(a, b), min(a, b)
            out.append(f"{hi} - {lo} = {hi - lo}. You can check a subtraction by adding back: "
                       f"{hi - lo} + {lo} = {hi}.")
        elif k == 2:
            n, m = g.randint(2, 5), g.randint(2, 12)
            out.append(f"{n} times {m} means adding {m} {number_word(n)} times: {' + '.join([str(m)] * n)} = "
                       f"{n * m}. So {n} * {m} = {n * m}.")
        elif k == 3:
            n, m = g.randint(2, 9), g.randint(2, 12)
            out.append(g.fill(f"If {n * m} {{objects}} are shared equally among {n} friends, each friend gets "
                              f"{n * m} / {n} = {m}, because {n} times {m} is {n * m}."))
        elif k == 4:
            x, y = g.randint(0, 12), g.randint(0, 12)
            out.append(f"{cap(number_word(x))} plus {number_word(y)} is {number_word(x + y)}.")
        else:
            out.append(g.fill(f"{{Name}} had {a} {{objects}} and found {b} more, so now there are "
                              f"{a} + {b} = {a + b} of them."))
    return _paragraphs(g, out, 1, 4)


class _Person:
    """A named character for a math problem, with pronouns (p.name, p.he, p.He, p.his, ...)."""

    def __init__(self, g):
        female = g.chance(0.5)
        p = _SHE if female else _HE
        self.name = g.pick(W.FEMALE_NAMES if female else W.MALE_NAMES)
        self.he, self.him, self.his = p["he"], p["him"], p["his"]
        self.He, self.His = cap(self.he), cap(self.his)


class _Reject(Exception):
    """Raised when random numbers break a math-problem constraint; the caller draws again."""


def _calc(a, op, b):
    """('3*4=<<3*4=12>>12', 12): one GSM8K-style calculator step, checked against the constraints."""
    value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else -1}[op]
    if value < 0 or value >= 1000 or (op == "/" and a % b != 0):
        raise _Reject
    expr = f"{a}{op}{b}"
    return f"{expr}=<<{expr}={value}>>{value}", value


def _m_shopping(g, p):
    items, n, price = plural(g.pick(W.SHOP)), g.randint(2, 12), g.randint(2, 25)
    s1, total = _calc(n, "*", price)
    if g.chance(0.5):
        q = f"{p.name} buys {n} {items} that cost ${price} each. How much does {p.he} spend in dollars?"
        return q, [f"{p.name} spends {s1} dollars on {items}."], total
    bill = next(b for b in (20, 50, 100, 200, 500) if b >= total)
    s2, change = _calc(bill, "-", total)
    q = (f"{p.name} buys {n} {items} at ${price} each and pays with ${bill}. How much change does {p.he} "
         f"get back?")
    return q, [f"The {items} cost {s1} dollars.", f"So {p.his} change is {s2} dollars."], change


def _m_two_items(g, p):
    pl1, pl2 = (plural(x) for x in g.sample(W.SHOP, 2))
    a, pa, b, pb = g.randint(2, 9), g.randint(2, 20), g.randint(2, 9), g.randint(2, 20)
    s1, t1 = _calc(a, "*", pa)
    s2, t2 = _calc(b, "*", pb)
    s3, total = _calc(t1, "+", t2)
    q = (f"At the market, {p.name} buys {a} {pl1} for ${pa} each and {b} {pl2} for ${pb} each. How much "
         f"does {p.he} spend altogether?")
    return q, [f"The {pl1} cost {s1} dollars.", f"The {pl2} cost {s2} dollars.",
               f"Altogether {p.he} spends {s3} dollars."], total


def _m_sharing(g, p):
    k, m, e = g.randint(2, 9), g.randint(2, 15), g.randint(0, 12)
    thing = g.pick(("cookies", "marbles", "stickers", "grapes", "crayons", "strawberries", "stamps"))
    if e == 0:
        s1, each = _calc(k * m, "/", k)
        q = f"{p.name} has {k * m} {thing} and shares them equally among {k} friends. How many does each get?"
        return q, [f"Each friend gets {s1} {thing}."], each
    s1, rest = _calc(k * m + e, "-", e)
    s2, each = _calc(rest, "/", k)
    q = (f"{p.name} has {k * m + e} {thing}. {p.He} keeps {e} for {p.him}self and shares the rest equally "
         f"among {k} friends. How many {thing} does each friend get?")
    return q, [f"{p.He} shares {s1} {thing}.", f"Each friend gets {s2} {thing}."], each


def _m_speed(g, p):
    vehicle = g.pick(("car", "train", "bus", "bicycle", "boat"))
    s, h = g.randint(2, 9) * 10 if vehicle != "bicycle" else g.randint(8, 20), g.randint(2, 6)
    s1, d = _calc(s, "*", h)
    if g.chance(0.5):
        q = f"A {vehicle} travels at {s} kilometers per hour for {h} hours. How far does it go?"
        return q, [f"It goes {s1} kilometers."], d
    s2, h2 = g.randint(2, 9) * 10, g.randint(2, 4)
    s3, d2 = _calc(s2, "*", h2)
    s4, total = _calc(d, "+", d2)
    q = (f"{p.name} drives at {s} km per hour for {h} hours, then at {s2} km per hour for {h2} more hours. "
         f"How many kilometers does {p.he} drive in total?")
    return q, [f"First {p.he} drives {s1} km.", f"Then {p.he} drives {s3} km.", f"In total {p.he} drives "
               f"{s4} km."], total


def _m_ages(g, p):
    other = _Person(g)
    a, b, c = g.randint(3, 40), g.randint(2, 30), g.randint(2, 20)
    s1, age = _calc(a, "+", b)
    s2, later = _calc(age, "+", c)
    q = f"{p.name} is {a} years old. {other.name} is {b} years older than {p.name}. How old will {other.name} be " \
        f"in {c} years?"
    return q, [f"{other.name} is {s1} years old now.", f"In {c} years {other.he} will be {s2} years old."], later


def _m_saving(g, p):
    s, w = g.randint(2, 25), g.randint(2, 12)
    s1, total = _calc(s, "*", w)
    t = g.randint(1, total)
    s2, left = _calc(total, "-", t)
    q = (f"{p.name} saves ${s} every week for {w} weeks. Then {p.he} spends ${t} on a present. How much money "
         f"does {p.he} have left?")
    return q, [f"{p.He} saves {s1} dollars.", f"After buying the present {p.he} has {s2} dollars left."], left


def _m_goal(g, p):
    s, w, h = g.randint(3, 20), g.randint(2, 10), g.randint(0, 60)
    thing = g.pick(("bike", "guitar", "video game", "pair of skates", "tent", "telescope"))
    s1, need = _calc(s * w + h, "-", h)
    s2, weeks = _calc(need, "/", s)
    q = (f"A {thing} costs ${s * w + h}. {p.name} has already saved ${h} and saves ${s} more each week. How many "
         f"weeks will it take {p.him} to have enough?")
    return q, [f"{p.He} still needs {s1} dollars.", f"That takes {s2} weeks."], weeks


def _m_recipe(g, p):
    f, k = g.randint(2, 6), g.randint(2, 8)
    have = f * k + g.randint(0, 20)
    s1, used = _calc(f, "*", k)
    s2, left = _calc(have, "-", used)
    q = (f"A cake recipe needs {f} cups of flour. {p.name} bakes {k} cakes and started with {have} cups of "
         f"flour. How many cups are left?")
    return q, [f"{p.He} uses {s1} cups of flour.", f"{p.He} has {s2} cups left."], left


def _m_reading(g, p):
    r, d = g.randint(5, 30), g.randint(2, 9)
    pages = r * d + g.randint(0, 120)
    s1, read = _calc(r, "*", d)
    s2, left = _calc(pages, "-", read)
    q = f"A book has {pages} pages. {p.name} reads {r} pages a day for {d} days. How many pages are left to read?"
    return q, [f"{p.He} reads {s1} pages.", f"There are {s2} pages left."], left


def _m_cookies(g, p):
    t, c, bag = g.randint(2, 6), g.randint(6, 24), g.randint(2, 6)
    total = t * c
    e = total % bag + bag * g.randint(0, 2)
    if e >= total:
        raise _Reject
    s1, _ = _calc(t, "*", c)
    s2, rest = _calc(total, "-", e)
    s3, bags = _calc(rest, "/", bag)
    q = (f"{p.name} bakes {t} trays of cookies with {c} cookies on each tray. {p.He} eats {e} cookies and packs "
         f"the rest into bags of {bag}. How many bags does {p.he} fill?")
    return q, [f"{p.He} bakes {s1} cookies.", f"{s2} cookies are left to pack.", f"That fills {s3} bags."], bags


def _m_buses(g, p):
    c, s, cap_ = g.randint(2, 8), g.randint(10, 30), g.pick((10, 20, 25, 30, 40, 50))
    s1, kids = _calc(c, "*", s)
    s2, buses = _calc(kids, "/", cap_)
    q = (f"A school trip has {c} classes with {s} students each. Each bus holds {cap_} students, and every bus "
         f"is full. How many buses are needed?")
    return q, [f"There are {s1} students.", f"They need {s2} buses."], buses


def _m_collecting(g, p):
    a, b, d = g.randint(0, 100), g.randint(2, 15), g.randint(2, 14)
    thing = g.pick(("stickers", "stamps", "shells", "coins", "pictures", "badges"))
    s1, got = _calc(b, "*", d)
    s2, total = _calc(a, "+", got)
    q = f"{p.name} has {a} {thing}. {p.He} gets {b} more every day for {d} days. How many {thing} does {p.he} have?"
    return q, [f"{p.He} gets {s1} new {thing}.", f"Now {p.he} has {s2} {thing}."], total


def _m_wages(g, p):
    r, h, d = g.randint(5, 20), g.randint(2, 8), g.randint(2, 6)
    s1, per_day = _calc(r, "*", h)
    s2, total = _calc(per_day, "*", d)
    q = f"{p.name} earns ${r} an hour. {p.He} works {h} hours a day for {d} days. How much does {p.he} earn?"
    return q, [f"Each day {p.he} earns {s1} dollars.", f"In {d} days {p.he} earns {s2} dollars."], total


def _m_legs(g, p):
    n, m = g.randint(2, 40), g.randint(2, 40)
    s1, a = _calc(n, "*", 2)
    s2, b = _calc(m, "*", 4)
    s3, total = _calc(a, "+", b)
    q = f"A farm has {n} chickens and {m} cows. How many legs do the animals have in total?"
    return q, [f"Chickens have 2 legs each, so they have {s1} legs.", f"Cows have 4 legs each, so they have "
               f"{s2} legs.", f"In total there are {s3} legs."], total


_MATH_FRAMES = (_m_shopping, _m_two_items, _m_sharing, _m_speed, _m_ages, _m_saving, _m_goal, _m_recipe, _m_reading,
                _m_cookies, _m_buses, _m_collecting, _m_wages, _m_legs)


def math_problem(g):
    """{"question", "answer"} in GSM8K format: worked steps with <<expr=value>> notes, then '#### value'."""
    while True:
        try:
            question, steps, result = g.pick(_MATH_FRAMES)(g, _Person(g))
            break
        except _Reject:
            continue
    return {"question": question, "answer": "\n".join(steps) + f"\n#### {result}"}


_ANNOTATION = re.compile(r"<<[^>]*>>")


def math_doc(g):
    labels = g.pick((("Question:", "Answer:"), ("Problem:", "Solution:"), ("Q:", "A:")))
    parts = []
    for _ in range(g.randint(1, 4)):
        p = math_problem(g)
        parts.append(f"{labels[0]} {p['question']}\n{labels[1]} {_ANNOTATION.sub('', p['answer'])}")
    return "\n\n".join(parts)


# -----------------------------------------------------------------------------
# Conversations. Each exchange maker returns (user, assistant, follow_up) where follow_up is None or a
# function making the next exchange that refers back to this one ("What about Japan?", "Double that.").

def _ex_fact(g, topic=None):
    topic = topic or g.pick(_TOPIC_NAMES)
    row, aspect = _fact_row(g, topic)
    qa = g.pick(aspect[1].qa)
    return g.say(qa[0], row), g.say(qa[1], row), _fact_follow_up(topic, row, aspect, qa, (aspect[0],))


def _fact_follow_up(topic, row, aspect, qa, asked):
    """Either a question about another aspect of the same subject ("Which continent is it in?"), or, after a
    question asking for the aspect itself, the same question about another subject ("What about Japan?").
    `asked` holds the aspects of this subject already asked about, so none is asked twice."""
    rows, aspects = _TOPICS[topic]
    forward = qa is aspect[1].qa[0]

    def follow(g):
        others = [a for a in aspects if a[0] not in asked and a[1].follow and row.get(a[0]) is not None]
        if others and (g.chance(0.6) or not forward):
            field, phrasing = nxt = g.pick(others)
            return (phrasing.follow, g.say(phrasing.qa[0][1], row),
                    _fact_follow_up(topic, row, nxt, phrasing.qa[0], asked + (field,)))
        if not forward:
            return None
        other = g.pick([r for r in rows if r is not row and r.get(aspect[0]) is not None])
        subject = g.fill(W.SUBJECTS.get(topic, "{" + aspect[0] + "}"), other)
        question = g.pick(("What about {x}?", "And {x}?", "How about {x}?")).format(x=subject)
        return question, g.say(qa[1], other), _fact_follow_up(topic, other, aspect, qa, (aspect[0],))
    return follow


def _ex_identity(g):
    q, a = g.pick(W.IDENTITY_QA)
    return q, a, lambda g: _ex_identity(g)


def _ex_science(g):
    q, a = science_qa(g)
    return q, a, None


def _ex_greeting(g):
    q = g.pick(("Hi!", "Hello", "Hey there", "Good morning!", "Hi nanochat!", "Hello, how are you?", "hey"))
    a = g.pick(("Hello! How can I help you today?", "Hi! What would you like to talk about?", "Hello! I'm "
                "nanochat. What can I do for you?", "Hey! Ask me anything."))

    def follow(g):
        return ("How are you?", g.pick(("I'm doing well, thank you! What can I help you with?", "I'm a language "
                                        "model, so I don't have feelings, but I'm ready to help.")), None)
    return q, a, follow


def _ex_arithmetic(g, prev=None):
    if prev is None:
        op = g.pick("+-*/")
        a, b = g.randint(2, 99), g.randint(2, 99)
        if op == "*":
            b = g.randint(2, 12)
        elif op == "/":  # exact division only: build the dividend from the answer
            b = g.randint(2, 12)
            a = b * g.randint(2, 50)
        elif op == "-" and b > a:
            a, b = b, a
        word = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}[op]
        q = g.pick((f"What is {a} {op} {b}?", f"What's {a} {word} {b}?", f"Calculate {a} {op} {b}.",
                    f"{a} {op} {b} = ?"))
    else:
        a = prev
        op, b = g.pick((("*", g.randint(2, 5)), ("+", g.randint(1, 50)), ("-", g.randint(1, max(1, prev)))))
        q = {"*": f"Now multiply that by {b}.", "+": f"And if you add {b}?", "-": f"Subtract {b} from that."}[op]
    result = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
    ans = g.pick((f"{a} {op} {b} = {result}.", f"The answer is {result}.", f"{a} {op} {b} is {result}."))
    return q, ans, lambda g: _ex_arithmetic(g, result)


def _ex_definition(g):
    topic = g.pick(("thing", "job"))
    row, aspect = _fact_row(g, topic)
    questions, answers = g.pick(aspect[1].qa)
    example = ("{Name} had never seen {a_thing} quite like that one." if topic == "thing" else
               "{Name} has worked as {a_job} for {few} years.")

    def follow(g):
        return "Can you use it in a sentence?", "Sure: \"" + g.fill(example, row) + "\"", None
    return g.say(questions, row), g.say(answers, row), follow


_KIND_OPENINGS = tuple(t for t in W.OPENINGS if "{a_kind}" in t)  # openings that say who the hero is


def _ex_story(g):
    """A story on request; the request names something the story is really about."""
    ctx = _character(g)
    r = g.rand()
    if r < 0.25:
        subject, ctx["arc"] = f"a lost {ctx['item']}", "lost"
    elif r < 0.4:
        subject, ctx["arc"] = article(ctx["contest"]), "contest"
    elif r < 0.55:
        subject, ctx["arc"] = f"{article(ctx['beast'])} that needs a home", "friend"
    else:
        subject = g.pick((f"{article(ctx['kind'])} named {ctx['name']}", article(ctx["kind"])))
    q = g.pick((f"Tell me a short story about {subject}.", f"Can you write a story about {subject}?",
                f"Write a bedtime story about {subject}."))
    text = story(g, ctx, g.randint(1, 8), _KIND_OPENINGS)

    def follow(g):
        if g.chance(0.5):
            return ("What was the hero's name?", f"The hero of the story was {ctx['name']}.", None)
        return "Can you give it a title?", f"How about \"{_title(g, ctx)}\"?", None
    return q, text, follow


def _ex_poem(g, topic=None):
    topic = topic or g.pick(W.SCENERY + ("moon", "sun", "snow", "rain", "night"))
    q = g.pick((f"Write a short poem about the {topic}.", f"Can you write me a poem about the {topic}?",
                f"I'd love a little poem about the {topic}."))
    return q, poem(g, topic), lambda g: ("Another one, please.", poem(g, topic), None)


def _ex_advice(g):
    asks, tips = g.pick(W.ADVICE)
    chosen = g.sample(tips, g.randint(2, 4))
    if g.chance(0.5):
        a = "Here are a few ideas:\n" + "\n".join(f"- {cap(t)}." for t in chosen)
    else:
        a = f"You could {chosen[0]}. " + " ".join(f"It also helps to {t}." for t in chosen[1:])
    rest = [t for t in tips if t not in chosen]

    def follow(g):
        if rest and g.chance(0.6):
            return ("Can you give me one more tip?", f"Sure: {g.pick(rest)}.", None)
        return ("Thanks, that helps!", g.pick(("You're welcome! Good luck.", "Glad I could help!")), None)
    return g.pick(asks), a, follow


_EXCHANGES = _Choice((_ex_fact, 30), (_ex_identity, 10), (_ex_science, 8), (_ex_arithmetic, 14), (_ex_definition, 8),
              (_ex_story, 8), (_ex_poem, 5), (_ex_advice, 7), (_ex_greeting, 4))


def conversation(g):
    messages = []
    if g.chance(0.1):
        messages.append({"role": "system", "content": g.pick(W.SYSTEM_PROMPTS)})
    follow = None
    for turn in range(g.pick((1, 1, 1, 2, 2, 3, 4))):
        exchange = follow(g) if follow is not None and g.chance(0.7) else None
        if exchange is not None:
            user, assistant, follow = exchange
        elif turn == 0 and g.chance(0.1):
            user, assistant, follow = _ex_greeting(g)
        else:
            user, assistant, follow = _EXCHANGES(g)(g)
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": messages}


def chat_doc(g):
    """A conversation written out as a transcript, the way chat logs appear in web text."""
    user, bot = g.pick((("User", "Assistant"), ("Human", "nanochat"), ("Q", "A"), ("Me", "Bot")))
    label = {"user": user, "assistant": bot, "system": "System"}
    return "\n".join(f"{label[m['role']]}: {m['content']}" for m in conversation(g)["messages"])


def dialogue_doc(g):
    """A short scene written as a script: two characters talk, and sometimes quiz each other."""
    a, b = _Person(g).name, _Person(g).name
    ctx = _character(g)
    lines = []
    for i in range(g.randint(2, 12)):
        if g.chance(0.3):
            q, ans = _any_qa(g)
            lines += [f"{a}: {q}", f"{b}: {ans}"]
        else:
            lines.append(f"{a if i % 2 == 0 else b}: {g.say(W.LINES, ctx)}")
    head = g.fill(g.pick(("Scene: {place}, {time}.", "{a} and {b} talk at {place}.", "")), {"a": a, "b": b})
    return (head + "\n\n" + "\n".join(lines)).lstrip()


def snippet(g):
    """A one-sentence document: the short end of the length distribution."""
    r = g.rand()
    if r < 0.3:
        return g.pick(W.IDENTITY_STATEMENTS)
    return science_statement(g) if r < 0.5 else fact_statement(g)


# -----------------------------------------------------------------------------
# Public API

_DOCS = _Choice((story, 26), (encyclopedia, 12), (howto, 4), (letter, 5), (diary, 5), (dialogue_doc, 5), (chat_doc, 9),
         (qa_doc, 8), (list_doc, 5), (arithmetic_doc, 5), (math_doc, 7), (poem_doc, 4), (snippet, 5))


def _documents(key):
    g = _Gen(key)
    while True:
        if g.chance(0.1):  # a page that strings several pieces together: the long tail of document lengths
            yield "\n\n".join(_DOCS(g)(g) for _ in range(g.randint(2, 6)))
        else:
            yield _DOCS(g)(g)


def generate_documents(seed: int = 0) -> Iterator[str]:
    """Infinite, deterministic stream of pretraining documents (same seed -> same documents)."""
    return _documents(f"documents:{_int(seed, 'seed', -2**63)}")


def generate_conversations(seed: int, n: int) -> list[dict]:
    """n chat conversations; conversation i depends only on (seed, i), so a longer list extends a shorter one."""
    seed = _int(seed, "seed", -2**63)
    return [conversation(_Gen(f"conversation:{seed}:{i}")) for i in range(_int(n, "n", 0))]


def generate_math_problems(seed: int, n: int) -> list[dict]:
    """n GSM8K-format problems; problem i depends only on (seed, i)."""
    seed = _int(seed, "seed", -2**63)
    return [math_problem(_Gen(f"math:{seed}:{i}")) for i in range(_int(n, "n", 0))]


def _int(value, what, minimum):
    """`value` as an int (numpy ints welcome), or a ValueError saying what was wrong with it."""
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an int, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def _shard_documents(key, chars):
    """Documents from one stream until their total length reaches `chars` (at least one document)."""
    docs, total = [], 0
    for doc in _documents(key):
        docs.append(doc)
        total += len(doc)
        if total >= chars:
            return docs


def _read_texts(path):
    """The `text` column of an existing shard, or None if it is missing or unreadable (e.g. truncated)."""
    import pyarrow.parquet as pq
    try:
        return pq.read_table(path, columns=["text"]).column("text").to_pylist()
    except (OSError, ValueError, KeyError):  # pyarrow raises ArrowInvalid (a ValueError) on corrupt files
        return None


def write_embedded_corpus(data_dir: str, num_shards: int = 8, chars_per_shard: int = 4_000_000,
                          seed: int = 0) -> list[str]:
    """Write data_dir/shard_00000.parquet ... in the real pretraining format (one string column `text`,
    zstd, row groups of 1024 documents). The last shard is the validation shard: same generator, its own
    seed stream, so it does not change with num_shards. Each train shard has its own stream too, so shard i
    is the same whatever num_shards is. Files are written atomically; a shard already holding exactly the
    right documents is left untouched. Returns the paths in order."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    num_shards = _int(num_shards, "num_shards (at least one train and one validation shard)", 2)
    chars_per_shard = _int(chars_per_shard, "chars_per_shard", 1)
    seed = _int(seed, "seed", -2**63)
    os.makedirs(data_dir, exist_ok=True)
    paths = []
    for i in range(num_shards):
        key = f"val:{seed}" if i == num_shards - 1 else f"train:{seed}:{i}"
        docs = _shard_documents(key, chars_per_shard)
        path = os.path.join(data_dir, f"shard_{i:05d}.parquet")
        if not (os.path.exists(path) and _read_texts(path) == docs):
            with atomic_path(path) as tmp:
                table = pa.table({"text": pa.array(docs, type=pa.string())})
                pq.write_table(table, tmp, compression="zstd", row_group_size=1024)
        paths.append(path)
    return paths
