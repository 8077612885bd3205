"""mypy sees the driver-to-role boundary: an edge's producer arguments, a misspelled role
method and a typed group call are type errors, not run-time surprises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = """
from rlkit.algorithms.on_policy import ROLLOUT, WEIGHTS
from rlkit.algorithms.on_policy_roles import OnPolicyActor, OnPolicyLearner
from rlkit.dataflow.executor import Runtime
from rlkit.dataflow.graph import Pattern, edge


def drive(runtime: Runtime) -> None:
    runtime.carry(ROLLOUT, "ten")
    runtime.carry(ROLLOUT, 10, 20)
    runtime.carry(ROLLOUT, 10)
    runtime.carry(WEIGHTS.bind(3))
    edge("x", "actor", "learner", Pattern.GATHER, OnPolicyActor.colect, OnPolicyLearner.update)
    runtime.group("learner", OnPolicyLearner).call(OnPolicyLearner.update, 5)
"""


@pytest.mark.slow
def test_mypy_checks_edge_arguments_and_role_method_names(tmp_path):
    pytest.importorskip("mypy")
    probe = tmp_path / "driver_probe.py"
    probe.write_text(PROBE)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), str(probe)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = [
        line.split(": error: ")[1] for line in result.stdout.splitlines() if ": error: " in line
    ]
    assert errors == [
        'Argument 2 to "carry" of "Runtime" has incompatible type "str"; expected "int"  [arg-type]',
        'Too many arguments for "carry" of "Runtime"  [call-arg]',
        '"type[OnPolicyActor]" has no attribute "colect"  [attr-defined]',
        'Argument 2 to "call" of "Group" has incompatible type "int"; expected "dict[str, Tensor]"  [arg-type]',
    ], result.stdout
