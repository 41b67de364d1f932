"""Can the base's language model learn to bind a phrase to its object, given few objects?

Run by hand: ``.venv/bin/python benchmarks/probe_binding_train.py --model DIR --max-objects 3
[--steps 400] [--batch 32] [--lr 5e-4] [--train-vision | --oracle-features] [--fresh-lm SIZE] [--question-first] [--questions-per-image K] [--scene-as-text] [--target scan] [--first-grid 4 --first-steps N]``.

``benchmarks/probe_binding.py`` found the shipped base answering a colour of the scene 95% of
the time but the named object's only a little more often than a guess among the scene's
colours: it sees the palette, not which object the phrase names. This probe trains the model on
the perception family's attribute questions alone ("What color is the large rubber cylinder?")
in scenes of 2 to ``--max-objects`` objects (answer-only loss, the text phase's batches: a
curriculum's first rung), and measures on held-out scenes of the same sizes, every
``--eval-every`` steps, the accuracy per attribute against the palette guess (the mean over
items of 1 / the number of distinct values in the scene). Binding learnt shows as accuracy
well above that guess. Nothing is saved: a probe. JSON lines.

``--oracle-features`` asks where the limit lies: the vision tower is replaced by the scene
graph itself. Each merged cell's feature is a learned embedding of what the dense targets say
covers it (``dense_targets.cell_targets``: empty, or an object's colour + shape + size +
material), so the language model gets perfectly separated, perfectly bound features in the
same 64 image slots. If the LM binds these quickly, the limit is the real features; if it
does not, it is the language model (or its training). ``--fresh-lm SIZE`` (with the oracle, ``--scene-as-text``, or alone: a fresh LM reading ``--model``'s own vision tower) then asks whether
a language model that never learnt the palette habit, or a larger one, binds faster: a
randomly initialised model of a ``modeling.SIZES`` size with ``--model``'s tokenizer.

``--oracle-init words`` starts each value's embedding as the language model's own embedding of
the word (" red", " cube"): the phrase's words and the cells' features then share a space, so
the heads that already match a token to an equal one (copying, which the base learnt) could
match a phrase to its object from the first step. If that binds fast, the lever is a dense
target that pulls the real vision features towards those word embeddings.

``--question-first`` puts the question before the image in the user turn (training and
held-out prompts alike; the project's layout, TRL's, is images first). With the question first,
every image token can read the phrase and test its own object against it (one local step),
and the answer only has to pool the image tokens, which the base already does (it reads the
palette): does binding then come quickly?

``--target scan`` supervises the lookup step by step instead of the bare answer, in the
project's think/answer format: each object of the scene, left to right, named and marked
against the question's phrase, then the answer read off the marks ("<think>small blue metal
cube: no; small brown metal cube: yes.</think><answer>cube</answer>"; a count's answer is the
number of yeses). Naming an object is copying (in text) or describing (from an image), and the
mark is a local test of the object just named against the phrase: the binding becomes steps a
small language model can take one token at a time. The held-out score reads the answer block.

``--first-grid G --first-steps N`` trains the first N steps on images resized to G x G merged
cells (4: 112 px, 16 image tokens) before the full 8 x 8: a curriculum on the number of image
tokens the answer has to search. A toy (results 4.1, 2026-12-03) learnt the lookup among 8
slots in 300 steps and not among 64 in 450.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

from reasonrft import data, modeling
from reasonrft.base_skills import as_record, greedy_answers
from reasonrft.data import Record
from reasonrft.tasks import counting, get_task, perception
from reasonrft.tasks.base import item_rng
from reasonrft.text_phase import batch_tensors

QTYPES = ("color", "shape", "size", "material")


@dataclass(frozen=True)
class Schedule:  # what phase_loop.lr_at reads
    steps: int
    warmup_steps: int
    learning_rate: float


def attribute_records(split: str, max_objects: int, n: int, seed: int, qtype: str | None = None, step: int = 0) -> list[Record]:
    config = perception.PerceptionConfig(attribute_min_objects=2, attribute_max_objects=max_objects)
    return [as_record(perception.make_sample(config, "attribute", split, item_rng(f"probe-binding/{qtype}", split, seed, step * 1_000_003 + i), f"binding-{split}-{step}-{i}", qtype=qtype)) for i in range(n)]


def heldout(model, processor, model_dir: str, items: dict[str, list[Record]], oracle=None, max_new_tokens: int = 16) -> dict:
    task = get_task("perception")
    result = {}
    for qtype, records in items.items():
        predictions = []
        for start in range(0, len(records), 25):  # the oracle needs each batch's scenes
            if oracle is not None:
                oracle.scenes = scenes_of(records[start : start + 25])
            predictions += greedy_answers(model, processor, model_dir, records[start : start + 25], max_new_tokens=max_new_tokens, batch_size=25)
        result[qtype] = round(100 * sum(task.score(p, r.answer) for p, r in zip(predictions, records)) / len(records), 1)
        if "</think>" in records[0].answer:  # a scan: also how often the whole chain is right
            result[f"{qtype}_scan"] = round(100 * sum(p.strip().split("</think>")[0] == r.answer.split("</think>")[0] for p, r in zip(predictions, records)) / len(records), 1)
    return result


def left_to_right(record: Record) -> list[dict]:
    """The scene's objects in the describe kind's order (by x): how scans and written scenes list them."""
    return sorted(record.meta["objects"], key=lambda o: o["x"])


def named(o: dict) -> str:
    return f"{o['size']} {o['color']} {o['material']} {o['shape']}"  # perception.object_name's words


def scan_targets(records: list[Record]) -> list[Record]:
    """The records with the scan chain of thought as their answer (module docstring)."""
    import dataclasses

    def scan(record: Record) -> str:
        flt = record.meta.get("filter", [])  # "How many objects are there?" has none: every object matches
        marks = "; ".join(f"{named(o)}: {'yes' if all(o[k] == v for k, v in flt) else 'no'}" for o in left_to_right(record))
        return f"<think>{marks}.</think><answer>{record.answer}</answer>"

    return [dataclasses.replace(r, answer=scan(r)) for r in records]


def palette_guess(records: list[Record], qtype: str) -> float:
    return round(100 * sum(1 / len({o[qtype] for o in r.meta["objects"]}) for r in records) / len(records), 1)


def oracle_visual(visual, width: int, std: float, words=None):
    """A module to stand in for ``model.model.visual``: for the images of the batch set in its
    ``scenes``, each merged cell's embedding of its scene-graph targets (row-major cells, the
    order of the merger's outputs, which ``dense_targets`` trained on). ``words(values)``, if
    given, gives the value rows' starting embeddings."""
    import torch
    import torch.nn as nn

    from reasonrft import dense_targets

    class Oracle(nn.Module):
        def __init__(self):
            super().__init__()
            self.spatial_merge_size = visual.spatial_merge_size
            self.tables = nn.ModuleDict({name: nn.Embedding(len(values) + 1, width) for name, values in dense_targets.CELL_HEADS.items()})
            self.tables["present"] = nn.Embedding(2, width)
            for table in self.tables.values():
                nn.init.normal_(table.weight, std=std)
            if words is not None:  # each value's row starts as the LM's embedding of " value"
                with torch.no_grad():
                    for name, values in dense_targets.CELL_HEADS.items():
                        self.tables[name].weight[: len(values)] = words(values)
            self.scenes: list = []

        @property
        def dtype(self):
            return self.tables["present"].weight.dtype

        def forward(self, pixel_values, grid_thw=None, **kwargs):
            from transformers.modeling_outputs import BaseModelOutputWithPooling

            features = []
            for scene, (_, rows, _) in zip(self.scenes, grid_thw.tolist()):  # the image's grid of merged cells: 8 x 8 at 224 px
                grid = rows // self.spatial_merge_size
                targets = dense_targets.cell_targets(scene, 224, grid, min_cover=0.2 * (grid / 8) ** 2)  # an object owns the cells it covers a fifth of an 8 x 8 cell of
                cell = self.tables["present"](torch.as_tensor(targets["present"]))
                for name, values in dense_targets.CELL_HEADS.items():
                    index = torch.as_tensor(targets[name]).clone()
                    index[index == dense_targets.IGNORE] = len(values)  # "no object": its own row
                    cell = cell + self.tables[name](index)
                features.append(cell)
            return BaseModelOutputWithPooling(pooler_output=torch.cat(features))

    return Oracle()


def put_question_first() -> None:
    """Every prompt this probe builds (``text_phase.batch_tensors``, ``evaluate.generate``)
    gets its text before its images."""
    from reasonrft import data, text_phase

    images_first = data.user_message_with_images

    def question_first(task, record: Record, style: str) -> dict:
        content = images_first(task, record, style)["content"]
        return {"role": "user", "content": [c for c in content if c["type"] != "image"] + [c for c in content if c["type"] == "image"]}

    data.user_message_with_images = text_phase.user_message_with_images = question_first


def conversation_batch(processor, records: list[Record], questions_per_image: int, step: int):
    """Inputs and labels for ``records``, each a conversation of ``questions_per_image``
    attribute questions on its image; labels on every answer and its end of turn."""
    import random

    import torch

    task = get_task("perception")
    assistant = processor.tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    texts = []
    for index, (record, scene) in enumerate(zip(records, scenes_of(records))):
        rng = random.Random(f"conversation/{step}/{index}")
        turns = [(record.problem, record.answer)]
        for _ in range(50 * questions_per_image):  # a small scene may hold fewer distinct questions
            if len(turns) == questions_per_image:
                break
            qtype, target = rng.choice(QTYPES), rng.choice(scene)
            flt = perception.identifying_filter(rng, scene, target, qtype)
            question = flt and perception.attribute_question(qtype, flt)
            if question and question not in {q for q, _ in turns}:
                turns.append((question, target.get(qtype)))
        first = data.user_message_with_images(task, record, "answer")
        messages = [first, {"role": "assistant", "content": turns[0][1]}]
        for question, answer in turns[1:]:
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        texts.append(processor.apply_chat_template(messages, tokenize=False))
    inputs = processor(text=texts, images=[im for r in records for im in r.images], padding=True, padding_side="right", return_tensors="pt")
    labels = torch.full_like(inputs["input_ids"], -100)
    for row, ids in enumerate(inputs["input_ids"].tolist()):
        for at in range(len(ids) - len(assistant)):
            if ids[at : at + len(assistant)] == assistant:
                stop = ids.index(end, at + len(assistant))
                labels[row, at + len(assistant) : stop + 2] = inputs["input_ids"][row, at + len(assistant) : stop + 2]  # the answer, <|im_end|>, "\n"
    inputs["labels"] = labels
    return inputs


def as_text(records: list[Record]) -> list[Record]:
    """The records without their images, each scene written out before the question."""
    import dataclasses

    return [dataclasses.replace(r, images=[], problem=f"Objects: {', '.join(named(o) for o in left_to_right(r))}. {r.problem}") for r in records]


def allow_no_images(processor) -> None:
    """Let ``processor`` take a batch whose records have no image (it raises on an empty list)."""
    call = type(processor).__call__

    def without_empty(self, *args, images=None, **kwargs):
        flat = [im for group in images or [] for im in (group if isinstance(group, list) else [group])]
        return call(self, *args, images=images if flat else None, **kwargs)

    type(processor).__call__ = without_empty


def plain_config(text_config):
    """A ``Qwen2Config`` with the widths, depth and special tokens of a Qwen2-VL text config."""
    from transformers import Qwen2Config

    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings")
    return Qwen2Config(**{k: getattr(text_config, k) for k in keys})


def scenes_of(records: list[Record]) -> list:
    return [[counting.Obj(**{k: o[k] for k in ("shape", "color", "size", "material", "x", "z")}) for o in r.meta["objects"]] for r in records]


def main() -> None:
    import torch

    from reasonrft import phase_loop
    from reasonrft.stages.common import freeze_vision

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-objects", type=int, default=3)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--n-eval", type=int, default=100, help="held-out items per attribute")
    vision = parser.add_mutually_exclusive_group()
    vision.add_argument("--train-vision", action="store_true", help="train the vision tower too (default: frozen, as in the reading phase)")
    vision.add_argument("--oracle-features", action="store_true", help="replace the vision tower by learned embeddings of the scene graph's cell targets")
    parser.add_argument("--fresh-lm", choices=sorted(modeling.SIZES), help="a randomly initialised language model of this size (with real features: reading --model's trained vision tower)")
    parser.add_argument("--plain-lm", action="store_true", help="with --fresh-lm and --scene-as-text: a plain Qwen2ForCausalLM of that size (1-D RoPE, no vision): is a failure Qwen2-VL's?")
    parser.add_argument("--oracle-init", choices=("random", "words"), default="random", help="with --oracle-features: the value embeddings start random, or as the LM's embeddings of the value words (' red', ' cube')")
    parser.add_argument("--question-first", action="store_true", help="the question before the image in every prompt")
    parser.add_argument("--scene-as-text", action="store_true", help="no image: the scene written out in the question")
    parser.add_argument("--questions-per-image", type=int, default=1, help="attribute questions per training image, one conversation")
    parser.add_argument("--target", choices=("answer", "scan"), default="answer", help="the bare answer, or the scan chain of thought then the answer")
    parser.add_argument("--first-grid", type=int, default=None, help="for the first --first-steps steps, images resized to this many merged cells a side (4: 112 px, 16 image tokens instead of 64); held-out always at full size")
    parser.add_argument("--first-steps", type=int, default=0)
    args = parser.parse_args()
    if args.target == "scan" and args.questions_per_image > 1:
        parser.error("--target scan trains one question per image")
    if args.question_first:
        put_question_first()
    if args.scene_as_text and (args.oracle_features or args.train_vision or args.questions_per_image > 1):
        parser.error("--scene-as-text has no image: no --oracle-features, --train-vision or --questions-per-image")
    if args.plain_lm and not (args.fresh_lm and args.scene_as_text):
        parser.error("--plain-lm needs --fresh-lm and --scene-as-text")
    processor, model = modeling.load_processor(args.model), modeling.load_model(args.model)
    if args.fresh_lm:
        from transformers import Qwen2ForCausalLM, Qwen2VLForConditionalGeneration

        torch.manual_seed(0)
        config = modeling.build_config(modeling.SIZES[args.fresh_lm], processor.tokenizer)
        generation_config = model.generation_config
        trained_visual = model.model.visual
        model = Qwen2ForCausalLM(plain_config(config.text_config)) if args.plain_lm else Qwen2VLForConditionalGeneration(config)
        if not (args.plain_lm or args.oracle_features or args.scene_as_text):  # real features: --model's vision tower, a fresh LM reading it
            model.model.visual.load_state_dict(trained_visual.state_dict())
        model.generation_config = generation_config
        if args.plain_lm:  # the processor's multimodal token types mean nothing to it
            generate = model.generate
            model.generate = lambda **inputs: generate(**{k: v for k, v in inputs.items() if k != "mm_token_type_ids"})
    if not (args.train_vision or args.plain_lm):
        freeze_vision(model)
    oracle = None
    if args.oracle_features:
        embed = model.get_input_embeddings()
        std = embed.weight.std().item()

        def words(values):
            return torch.stack([embed.weight[processor.tokenizer(" " + v, add_special_tokens=False)["input_ids"]].mean(0) for v in values])

        oracle = model.model.visual = oracle_visual(model.model.visual, model.config.text_config.hidden_size, std, words if args.oracle_init == "words" else None)
    written = as_text if args.scene_as_text else list
    target = scan_targets if args.target == "scan" else list
    max_new_tokens = 16 if args.target == "answer" else 24 + 10 * args.max_objects  # the scan names every object

    def text(records: list[Record]) -> list[Record]:
        return target(written(records))

    if args.scene_as_text:
        allow_no_images(processor)
    if (args.first_grid is None) != (args.first_steps == 0) or args.scene_as_text and args.first_grid:
        parser.error("--first-grid and --first-steps go together, and need images")
    cell = processor.image_processor.patch_size * processor.image_processor.merge_size  # pixels a side of a merged cell: 28
    first_processor = modeling.load_processor(args.model, min_pixels=(cell * args.first_grid) ** 2, max_pixels=(cell * args.first_grid) ** 2) if args.first_grid else None
    items = {q: text(attribute_records("test", args.max_objects, args.n_eval, 0, q)) for q in QTYPES}
    print(json.dumps({"model": args.model, "max_objects": args.max_objects, "train_vision": args.train_vision, "oracle_features": args.oracle_features, "fresh_lm": args.fresh_lm, "plain_lm": args.plain_lm, "question_first": args.question_first, "questions_per_image": args.questions_per_image, "oracle_init": args.oracle_init, "scene_as_text": args.scene_as_text, "target": args.target, "first_grid": args.first_grid, "first_steps": args.first_steps, "palette_guess": {q: palette_guess(r, q) for q, r in items.items()}}), flush=True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    schedule = Schedule(args.steps, min(30, args.steps // 10), args.lr)
    model.eval()
    print(json.dumps({"step": 0, "heldout": heldout(model, processor, args.model, items, oracle, max_new_tokens)}), flush=True)
    started = time.time()
    for step in range(args.steps):
        model.train()
        records = text(attribute_records("train", args.max_objects, args.batch, 0, None, step))
        if oracle is not None:
            oracle.scenes = scenes_of(records)
        step_processor = first_processor if step < args.first_steps else processor
        inputs = batch_tensors(step_processor, records) if args.questions_per_image == 1 else conversation_batch(step_processor, records, args.questions_per_image, step)
        phase_loop.set_lr(optimizer, step, schedule)
        loss = model(**{k: v for k, v in inputs.items() if not (args.plain_lm and k == "mm_token_type_ids")}).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            model.eval()
            print(json.dumps({"step": step + 1, "loss": round(loss.item(), 4), "seconds": round(time.time() - started, 1), "heldout": heldout(model, processor, args.model, items, oracle, max_new_tokens)}), flush=True)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
