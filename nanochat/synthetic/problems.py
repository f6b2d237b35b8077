"""
Arithmetic for the embedded corpus (nanochat/synthetic/): sums worked in prose (`arithmetic_doc`) and
GSM8K-style word problems (`math_problem`): worked steps with `<<expr=value>>` calculator notes, then
`#### answer`. Each problem frame draws its numbers and checks every step (`_calc`: no negative value, none
of 1000 or more, only exact division); when a step fails, the frame is drawn again. `math_doc` writes
problems into pretraining text with the notes stripped.

Deliberately NOT here: the grammar engine (grammar.py), the mix of document kinds and the public
`generate_math_problems` (__init__.py), and any math beyond the four operations on whole numbers.
"""

import re

from nanochat.synthetic import world as W
from nanochat.synthetic.grammar import _HE, _SHE, _paragraphs
from nanochat.synthetic.world import cap, number_word, plural

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
