"""Tasks over the embedded generator (nanochat/synthetic.py), so SFT, RL and evals run with no network:
chats (training only), GSM8K-format math (WordProblems) and the same math as four-choice questions.
Example i depends only on (seed, i). Deliberately not here: any generation logic (nanochat/synthetic.py).
"""

import copy
import random

from nanochat.synthetic import generate_conversations, generate_math_problems
from tasks.common import MultipleChoice, Task, extract_final_answer, mc_conversation
from tasks.gsm8k import WordProblems


class SyntheticChat(Task):
    def __init__(self, size=1000, seed=0, **view):
        self.rows = generate_conversations(seed, size)
        super().__init__(name=f"SyntheticChat/seed{seed}", **view)

    def conversation(self, row):
        return copy.deepcopy(row)


class SyntheticMath(WordProblems):
    def __init__(self, size=1000, seed=0, **view):
        self.rows = generate_math_problems(seed, size)
        super().__init__(name=f"SyntheticMath/seed{seed}", **view)


class SyntheticMathChoice(MultipleChoice):
    """SyntheticMath problems asked as multiple choice: the right final answer and three near misses, shuffled."""

    def __init__(self, size=1000, seed=0, **view):
        self.rows = generate_math_problems(seed, size)
        self.seed = seed
        super().__init__(name=f"SyntheticMathChoice/seed{seed}", **view)

    def example(self, index):
        row = self.rows[index]
        answer = int(extract_final_answer(row["answer"]))  # generated answers are whole numbers >= 0
        rng = random.Random(f"mathchoice:{self.seed}:{index}")
        wrong = set()
        while len(wrong) < 3:  # off by a little, the kind of slip a model makes
            guess = answer + rng.choice((-1, 1)) * rng.randint(1, max(3, answer // 4))
            if guess >= 0 and guess != answer:
                wrong.add(guess)
        choices = [answer] + sorted(wrong)
        rng.shuffle(choices)
        return mc_conversation(row["question"], [str(c) for c in choices], choices.index(answer))
