"""
Chat conversations of the embedded corpus: exchanges about the world's facts, science, arithmetic, stories,
poems, advice and the assistant's identity, with follow-ups that refer back ("What about Japan?"), and
those conversations written out as transcripts for pretraining text (`chat_doc`).
"""

from nanochat.synthetic import world as W
from nanochat.synthetic.documents import _character, _title, poem, story
from nanochat.synthetic.grammar import (
    _TOPIC_NAMES,
    _TOPICS,
    _Choice,
    _fact_row,
    science_qa,
)
from nanochat.synthetic.world import article, cap

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
