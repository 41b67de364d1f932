"""The transformation family: replay, uniqueness, validity, determinism, views, scoring, balance."""

from __future__ import annotations

import io
import itertools
from collections import Counter
from dataclasses import replace

import pytest

from reasonrft import rewards
from reasonrft.tasks import camera, get_task
from reasonrft.tasks import transformation as tr

TASK = get_task("transformation")
N_PER_SPLIT = 24


@pytest.fixture(scope="module")
def samples() -> dict[str, list]:
    return {split: [TASK.sample(split, idx) for idx in range(N_PER_SPLIT)] for split in TASK.splits}


def _program(answer: str) -> tuple[tr.Step, ...]:
    return tuple(tr.Step(*call) for call in rewards.parse_calls(answer))


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _unlabelled(scene: tr.Scene) -> list[tuple]:
    """A scene as an image shows it: objects without ids."""
    return sorted((o.shape, o.size, o.color, o.material, o.x, o.z) for o in scene)


def _all_single_steps(scene: tr.Scene) -> list[tr.Step]:
    """Every step that changes something (no-op steps are against the rules)."""
    steps = [tr.Step(func, obj.id, value) for obj in scene for func, (_, values) in tr.FUNCTIONS.items() for value in values]
    return [s for s in steps if tr.apply_step(scene, s) != scene]


def test_registration() -> None:
    assert TASK.splits == ("train", "test-id", "test-ood-left", "test-ood-right")
    assert TASK.num_images == 2 and TASK.accuracy_reward == "func_accuracy"
    corpus = " ".join(TASK.corpus())
    assert all(word in corpus for word in tr.COLORS + tr.SHAPES + tr.SIZES + tr.MATERIALS + tuple(tr.DIRECTIONS))


def test_replay_gold_program_gives_final_scene(samples) -> None:
    for split_samples in samples.values():
        for sample in split_samples:
            initial, final = tr.scene_from_meta(sample.meta["initial"]), tr.scene_from_meta(sample.meta["final"])
            program = _program(sample.answer)
            assert len(program) == sample.meta["length"]
            assert tr.run_program(initial, program) == final


def test_programs_are_valid(samples) -> None:
    lengths = Counter()
    for split_samples in samples.values():
        for sample in split_samples:
            scene = tr.scene_from_meta(sample.meta["initial"])
            assert tr.is_valid(scene)
            tuples = [(o.shape, o.size, o.color, o.material) for o in scene]
            assert len(set(tuples)) == len(tuples)  # ids are recoverable from the first image
            touched = set()
            for step in _program(sample.answer):
                attribute = tr.FUNCTIONS[step.func][0]
                assert (step.object_id, attribute) not in touched
                touched.add((step.object_id, attribute))
                after = tr.apply_step(scene, step)
                assert after != scene  # no no-op step
                assert tr.is_valid(after)  # on the plane, no collision
                scene = after
            lengths[sample.meta["length"]] += 1
    assert set(lengths) == {1, 2, 3, 4}


def test_invalid_programs_are_rejected() -> None:
    a = tr.Obj("0", "cube", "small", "red", "metal", 0, 0)
    b = tr.Obj("1", "sphere", "large", "blue", "rubber", 20, 0)
    scene = (a, b)
    with pytest.raises(tr.InvalidProgram):  # no-op
        tr.run_program(scene, (tr.Step("change_color", "0", "red"),))
    with pytest.raises(tr.InvalidProgram):  # same object and attribute twice
        tr.run_program(scene, (tr.Step("change_color", "0", "blue"), tr.Step("change_color", "0", "green")))
    with pytest.raises(tr.InvalidProgram):  # collision
        tr.run_program(scene, (tr.Step("change_position", "1", "left"),))
    edge = (replace(a, x=tr.PLANE_RADIUS_TICKS),)
    with pytest.raises(tr.InvalidProgram):  # off the plane
        tr.run_program(edge, (tr.Step("change_position", "0", "right"),))


def test_gold_program_is_the_unique_shortest(samples) -> None:
    """Brute force, with objects compared as an image shows them (no ids): for short programs
    over every program of at most that length, for longer ones over every matching."""
    for split_samples in samples.values():
        for sample in split_samples[:8]:
            initial, final = tr.scene_from_meta(sample.meta["initial"]), tr.scene_from_meta(sample.meta["final"])
            length, target = sample.meta["length"], _unlabelled(final)
            assert _unlabelled(initial) != target
            if length <= 2:
                singles = _all_single_steps(initial)
                hits = set()
                for k in range(1, length + 1):
                    for combo in itertools.combinations(singles, k):
                        if len({(s.object_id, s.func) for s in combo}) < k:
                            continue  # one object's attribute twice: against the rules
                        if _unlabelled(_apply_all(initial, combo)) == target:
                            hits.add(frozenset(combo))
                assert hits == {frozenset(_program(sample.answer))}
            else:
                costs = []
                for perm in itertools.permutations(range(len(initial))):
                    costs.append((sum(_steps_between(initial[i], final[j]) for i, j in enumerate(perm)), perm))
                best = min(c for c, _ in costs)
                assert best == length
                assert [p for c, p in costs if c == best] == [tuple(range(len(initial)))]


def _apply_all(scene: tr.Scene, steps) -> tr.Scene:
    for step in steps:
        scene = tr.apply_step(scene, step)
    return scene


def _steps_between(a: tr.Obj, b: tr.Obj) -> float:
    """Fewest single steps from a to b with at most one step per attribute (inf if none)."""
    moved = (a.x, a.z) != (b.x, b.z)
    reachable = [tr.apply_step((a,), tr.Step("change_position", a.id, d))[0] for d in tr.DIRECTIONS]
    if moved and not any((o.x, o.z) == (b.x, b.z) for o in reachable):
        return float("inf")
    return sum(getattr(a, k) != getattr(b, k) for k in ("shape", "size", "color", "material")) + moved


# Determinism within and across processes: tests/test_tasks_contract.py, for every task and split.


def test_ambiguity_check_catches_a_swap() -> None:
    """Two small rubber cubes one step apart swapping colours look exactly like two moves."""
    a = tr.Obj("0", "cube", "small", "red", "rubber", 0, 0)
    b = tr.Obj("1", "cube", "small", "blue", "rubber", 10, 0)
    program = (tr.Step("change_color", "0", "blue"), tr.Step("change_color", "1", "red"))
    final = tr.run_program((a, b), program)
    assert tr.is_ambiguous((a, b), final, 2)
    far = replace(b, x=20)
    assert not tr.is_ambiguous((a, far), tr.run_program((a, far), program), 2)


def test_views(samples) -> None:
    config = tr.TransformationConfig()
    centre = config.camera("centre")
    for split, view in (("train", "centre"), ("test-id", "centre"), ("test-ood-left", "left"), ("test-ood-right", "right")):
        for sample in samples[split][:3]:
            initial, final = tr.scene_from_meta(sample.meta["initial"]), tr.scene_from_meta(sample.meta["final"])
            assert sample.meta["final_view"] == view
            assert _png(sample.images[0]) == _png(tr.render(initial, centre, config.image_size))
            centre_final = _png(tr.render(final, centre, config.image_size))
            assert (_png(sample.images[1]) == centre_final) == (view == "centre")
            assert sample.images[0].size == sample.images[1].size == (config.image_size, config.image_size)


def test_camera_frame() -> None:
    """Left is the centre camera's left; the left camera stands on that side, the right one opposite."""
    config = tr.TransformationConfig()
    left, right, centre = config.camera("left"), config.camera("right"), config.camera("centre")
    assert left.azimuth == -right.azimuth < 0
    on_the_left = camera.Solid("cube", -3.0, 0.0, 0.3, (0, 0, 0), "rubber")
    assert camera.depth(left, on_the_left) < camera.depth(centre, on_the_left) < camera.depth(right, on_the_left)
    assert camera.project(centre, (-3.0, 0.0, 0.0), 224)[0] < 112  # left of the image centre
    assert camera.project(centre, (0.0, 0.0, 3.0), 224)[1] > camera.project(centre, (0.0, 0.0, -3.0), 224)[1]  # front is lower


@pytest.mark.parametrize("partial", [True, False])
@pytest.mark.parametrize("repeat_penalty", [True, False])
def test_gold_scores_one_and_perturbed_less(samples, partial, repeat_penalty) -> None:
    for sample in samples["test-id"][:12]:
        tagged = f"<think>\n{sample.cot}\n</think>\n<answer>\n{sample.answer}\n</answer>"
        assert rewards.func_sequence_score(tagged, sample.answer, partial=partial, repeat_penalty=repeat_penalty) == 1.0
        assert TASK.score(tagged, sample.answer) == 1.0
        assert TASK.score(sample.answer, sample.answer) == 1.0
        calls = rewards.parse_calls(sample.answer)
        func, obj, value = calls[0]
        values = tr.FUNCTIONS[func][1]
        wrong = values[(values.index(value) + 1) % len(values)]
        perturbed = ", ".join(f"{f}({o}, {v})" for f, o, v in [(func, obj, wrong)] + calls[1:])
        assert rewards.func_sequence_score(perturbed, sample.answer, partial=partial, repeat_penalty=repeat_penalty) < 1.0
        assert TASK.score(perturbed, sample.answer) < 1.0
        assert TASK.score("", sample.answer) == 0.0


def test_groups_and_prompts(samples) -> None:
    sample = samples["train"][0]
    assert TASK.groups(sample.answer) == (f"L{sample.meta['length']}",)
    cot, zero, answer = (TASK.build_prompt(sample.problem, sample.answer, s) for s in ("cot", "zero-shot", "answer"))
    assert "<think>" in cot and "<think>" not in zero and "<think>" not in answer
    assert all(sample.problem in p and "change_position" in p for p in (cot, zero, answer))
    assert sample.problem.startswith("Initial objects: ('0', ")
    assert sample.cot.endswith(f"So the program is {sample.answer}.")
    assert max(len(s.cot.split()) for ss in samples.values() for s in ss) <= 90


def test_splits_disjoint_and_answers_balanced() -> None:
    keys = {}
    for split in TASK.splits:
        answers, scene_keys = Counter(), set()
        for idx in range(150):
            sample = TASK.sample(split, idx)
            answers[sample.answer] += 1
            scene_keys.add(sample.meta["scene_key"])
        assert answers.most_common(1)[0][1] <= 0.25 * 150
        keys[split] = scene_keys
    for a, b in itertools.combinations(TASK.splits, 2):
        assert not keys[a] & keys[b]


@pytest.mark.parametrize(
    "bad",
    [dict(image_size=8), dict(min_objects=5, max_objects=3), dict(max_objects=20), dict(min_steps=0), dict(max_steps=5), dict(elevation=90.0), dict(ood_azimuth=0.0), dict(max_occlusion=0.0)],
)
def test_bad_config_raises(bad) -> None:
    with pytest.raises(ValueError):
        tr.TransformationConfig(**bad)


def test_small_custom_config() -> None:
    config = tr.TransformationConfig(image_size=96, min_objects=2, max_objects=3, min_steps=2, max_steps=2)
    sample = TASK.sample("test-ood-right", 3, config=config)
    assert sample.images[1].size == (96, 96) and sample.meta["length"] == 2 and sample.meta["num_objects"] <= 3
