"""Binding at its smallest: does a fresh nano-size language model learn to look an object up?

Run by hand: ``.venv/bin/python benchmarks/probe_binding_toy.py [--size nano] [--objects 2] [--attributes
color,shape] [--steps 3000] [--batch 32] [--lr 1e-3] [--questions-per-scene K] [--lm-loss] [--asked ATTRIBUTE]``.
JSON lines, one every ``--eval-every`` steps. Nothing is saved: a probe.

``probe_binding_train.py --scene-as-text`` found the base's language model (and fresh ones of
the nano and small sizes) at the guess among the scene's values after up to 112,000
attribute questions with the scene written out in words. This probe strips that to the bone,
to tell a property of the model and its supervision from one of the project's data or
pipeline: a plain ``Qwen2ForCausalLM`` with nano's widths and depth (256 wide, 4 layers,
4 heads; 1-D RoPE, no vision, no chat template), randomly initialised, with the base's
tokenizer, on sequences such as

    Objects: red cube, blue sphere. What color is the sphere object? Answer:
    blue

The objects' attribute values are drawn uniformly; the named value identifies one object.
The loss is on the answer tokens only (as the project's SFT), or with ``--lm-loss`` on every
token (the scene's random words are unpredictable; the question's named value is one of the
scene's, which rewards looking back at the scene). ``--questions-per-scene K`` puts K
questions on one scene in one sequence, each answer with its loss: K times the supervised
lookups per step. Held-out: 400 fresh scenes, one question each, the answer's first token
under teacher forcing (argmax), against the guess among the scene's values (``guess``).

Three controls tell the lookup's obstacle apart (results 4.1, 2026-12-03):

- ``--tokens words``: one token per word (a vocabulary of the scene's and question's words,
  punctuation apart), instead of the base's BPE tokenizer;
- ``--joined`` (with ``--tokens words``): each object is one token ("red_cylinder"), the way
  an image cell holds all of one object's attributes at once: the lookup is then one hop,
  matching the named value inside a token, with no need to find the word next to it;
- ``--arch gpt2``: a ``GPT2LMHeadModel`` of the same widths and depth, whose positions are
  learned absolute embeddings, in place of Qwen2's rotary positions.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time

from reasonrft.tasks import counting

VALUES = counting.VALUES  # the counting family's attributes and values
ORDER = counting.ATTRIBUTES  # how a scene writes an object, as perception does


def scene(rng: random.Random, n_objects: int, attributes: list[str]) -> list[dict]:
    """``n_objects`` objects whose values are drawn uniformly; some attribute tells them all apart."""
    while True:
        objects = [{a: rng.choice(VALUES[a]) for a in attributes} for _ in range(n_objects)]
        if any(len({o[a] for o in objects}) == n_objects for a in attributes):
            return objects


def question(rng: random.Random, objects: list[dict], attributes: list[str], asked_only: str | None = None) -> tuple[str, str, float]:
    """(question text, answer, guess): the ``asked`` value of the one object a ``named`` value picks out."""
    while True:
        asked = asked_only or rng.choice(attributes)
        named = rng.choice([a for a in attributes if a != asked])
        target = rng.choice(objects)
        if sum(o[named] == target[named] for o in objects) == 1:
            return f" What {asked} is the {target[named]} object? Answer:\n", target[asked], 1 / len({o[asked] for o in objects})


def sequence(rng: random.Random, n_objects: int, attributes: list[str], k: int, asked: str | None = None, joined: bool = False) -> tuple[str, list[tuple[str, str, float]]]:
    while True:
        objects = scene(rng, n_objects, attributes)
        if asked is None or any(len({o[a] for o in objects}) == n_objects for a in attributes if a != asked):
            break  # some other attribute names each object
    joiner = "_" if joined else " "
    written = ", ".join(joiner.join(o[a] for a in ORDER if a in attributes) for o in objects)
    return f"Objects: {written}.", [question(rng, objects, attributes, asked) for _ in range(k)]


class WordTokenizer:
    """One id per word (punctuation split off), for ``--tokens words``: a callable with the
    slice of a tokenizer's interface ``encode`` uses."""

    def __init__(self, attributes: list[str], joined: bool):
        fixed = "Objects: , . What is the object ? Answer:".split() + list(ORDER)
        values = [v for a in attributes for v in VALUES[a]]
        objects = ["_".join(vs) for vs in itertools.product(*(VALUES[a] for a in attributes))] if joined else []
        self.vocab = {w: i for i, w in enumerate(["<pad>", "\n", *dict.fromkeys(fixed + values + objects)])}
        self.pad_token_id = 0

    def __len__(self) -> int:
        return len(self.vocab)

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        for mark in ",.?":
            text = text.replace(mark, f" {mark}")
        return {"input_ids": [self.vocab[w] for w in text.replace("\n", " \n ").split(" ") if w]}


def encode(tokenizer, items, lm_loss: bool):
    """input_ids, attention_mask, labels (right padding): labels on each answer and its newline,
    or on every token with ``lm_loss``."""
    import torch

    rows, labels = [], []
    for text, questions in items:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        label = list(ids) if lm_loss else [-100] * len(ids)
        for question_text, answer, _ in questions:
            q = tokenizer(question_text, add_special_tokens=False)["input_ids"]
            a = tokenizer(answer + "\n", add_special_tokens=False)["input_ids"]
            ids, label = ids + q + a, label + (q if lm_loss else [-100] * len(q)) + a
        rows.append(ids)
        labels.append(label)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    return (
        torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        torch.tensor([label + [-100] * (width - len(label)) for label in labels]),
    )


def main() -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    from reasonrft import modeling

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="the tokenizer's model directory (default: the shipped base)")
    parser.add_argument("--size", default="nano", help="the widths and depth of this modeling.SIZES size")
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--attributes", default="color,shape", help=f"two or more of {','.join(ORDER)}")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--questions-per-scene", type=int, default=1)
    parser.add_argument("--asked", default=None, help="ask only this attribute (with color,shape: --asked shape names the colour, and the answer is the word after it, an induction head's lookup; --asked color, the word before)")
    parser.add_argument("--lm-loss", action="store_true", help="a loss on every token, not only the answers")
    parser.add_argument("--tokens", choices=("bpe", "words"), default="bpe", help="the base's BPE tokenizer, or one token per word")
    parser.add_argument("--joined", action="store_true", help="with --tokens words: each object one token (red_cylinder), as an image cell holds one object")
    parser.add_argument("--arch", choices=("qwen2", "gpt2"), default="qwen2", help="Qwen2 (rotary positions) or GPT-2 (learned absolute positions) of the same widths")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    attributes = [a for a in ORDER if a in args.attributes.split(",")]
    if len(attributes) < 2 or len(attributes) != len(args.attributes.split(",")):
        parser.error(f"--attributes: two or more distinct of {','.join(ORDER)}; got {args.attributes!r}")
    if args.asked is not None and args.asked not in attributes:
        parser.error(f"--asked must be one of --attributes ({','.join(attributes)}); got {args.asked!r}")
    if args.joined and args.tokens != "words":
        parser.error("--joined needs --tokens words (a BPE tokenizer splits red_cylinder)")
    tokenizer = WordTokenizer(attributes, args.joined) if args.tokens == "words" else modeling.load_processor(args.model or str(modeling.shipped_base())).tokenizer
    if args.size not in modeling.SIZES:
        parser.error(f"--size: one of {', '.join(modeling.SIZES)}; got {args.size!r}")
    size = modeling.SIZES[args.size]
    torch.manual_seed(args.seed)
    if args.arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=size.hidden, n_inner=size.intermediate, n_layer=size.layers, n_head=size.heads, n_positions=512, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=size.hidden, intermediate_size=size.intermediate, num_hidden_layers=size.layers, num_attention_heads=size.heads, num_key_value_heads=size.kv_heads))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    held_rng = random.Random(f"held/{args.seed}")
    held_items = [sequence(held_rng, args.objects, attributes, 1, args.asked, args.joined) for _ in range(400)]
    held = encode(tokenizer, held_items, lm_loss=False)
    guess = round(100 * sum(q[0][2] for _, q in held_items) / len(held_items), 1)
    print(json.dumps({"objects": args.objects, "attributes": attributes, "size": args.size, "questions_per_scene": args.questions_per_scene, "lm_loss": args.lm_loss, "asked": args.asked, "tokens": args.tokens, "joined": args.joined, "arch": args.arch, "lr": args.lr, "batch": args.batch, "guess": guess, "example": held_items[0][0] + held_items[0][1][0][0] + held_items[0][1][0][1]}), flush=True)
    rng, started = random.Random(args.seed), time.time()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / 50)  # linear warm-up, then constant
        model.train()
        ids, mask, labels = encode(tokenizer, [sequence(rng, args.objects, attributes, args.questions_per_scene, args.asked, args.joined) for _ in range(args.batch)], args.lm_loss)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            model.eval()
            with torch.no_grad():
                logits = model(input_ids=held[0], attention_mask=held[1]).logits
            first = (held[2] != -100).int().argmax(1)  # the answer's first token
            rows = torch.arange(len(first))
            accuracy = (logits[rows, first - 1].argmax(-1) == held[2][rows, first]).float().mean().item()
            print(json.dumps({"step": step + 1, "loss": round(loss.item(), 4), "seconds": round(time.time() - started), "accuracy": round(100 * accuracy, 1), "guess": guess}), flush=True)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
