#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment at .venv in the repository root.
# torch is installed first at its pinned version so that the CPU wheel is used; everything
# else installs against constraints.txt, which keeps that pin. Re-runs are cheap: the
# environment is rebuilt only when pyproject.toml or constraints.txt change.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.reasonrft-install-stamp"
want="$(cat "$root/pyproject.toml" "$root/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi
echo "[bootstrap] setting up $venv (first run takes about three minutes)" >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >&2
"$venv/bin/python" -m pip install -q "torch==2.13.0" >&2
"$venv/bin/python" -m pip install -q -c "$root/constraints.txt" -e "$root[dev,deepspeed]" >&2  # deepspeed: the suite runs ZeRO-2 on the CPU
# DeepSpeed on a CPU JIT-compiles its shared-memory communication op on first use (about 90 s
# of CPU): build it here once, not inside a test's time limit. Into the venv, not the shared
# ~/.cache/torch_extensions: the build's flags hold the venv's path, so there every other venv on
# the machine (a fresh clone, CI) rebuilds it in turn. tests/conftest.py points at the same place.
export TORCH_EXTENSIONS_DIR="$venv/torch_extensions"
"$venv/bin/python" -c "import torch
if not torch.accelerator.is_available():
    from deepspeed.accelerator import get_accelerator
    get_accelerator().create_op_builder('ShareMemCommBuilder').load()" >&2
echo "$want" > "$stamp"
echo "[bootstrap] ready" >&2
