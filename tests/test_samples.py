"""The sample table (rlkit/samples.py) through the CLI: a GRPO run writes every step's
samples to samples.jsonl, TensorBoard (text) and W&B (offline, a table); `rlkit samples`
prints the last step's or --step N's, and refuses a step it has not got in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlkit.cli import main
from rlkit.envs.text import tasks as sort


@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("samples")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_DIR", str(tmp))
    mp.setenv("WANDB_CONFIG_DIR", str(tmp / "wcfg"))
    prompts = sort.write_jsonl(tmp / "p.jsonl", sort.prompts(16, seed=0))
    flags = ["--prompts", str(prompts), "--device", "cpu", "--prompts-per-step", "4"]
    flags += ["--reward", "rlkit.envs.text.tasks:sorted_exact", "--group-size", "2"]
    flags += ["--gold-reward", "rlkit.envs.text.tasks:sorted_exact"]
    flags += ["--max-new-tokens", "6", "--total-steps", "16", "--wandb"]
    try:
        assert main(["run", "grpo", *flags, "--out", str(tmp), "--name", "s"]) == 0
    finally:
        mp.undo()
    return tmp / "s"


def test_every_step_writes_its_sample_table(grpo_run: Path):
    rows = [json.loads(line) for line in (grpo_run / "samples.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [8] * 8 + [16] * 8
    columns = {"step", "prompt", "response", "reward", "rewards", "gold", "length"}
    assert all(set(r) == columns | {"staleness", "truncated"} for r in rows)
    assert all(r["staleness"] == 0 and isinstance(r["truncated"], bool) for r in rows)
    assert all(set(r["rewards"]) == {"sorted_exact"} and r["gold"] is not None for r in rows)
    assert all(r["length"] <= 6 and (not r["truncated"] or r["length"] == 6) for r in rows)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(grpo_run / "tb"), size_guidance={"tensors": 0})
    events.Reload()
    assert "samples/text_summary" in events.Tags()["tensors"]
    texts = events.Tensors("samples/text_summary")
    assert [t.step for t in texts] == [8, 16]
    assert rows[0]["response"].replace("|", "\\|") in texts[0].tensor_proto.string_val[0].decode()
    tables = list(grpo_run.glob("wandb/offline-run-*/files/media/table/samples_*.table.json"))
    assert len(tables) == 2, list(grpo_run.glob("wandb/**/*"))
    logged = json.loads(tables[0].read_text())
    assert logged["columns"][:3] == ["step", "prompt", "response"] and len(logged["data"]) == 8


def test_rlkit_samples_prints_a_step(grpo_run: Path, capsys):
    assert main(["samples", str(grpo_run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("step 16: 8 samples") and "response" in out
    assert main(["samples", str(grpo_run), "--step", "8"]) == 0
    assert capsys.readouterr().out.startswith("step 8: 8 samples")
    assert main(["samples", str(grpo_run), "--step", "5"]) == 2
    err = capsys.readouterr().err
    assert "--step 5" in err and "8..16" in err and len(err.strip().splitlines()) == 1
