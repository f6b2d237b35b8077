"""
Pretraining documents of the embedded corpus: stories (with diaries and letters told in the first person),
encyclopedia-style articles, how-to guides, lists, Q&A, poems, script-like dialogues and one-line snippets.
Each maker takes a `_Gen` (grammar.py) and returns one document's text.
"""

from nanochat.synthetic import world as W
from nanochat.synthetic.grammar import (
    _ANIMAL_NAMES,
    _HE,
    _ME,
    _PLURAL_OF,
    _SHE,
    _TOPICS,
    _WORDS,
    _paragraphs,
    _with_forms,
    fact_qa,
    fact_statement,
    science_qa,
    science_statement,
)
from nanochat.synthetic.problems import _Person
from nanochat.synthetic.world import article, cap, number_word, plural

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
