"""Shared fixtures: one nano model per test session (built here, never downloaded)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def nano_model(tmp_path_factory) -> str:
    """A freshly initialised nano Qwen2-VL whose tokenizer knows every registered task."""
    from reasonrft import modeling

    out = tmp_path_factory.mktemp("models") / "nano"
    modeling.init_model("nano", out, seed=0, corpus=modeling.training_corpus(samples_per_split=12))
    return str(out)
