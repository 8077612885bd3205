"""Every numeric field of every registered algorithm's config has a range, checked when the
config is validated: out-of-range values, nan and inf are one line on stderr and exit 2,
before anything is created. Parametrized over `ALGORITHMS` and the configs' fields, so an
algorithm or field added later is covered without a new test."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest

from rlkit.algorithms import ALGORITHMS
from rlkit.cli import main
from rlkit.config import field_types, flag, offered_fields
from rlkit.envs.vector import probe_spec
from rlkit.errors import ConfigError
from rlkit.limits import (
    SEED_MAX,
    Range,
    check_memory,
    check_ranges,
    field_range,
    numeric_kind,
)


def numeric_fields() -> list[tuple[str, dataclasses.Field, type, Range | None]]:
    out = []
    for name in ALGORITHMS:
        cls = ALGORITHMS.get(name).config_cls
        types = field_types(cls)
        for f in dataclasses.fields(cls):
            kind = numeric_kind(types[f.name])
            if kind is not None and f.name in offered_fields(cls):
                out.append((name, f, kind, field_range(f, types[f.name])))
    return out


FIELDS = numeric_fields()


def bad_values(kind: type, rng: Range) -> list[str]:
    """Values outside `rng`, as they would be typed on the command line."""
    values = ["1e30"] if kind is int else ["nan"]
    if kind is float and rng.finite:
        values += ["inf", "-inf"]
    if rng.low is not None:
        below = rng.low if (rng.low_open and kind is float) else rng.low - 1
        values.append(repr(below) if kind is float else str(int(below)))
    if rng.high is not None and (kind is float or rng.high < 1e29):
        above = rng.high if (rng.high_open and kind is float) else rng.high + 1
        values.append(repr(float(above)) if kind is float else str(int(above)))
    if kind is int and rng.low is not None and rng.low >= 0:
        values.append("-1")
    return sorted(set(values))


CASES = [
    pytest.param(algo, f.name, value, id=f"{algo}-{f.name}={value}")
    for algo, f, kind, rng in FIELDS
    for value in bad_values(kind, rng or Range())
]


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlkit: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


@pytest.mark.parametrize(("algo", "field", "kind", "rng"), FIELDS, ids=lambda x: str(x)[:20])
def test_every_numeric_field_declares_its_range(algo, field, kind, rng):
    assert rng is not None, (
        f"{algo}: numeric field {field.name!r} has no range: give it "
        "field(metadata={'range': Range(...)}) or an entry in rlkit.limits.RANGES"
    )


@pytest.mark.parametrize(("algo", "field", "value"), CASES)
def test_out_of_range_values_are_one_line_and_exit_2(
    algo, field, value, tmp_path: Path, capsys, train_args
):
    out = tmp_path / "runs"
    code = main(["run", algo, *train_args(algo), f"--{flag(field)}", value, "--out", str(out)])
    line = one_error_line(capsys)
    assert code == 2
    assert f"--{flag(field)}" in line, line
    assert not out.exists(), "nothing may be created for a refused config"


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_the_ends_of_closed_ranges_pass_the_range_check(algo):
    cls = ALGORITHMS.get(algo).config_cls
    types = field_types(cls)
    for f in dataclasses.fields(cls):
        if f.name not in offered_fields(cls):
            continue
        rng = field_range(f, types[f.name])
        kind = numeric_kind(types[f.name])
        if rng is None or kind is None:
            continue
        for end, is_open in ((rng.low, rng.low_open), (rng.high, rng.high_open)):
            if end is None or is_open:
                continue
            cfg = cls()
            value = kind(end)
            setattr(cfg, f.name, (value,) if typing.get_origin(types[f.name]) is tuple else value)
            check_ranges(cfg)


@pytest.mark.parametrize("seed", [0, SEED_MAX])
def test_seeds_span_numpys_range(seed):
    cfg = ALGORITHMS.get("ppo").config_cls()
    cfg.seed = seed
    cfg.validate()


def test_target_return_may_be_inf_but_not_nan():
    for algo in with_fields("target_return"):  # the algorithms in an env (EnvFields)
        cfg = ALGORITHMS.get(algo).config_cls()
        cfg.target_return = math.inf
        cfg.validate()
        cfg.target_return = math.nan
        with pytest.raises(ConfigError, match="--target-return"):
            cfg.validate()


def with_fields(*names: str) -> list[str]:
    return [
        a
        for a in ALGORITHMS
        if all(n in offered_fields(ALGORITHMS.get(a).config_cls) for n in names)
    ]


SIZE_CASES = [
    pytest.param(algo, field, value, id=f"{algo}-{field}")
    for field, value in [
        ("buffer_size", str(2**39)),
        ("hidden", "200000,200000"),
        ("num_steps", str(2**30)),
    ]
    for algo in with_fields(field)
]


@pytest.mark.parametrize(("algo", "field", "value"), SIZE_CASES)
def test_sizes_beyond_memory_are_refused_before_allocating(
    algo, field, value, tmp_path, capsys, train_args
):
    out = tmp_path / "runs"
    code = main(["run", algo, *train_args(algo), f"--{flag(field)}", value, "--out", str(out)])
    line = one_error_line(capsys)
    assert code == 2 and f"--{flag(field)}" in line and "memory" in line, line
    assert not out.exists()


def test_memory_estimate_uses_the_env_spec():
    cfg = ALGORITHMS.get("sac").config_cls()
    cfg.buffer_size = 10_000_000
    _, spec = probe_spec("Pendulum")
    check_memory(cfg, spec, available=2**40)
    with pytest.raises(ConfigError, match="--buffer-size"):
        check_memory(cfg, spec, available=2**20)


@pytest.mark.parametrize("algo", with_fields("batch_size", "buffer_size"))
def test_batch_larger_than_the_buffer_is_refused(algo, capsys, train_args):
    args = ["--batch-size", "512", "--buffer-size", "256"]
    code = main(["plan", algo, *train_args(algo), *args])
    line = one_error_line(capsys)
    assert code == 2 and "--batch-size" in line and "--buffer-size" in line, line


def test_big_integers_convert_exactly():
    from rlkit.config import convert

    assert convert("seed", int, "9007199254740993") == 9007199254740993
    assert convert("seed", int, "1e3") == 1000


@pytest.mark.parametrize("device", ["cpu:x", "cuda:", "auto:0", "cpu:-1", "gpu"])
def test_malformed_device_is_one_line(device, capsys):
    assert main(["plan", "ppo", "--env", "CartPole", "--device", device]) == 2
    assert device in one_error_line(capsys)


def test_a_config_added_later_gets_ranges_from_metadata_and_defaults():
    from rlkit.config import BaseConfig

    @dataclasses.dataclass
    class LaterConfig(BaseConfig):
        kl_coef: float = dataclasses.field(default=1.0, metadata={"range": Range(low=0)})
        window: int = 8  # no declared range: any int that fits int64
        scale: float = 1.0  # no declared range: any finite float

    for name, value, message in [
        ("kl_coef", -1.0, "--kl-coef: must be a finite number >= 0, got -1"),
        ("window", 10**30, "--window: must be an integer in"),
        ("scale", math.nan, "--scale: must be a finite number, got nan"),
        ("seed", -1, "--seed: must be an integer in [0, 4294967295], got -1"),
    ]:
        cfg = LaterConfig()
        setattr(cfg, name, value)
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            cfg.validate()
    LaterConfig().validate()
