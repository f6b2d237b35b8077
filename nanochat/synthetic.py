"""
The embedded corpus: a small deterministic generator of pretraining text, chat conversations and
GSM8K-style math word problems, so every stage of the pipeline can run offline on data it makes itself.

- `generate_documents(seed)`: an endless stream of English documents (stories, encyclopedia-style
  articles, how-to guides, letters, diaries, dialogues, lists, Q&A, worked arithmetic, math problems,
  chat transcripts, poems). Sentences come from a compositional grammar (`synthetic_grammar.py`): templates
  with named slots (`{He} {move} to {place}.`) filled from the word banks in `synthetic_world.py`.
- `write_embedded_corpus(data_dir)`: writes those documents as parquet shards in the real format.
- `generate_conversations(seed, n)` / `generate_math_problems(seed, n)`: chat and GSM8K data (the word
  problems themselves are made in `synthetic_math.py`).

All facts come from the one table in `synthetic_world.py`, and documents and chat answers phrase the same
facts, so a model trained on the documents can learn to answer the chat questions.

Determinism: each stream owns a `random.Random` seeded from a string (hashed with SHA-512 by the random
module, so independent of PYTHONHASHSEED); no code here iterates over a set or uses the global RNG.

Deliberately NOT here: natural-language quality beyond "reads like simple English", facts outside the
table, tokenization, and any downloading. The text is toy data for toy models, not a benchmark.
"""

import operator
import os
from collections.abc import Iterator

from nanochat import synthetic_world as W
from nanochat.common import atomic_path
from nanochat.synthetic_grammar import (
    _ANIMAL_NAMES,
    _HE,
    _ME,
    _PLURAL_OF,
    _SHE,
    _TOPIC_NAMES,
    _TOPICS,
    _WORDS,
    _Choice,
    _fact_row,
    _Gen,
    _paragraphs,
    _with_forms,
    fact_qa,
    fact_statement,
    science_qa,
    science_statement,
)
from nanochat.synthetic_math import _Person, arithmetic_doc, math_doc, math_problem
from nanochat.synthetic_world import article, cap, number_word, plural

__all__ = ["generate_documents", "write_embedded_corpus", "generate_conversations", "generate_math_problems"]


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
        subject = g.fill(W.FOLLOW_UP_NAMES.get(topic, "{" + aspect[0] + "}"), other)
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


def identity_conversation(g):
    """Messages of one conversation about who the assistant is: 1-3 different identity questions, sometimes
    after a greeting, sometimes asked casually (lower case, no question mark)."""
    messages = []
    if g.chance(0.25):
        user, assistant, _ = _ex_greeting(g)
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    asked = set()
    for _ in range(g.pick((1, 1, 2, 2, 3))):
        q, a = g.pick([qa for qa in W.IDENTITY_QA if qa[0] not in asked])
        asked.add(q)
        if g.chance(0.3):
            q = q.lower().rstrip("?.")
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return messages


def generate_identity_conversations(seed: int, n: int) -> list[list[dict]]:
    """n identity conversations as message lists (the identity .jsonl format); i depends only on (seed, i)."""
    seed = _int(seed, "seed", -2**63)
    return [identity_conversation(_Gen(f"identity:{seed}:{i}")) for i in range(_int(n, "n", 0))]


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
