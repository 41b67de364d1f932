"""Binding over image slots: does a fresh nano-size language model learn to find the object a phrase names?

Run by hand: ``.venv/bin/python benchmarks/probe_binding_slots.py [--slots 64] [--first-slots 8
--first-steps N] [--max-objects 3] [--steps 900] [--batch 32] [--lr 3e-4] [--positions mrope]``. JSON lines, one every
``--eval-every`` steps. Nothing is saved: a probe.

``probe_binding_train.py --oracle-features`` found the base's language model (and a fresh one)
near the guess among a scene's values after 600-2,400 steps, although the oracle hands it each
object's attributes in the image slots the object covers. This probe is that lookup with nothing
else: a plain ``Qwen2ForCausalLM`` of nano's widths and depth, randomly initialised, reads
``--slots`` slot embeddings (as an image's 64 merged cells at 224 px; most empty; each of the
2 to ``--max-objects`` objects in one random slot, its embedding the sum of a learned "present"
row and one learned row per attribute value, as the oracle builds a cell), then a question
naming one object by a shortest phrase that picks it out, as the perception family asks
("What color is the large rubber object? Answer:"). One token per word, 1-D rotary positions,
left padding, the loss on the answer word only. Held-out: 400 fresh scenes at ``--slots``,
argmax of the answer, against the guess among the scene's values (``guess``).

``--positions mrope`` puts Qwen2-VL's language model (``Qwen2VLTextModel``, multimodal RoPE)
in place of Qwen2's, the slots laid out as a square grid as an image's merged cells are
((0, row, column), then the question's tokens one apart), to tell whether those positions slow
the lookup. ``--first-slots S --first-steps N`` is a curriculum on the number of slots: the first N steps
put the objects among S slots only, as a smaller image (fewer merged cells) would; held-out is
always at ``--slots``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time

from reasonrft.tasks import counting

VALUES = counting.VALUES  # the counting family's attributes and values
ORDER = counting.ATTRIBUTES  # how a phrase writes an object, as perception does
WORDS = sorted({v for values in VALUES.values() for v in values} | set("What is the object ? Answer: color shape size material".split()))


def item(rng: random.Random, slots: int, max_objects: int) -> tuple[list[dict], list[int], list[str], str, float]:
    """(objects, their slots, question words, answer, guess): a scene of 2 to ``max_objects``
    objects, no two alike, and a question naming one of them by a shortest identifying phrase."""
    while True:
        n = rng.randint(2, max_objects)
        objects = [{k: rng.choice(v) for k, v in VALUES.items()} for _ in range(n)]
        asked, target = rng.choice(ORDER), rng.choice(objects)
        others = [k for k in ORDER if k != asked]
        for r in (1, 2, 3):
            phrases = [f for f in itertools.combinations(others, r) if sum(all(o[k] == target[k] for k in f) for o in objects) == 1]
            if phrases:
                break
        if not phrases or any(o is not target and all(o[k] == target[k] for k in ORDER) for o in objects):
            continue
        phrase = rng.choice(phrases)
        cells = rng.sample(range(slots), n)
        words = ["What", asked, "is", "the"] + [target[k] for k in ORDER if k in phrase] + ["object", "?", "Answer:"]
        return objects, cells, words, target[asked], 1 / len({o[asked] for o in objects})


def main() -> None:
    import torch
    import torch.nn as nn
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2VLTextConfig
    from transformers.modeling_outputs import CausalLMOutputWithPast
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLTextModel

    class MultimodalRopeLM(nn.Module):
        """Qwen2-VL's language model (M-RoPE) with a head: what ``--positions mrope`` trains."""

        def __init__(self, config):
            super().__init__()
            self.model, self.lm_head = Qwen2VLTextModel(config), nn.Linear(config.hidden_size, config.vocab_size, bias=False)
            nn.init.normal_(self.lm_head.weight, std=config.initializer_range)

        def get_input_embeddings(self):
            return self.model.embed_tokens

        def forward(self, inputs_embeds, attention_mask, position_ids):
            hidden = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False).last_hidden_state
            return CausalLMOutputWithPast(logits=self.lm_head(hidden))

    from reasonrft import modeling

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=64, help="image slots at held-out (and after --first-steps)")
    parser.add_argument("--first-slots", type=int, default=8)
    parser.add_argument("--first-steps", type=int, default=0, help="steps with the objects among --first-slots slots only")
    parser.add_argument("--max-objects", type=int, default=3)
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--eval-every", type=int, default=150)
    parser.add_argument("--size", default="nano", choices=sorted(modeling.SIZES))
    parser.add_argument("--positions", choices=("rope", "mrope"), default="rope", help="1-D rotary positions (Qwen2), or Qwen2-VL's multimodal ones: the slots a square grid (row, column), the question after it")
    args = parser.parse_args()
    if args.positions == "mrope" and any(round(n**0.5) ** 2 != n for n in (args.slots, args.first_slots)):
        parser.error("--positions mrope lays the slots out as a square grid: --slots and --first-slots must be squares (16, 64)")
    if not 2 <= args.max_objects <= min(args.slots, args.first_slots):
        parser.error(f"--max-objects must be between 2 and the slots ({args.max_objects})")
    size = modeling.SIZES[args.size]
    vocab = {w: i for i, w in enumerate(WORDS)}
    torch.manual_seed(0)
    widths = dict(vocab_size=len(vocab), hidden_size=size.hidden, intermediate_size=size.intermediate, num_hidden_layers=size.layers, num_attention_heads=size.heads, num_key_value_heads=size.kv_heads)
    if args.positions == "mrope":
        model = MultimodalRopeLM(Qwen2VLTextConfig(**widths, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": size.mrope_section}))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**widths))

    class Slots(nn.Module):
        """A scene's slot embeddings: "present" + one row per attribute value where an object sits."""

        def __init__(self):
            super().__init__()
            self.values = nn.ModuleDict({k: nn.Embedding(len(v) + 1, size.hidden) for k, v in VALUES.items()})
            self.present = nn.Embedding(2, size.hidden)
            for table in [*self.values.values(), self.present]:
                nn.init.normal_(table.weight, std=0.02)

        def forward(self, objects: list[dict], cells: list[int], slots: int):
            index = {k: torch.full((slots,), len(v)) for k, v in VALUES.items()}
            present = torch.zeros(slots, dtype=torch.long)
            for obj, cell in zip(objects, cells):
                present[cell] = 1
                for k, v in VALUES.items():
                    index[k][cell] = v.index(obj[k])
            return self.present(present) + sum(self.values[k](index[k]) for k in VALUES)

    slot_embeddings = Slots()
    params = list(model.parameters()) + list(slot_embeddings.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    embed = model.get_input_embeddings()

    def answer_logits(items, slots: int):
        rows = [torch.cat([slot_embeddings(objects, cells, slots), embed(torch.tensor([vocab[w] for w in words]))]) for objects, cells, words, _, _ in items]
        width = max(len(r) for r in rows)
        x = torch.stack([torch.cat([torch.zeros(width - len(r), size.hidden), r]) for r in rows])  # left padding
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        return model(inputs_embeds=x, attention_mask=mask, position_ids=positions(mask, slots)).logits[:, -1]

    def positions(mask, slots: int):
        """1-D positions after the left padding, or Qwen2-VL's (t, row, column) for the slots as a
        square grid and the question's tokens after it, one apart, from the grid's side on."""
        flat = (mask.cumsum(1) - 1).clamp(min=0)
        if args.positions == "rope":
            return flat
        side = round(slots**0.5)
        slot = flat.clamp(max=slots - 1)
        text = flat - slots + side  # the first question token sits at the grid's side
        grid = torch.stack([torch.zeros_like(flat), slot // side, slot % side])
        return torch.where(flat < slots, grid, text.expand(3, -1, -1))

    held_rng = random.Random(1)
    held = [item(held_rng, args.slots, args.max_objects) for _ in range(400)]
    held_answers = torch.tensor([vocab[answer] for *_, answer, _ in held])
    guess = round(100 * sum(g for *_, g in held) / len(held), 1)
    print(json.dumps({"slots": args.slots, "first_slots": args.first_slots, "first_steps": args.first_steps, "max_objects": args.max_objects, "size": args.size, "positions": args.positions, "lr": args.lr, "batch": args.batch, "guess": guess, "example": " ".join(held[0][2]) + " " + held[0][3]}), flush=True)
    rng, started = random.Random(0), time.time()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / 30)  # linear warm-up, then constant
        slots = args.first_slots if step < args.first_steps else args.slots
        items = [item(rng, slots, args.max_objects) for _ in range(args.batch)]
        loss = nn.functional.cross_entropy(answer_logits(items, slots), torch.tensor([vocab[answer] for *_, answer, _ in items]))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            with torch.no_grad():
                accuracy = (answer_logits(held, args.slots).argmax(-1) == held_answers).float().mean().item()
            print(json.dumps({"step": step + 1, "slots": slots, "loss": round(loss.item(), 4), "seconds": round(time.time() - started), "accuracy": round(100 * accuracy, 1), "guess": guess}), flush=True)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
