"""Can the nano language model learn sums and differences up to 30, and how fast?

Run by hand: ``.venv/bin/python benchmarks/probe_text_sums.py [--init base|random] [--steps 1000]``.
Text only (no image), the chat template, answer-only loss, AdamW at a constant rate after 50
warm-up steps; every 250 steps one JSON line with the loss and the exact-match accuracy
(greedy) on 200 questions. There are only about 1,000 such questions, so by step 750 the model
has seen nearly all of them: this measures how fast it *fits* the facts, which run E of
docs/results.md 4.1 did not (16% of its own training sums after 12,000 of them in mixed batches
of 16). Measured on 2026-12-01 with this recipe (one thread of the shared 2-core CPU,
``--init base``, the defaults; the 200 questions drawn in another order than here): 4% at step
0, 34% at 250, 70.5% at 500, 84.5% at 750, about 0.7 s per step of 64. Held-out sums (expressions
never trained on) are what ``reasonrft.text_phase`` measures.
"""

from __future__ import annotations

import argparse
import json
import random
import time


def item(rng: random.Random) -> tuple[str, str]:
    a = rng.randint(0, 30)
    if rng.random() < 0.5:
        b = rng.randint(0, 30 - a)
        return f"What is {a} + {b}?", str(a + b)
    b = rng.randint(0, a)
    return f"What is {a} - {b}?", str(a - b)


def main() -> None:
    import torch
    from transformers import AutoConfig, Qwen2VLForConditionalGeneration

    from reasonrft import modeling

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(modeling.shipped_base() or ""), help="model directory (default: the shipped base)")
    parser.add_argument("--init", choices=("base", "random"), default="base", help="start from the model's weights or from random ones of its shape")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tokenizer = modeling.load_processor(args.model).tokenizer
    model = Qwen2VLForConditionalGeneration(AutoConfig.from_pretrained(args.model)) if args.init == "random" else modeling.load_model(args.model)

    def prompt_ids(question: str) -> list[int]:
        return tokenizer(tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True))["input_ids"]

    def batch(items):
        ids, labels = [], []
        for question, answer in items:
            prompt, completion = prompt_ids(question), tokenizer(answer + "<|im_end|>")["input_ids"]
            ids.append(prompt + completion)
            labels.append([-100] * len(prompt) + completion)
        width = max(map(len, ids))
        return (torch.tensor([i + [0] * (width - len(i)) for i in ids]), torch.tensor([m + [-100] * (width - len(m)) for m in labels]),
                torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids]))

    held_out = [item(random.Random(f"held-out-{i}")) for i in range(200)]

    def accuracy() -> float:
        model.eval()
        right = 0
        with torch.no_grad():
            for question, answer in held_out:
                x = torch.tensor([prompt_ids(question)])
                out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=4, do_sample=False)
                right += tokenizer.decode(out[0, x.shape[1]:], skip_special_tokens=True).strip() == answer
        model.train()
        return round(100 * right / len(held_out), 1)

    trained = model.parameters() if args.init == "random" else model.model.language_model.parameters()
    optimizer = torch.optim.AdamW(trained, lr=args.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 50))
    rng, started = random.Random(0), time.time()
    print(json.dumps({"step": 0, "accuracy": accuracy()}), flush=True)
    for step in range(1, args.steps + 1):
        input_ids, labels, mask = batch([item(rng) for _ in range(args.batch_size)])
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 250 == 0:
            print(json.dumps({"step": step, "loss": round(loss.item(), 3), "accuracy": accuracy(), "seconds": round(time.time() - started)}), flush=True)


if __name__ == "__main__":
    main()
