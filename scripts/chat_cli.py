"""
Chat with a trained model in the terminal, the reply streamed as it is sampled (-p: one-shot). /clear starts a new
conversation, /quit (or Ctrl-D, Ctrl-C) exits; the oldest turns are dropped when the context fills up.
Deliberately not here: editing or saving conversations, system prompts, and batching (that is the server's job).
"""

import argparse
import random
import sys

from nanochat.checkpoint import add_checkpoint_args, load_model
from nanochat.common import compute_init, positive
from nanochat.engine import Engine, SamplingParams, ToolRenderer, completion_to_parts, fit_conversation, prompt_budget


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Chat with a nanochat model in the terminal.")
    add_checkpoint_args(p)
    p.add_argument("-p", "--prompt", default=None, help="one-shot: answer this prompt, print the reply, exit")
    p.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (0 = greedy)")
    p.add_argument("--top-k", type=int, default=50, help="sample among the k most likely tokens (0 = all)")
    p.add_argument("--max-tokens", type=positive(int), default=512, help="the longest reply, in tokens")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible replies (default: random)")
    p.add_argument("--device-type", default="", help="cuda | cpu | mps (default: autodetect)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    compute = compute_init(args.device_type, seed=seed)  # rows without a seed draw theirs from torch's RNG
    model, tokenizer, meta = load_model(args.source, compute.device, args.model_tag, args.step, dtype=compute.dtype)
    engine = Engine(model, tokenizer, max_batch_size=1)
    params = SamplingParams(temperature=args.temperature, top_k=args.top_k or None, max_tokens=args.max_tokens)
    max_prompt_tokens = prompt_budget(engine.max_len, args.max_tokens)

    def note(text):
        print(f"({text})", file=sys.stderr, flush=True)

    def answer(messages):
        """Reply to the conversation (fitting it to the context first); returns the messages to keep."""
        conversation, dropped = fit_conversation(tokenizer, {"messages": messages}, max_prompt_tokens)
        if dropped:
            note(f"dropped the {dropped} oldest messages to fit the model's {engine.max_len}-token context")
        renderer, tokens = ToolRenderer(tokenizer), []  # the reply's tokens, without the stop token
        with compute.autocast():
            for (out,) in engine.generate(tokenizer.render_for_completion(conversation), params):
                if out.finish_reason != "stop":
                    tokens.append(out.token)
                for text, _ in renderer.feed(out):  # the stop token may still flush a cut-off character
                    print(text, end="", flush=True)
        print(flush=True)
        return conversation["messages"] + [{"role": "assistant", "content": completion_to_parts(tokenizer, tokens)}]

    if args.prompt is not None:
        answer([{"role": "user", "content": args.prompt}])
        return 0
    note(f"nanochat: {args.source} model from {meta['checkpoint_dir']}, step {meta['step']}, "
         "on " + compute.device_type + ". /clear starts a new conversation, /quit exits")
    messages = []
    try:
        while (line := input("\nUser: ").strip()) != "/quit":
            if line == "/clear":
                messages = []
                note("new conversation")
            elif line.startswith("/"):
                note(f"unknown command {line!r}: /clear starts a new conversation, /quit exits")
            elif line:
                print("\nAssistant: ", end="", flush=True)
                messages = answer(messages + [{"role": "user", "content": line}])
    except (EOFError, KeyboardInterrupt):
        pass
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
