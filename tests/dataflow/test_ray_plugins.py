"""User algorithms from files (tests/user_algorithms/) under Ray, through the CLI, on the
session's shared Ray (`ray_local`): their classes reach the workers by value (no
PYTHONPATH needed), and a synchronous plan gives the same metrics as `local` -- for an
ES whose driver is the source of both edges, an A2C and a TD3."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

pytest.importorskip("ray")

from rlkit.cli import main  # noqa: E402

USER = Path(__file__).resolve().parents[1] / "user_algorithms"


def rows(run_dir: Path, drop: tuple[str, ...] = ("time", "sps")) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def run_both(tmp_path: Path, spec: str, args: list[str], local_actors: int) -> list[list[dict]]:
    """`rlkit run` under local (`local_actors` actors) and under Ray with 2 actors; both
    runs' metrics rows (time and SPS left out)."""
    out = []
    for name, extra in (
        ("local", ["--actors", str(local_actors)]),
        ("ray", ["--executor", "ray", "--actors", "2"]),
    ):
        code = main(
            ["run", f"{USER / spec}", *args, *extra, "--out", str(tmp_path), "--name", name]
        )
        assert code == 0
        out.append(rows(tmp_path / name))
    return out


@pytest.mark.slow
def test_es_driver_edges_same_numbers_local_and_ray(ray_local: object, tmp_path: Path) -> None:
    """The seeds are scattered over 1 worker locally and 2 on Ray: the same metrics."""
    local, ray = run_both(
        tmp_path, "es.py:ES", ["--env", "CartPole", "--total-steps", "3000", "--seed", "0"], 1
    )
    assert len(local) >= 3 and local == ray
    assert main(["eval", str(tmp_path / "ray"), "--episodes", "2"]) == 0


@pytest.mark.slow
def test_a2c_same_numbers_local_and_ray(ray_local: object, tmp_path: Path) -> None:
    args = ["--env", "CartPole", "--total-steps", "2000", "--seed", "0", "--device", "cpu"]
    local, ray = run_both(tmp_path, "a2c.py:A2C", args, 2)
    assert len(local) >= 10 and local == ray
    assert main(["resume", str(tmp_path / "ray"), "--total-steps", "2400"]) == 0


@pytest.mark.slow
def test_td3_same_numbers_local_and_ray(ray_local: object, tmp_path: Path) -> None:
    args = ["--env", "Pendulum", "--total-steps", "1200", "--seed", "0", "--device", "cpu",
            "--learning-starts", "800", "--log-every", "200"]  # fmt: skip
    local, ray = run_both(tmp_path, "td3.py:TD3", args, 2)
    assert len(local) >= 4 and local == ray
    assert "critic_loss" in local[-1]
