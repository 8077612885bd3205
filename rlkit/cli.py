"""The `rlkit` command: run, resume, eval, plan, list.

    rlkit run ppo --env Humanoid [--preset NAME] [--FIELD VALUE ...]
    rlkit run path/to/file.py:Class --env CartPole     (or module:Class, or --algo SPEC)
    rlkit resume RUN_DIR [--torch-threads N --device D --log-every N --eval-every N ...]
    rlkit eval RUN_DIR [--episodes N] [--video] [--show N]
    rlkit plan ppo --env Humanoid [--FIELD VALUE ...]
    rlkit list

Flags of `run` and `plan` come from the algorithm's config dataclass. Bad input prints
one line on stderr and exits with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
import typing
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NoReturn

from rlkit.errors import ConfigError, RLKitError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """Every rlkit parser: exact flag names only (a prefix such as ``--data`` for
    ``--data-split`` would be taken silently), errors as one `ConfigError` line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message}")


def _type_name(annotation: Any, metadata: Mapping[str, Any] | None = None) -> str:
    """A flag's metavar: the field's own (``metadata={"metavar": ...}``), else its type's
    (``tuple[float, ...]`` -> ``FLOAT,FLOAT,...``)."""
    if metadata and "metavar" in metadata:
        return str(metadata["metavar"])
    if typing.get_origin(annotation) is typing.Literal:
        return "{" + ",".join(map(str, typing.get_args(annotation))) + "}"
    if typing.get_origin(annotation) is tuple:
        items = typing.get_args(annotation)
        if len(items) == 2 and items[1] is Ellipsis:
            item = _type_name(items[0])
            return f"{item},{item},..."
        return ",".join(map(_type_name, items))
    return getattr(annotation, "__name__", str(annotation)).upper()


def config_parser(
    prog: str, config_cls: type, preset_fields: Collection[str] = (), preset_kind: str = "env"
) -> _Parser:
    """One flag per config field, documented by the field's docstring line; the help of a
    field in `preset_fields` says that a `preset_kind` preset may set it."""
    from rlkit.config import SECTIONS, field_docs, field_sections, field_types, flag

    parser = _Parser(
        prog=prog,
        usage=f"{prog} [-h] [--preset PRESET] [--FLAG VALUE ...]  (flags by section below)",
        description=(config_cls.__doc__ or "").strip(),
        add_help=True,
    )
    parser.add_argument(
        "--preset",
        default=None,
        help="Preset to start from (default: the "
        + ("env's" if preset_kind == "env" else "--model's family: tiny or pretrained")
        + "; 'none' for none).",
    )
    docs, types = field_docs(config_cls), field_types(config_cls)
    defaults = config_cls()
    sections = field_sections(config_cls)
    order = {name: i for i, name in enumerate(SECTIONS)}
    groups = {
        name: parser.add_argument_group(name)
        for name in sorted(set(sections.values()), key=lambda n: order.get(n, len(order)))
    }
    article = "an" if preset_kind[:1] in "aeiou" else "a"

    def note(name: str) -> str:
        return f"; {article} {preset_kind} preset may set it" if name in preset_fields else ""

    for f in dataclasses.fields(config_cls):
        annotation = types[f.name]
        default = getattr(defaults, f.name)
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if annotation is bool else {}
        groups[sections[f.name]].add_argument(
            f"--{flag(f.name)}",
            dest=f.name,
            default=argparse.SUPPRESS,
            metavar=_type_name(annotation, f.metadata),
            # argparse %-formats help texts: a literal % in a docstring must be doubled
            help=f"{docs.get(f.name, '')} (default: {default}{note(f.name)})".replace("%", "%%"),
            **extra,
        )
    return parser


def _parse_config_args(
    prog: str, algo_cls: Any, argv: Sequence[str]
) -> tuple[str | None, dict[str, Any]]:
    preset_fields = {k.replace("-", "_") for fields in algo_cls.presets().values() for k in fields}
    # an algorithm on an env has env presets; one without (the LLM stages) model presets
    kind = "env" if algo_cls.families else "model"
    parser = config_parser(prog, algo_cls.config_cls, preset_fields, kind)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        bad = next((u for u in unknown if u.startswith("-")), unknown[0])
        from rlkit.config import group_of

        name = bad.split("=")[0]
        data_flags = getattr(algo_cls, "data_flags", ("--data", "--eval-data"))
        if name in ("--data", "--eval-data") and data_flags[0] != "--data":
            instead = data_flags[name == "--eval-data"]
            raise ConfigError(f"{name} does not apply to {algo_cls.name}; give {instead} FILE")
        if bad.startswith("--") and group_of(name[2:].replace("-", "_")):
            raise ConfigError(f"{name} does not apply to {algo_cls.name}")
        options = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
        # a prefix (--temp) is refused, not taken: name the flags it abbreviates
        close = [o for o in options if o.startswith(name) and len(name) > 3][:3]
        close = close or difflib.get_close_matches(name, options, n=1)
        hint = (
            f"; did you mean {' or '.join(close)}? (flags are spelled in full)"
            if close
            else f" (rlkit {prog.split()[-2]} {prog.split()[-1]} --help lists them)"
        )
        what = "unknown option" if bad.startswith("-") else "unexpected argument"
        raise ConfigError(f"{what} {bad!r} for {algo_cls.name}{hint}")
    values = vars(args)
    return values.pop("preset"), values


def _config_from_args(command: str, algo_name: str, argv: Sequence[str]) -> tuple[Any, Any, str]:
    """The algorithm, its config, and the name of the preset in force."""
    import rlkit.algorithms  # noqa: F401  (registers the built-in algorithms)
    from rlkit.plugins import resolve
    from rlkit.trainer import make_config, preset_in_force

    algo_cls = resolve(algo_name)
    preset, values = _parse_config_args(f"rlkit {command} {algo_cls.name}", algo_cls, argv)
    env = values.pop("env", None)
    if env is None and algo_cls.families:
        raise ConfigError(
            f"rlkit {command} {algo_cls.name}: --env is required (rlkit list shows env names)"
        )
    config = make_config(algo_cls, env or "", preset, values)
    return algo_cls, config, preset_in_force(algo_cls, env or "", preset, values)


def cmd_run(algo: str, argv: Sequence[str]) -> int:
    from rlkit.trainer import Trainer

    algo_cls, config, _ = _config_from_args("run", algo, argv)
    return Trainer(algo_cls, config).run()


def cmd_plan(algo: str, argv: Sequence[str]) -> int:
    from rlkit.trainer import build

    algo_cls, config, preset = _config_from_args("plan", algo, argv)
    built = build(algo_cls, config)
    fields = {k.lower(): v for k, v in algo_cls.presets().items()}.get(preset.lower())
    settings = ", ".join(f"{k}={v}" for k, v in (fields or {}).items()) or "the defaults"
    print(f"preset: {preset} ({settings})")
    print(built.algorithm.graph().describe())
    print()
    print(built.placement.plan.describe())
    print()
    print("placement")
    print(built.placement.table())
    notes = built.algorithm.plan_notes()
    if notes:
        print()
        print(notes)
    return 0


def cmd_resume(run_dir: str, total_steps: str | None, argv: Sequence[str] = ()) -> int:
    """Continue a run; `argv` may change its runtime-only settings (`RUNTIME_ONLY`), and
    any other flag is refused in one line naming it, before anything is written."""
    from pathlib import Path

    from rlkit.config import RUNTIME_ONLY, apply_overrides, convert, flag
    from rlkit.trainer import Trainer, load_run, save_config

    algo_cls, config = load_run(Path(run_dir))
    _, values = _parse_config_args(f"rlkit run {algo_cls.name}", algo_cls, argv)  # its flags
    if total_steps is not None:  # converted as `rlkit run` converts it (1e6 is fine)
        config.total_steps = convert("total_steps", int, total_steps)
    before = config.to_dict()
    apply_overrides(config, values)
    changed = [k for k in values if config.to_dict()[k] != before[k]]
    refused = [k for k in changed if k not in RUNTIME_ONLY]
    if refused:
        raise ConfigError(
            f"rlkit resume: {', '.join('--' + flag(k) for k in refused)} cannot change on "
            f"resume (the run would not continue the same training); resume may change "
            f"{', '.join('--' + flag(k) for k in RUNTIME_ONLY)}; start a new run with rlkit run"
        )
    trainer = Trainer(algo_cls, config, Path(run_dir))  # validates the changed settings
    if changed:
        save_config(Path(run_dir), algo_cls.name, config)
    return trainer.run(resume=True)


def cmd_show(run_dir: str, n: int) -> int:
    """`rlkit eval RUN --show N`: prompts, the greedy answers and their rewards."""
    from pathlib import Path

    from rlkit.evaluate import show

    if n < 1:
        raise ConfigError("--show must be at least 1")
    for i, a in enumerate(show(Path(run_dir), n), 1):
        prompt = a.prompt if isinstance(a.prompt, str) else a.prompt[-1]["content"]
        parts = ", ".join(f"{k} {v:.3g}" for k, v in a.rewards.items())
        gold = "" if a.gold is None else f"  gold {a.gold:.3g}"
        print(f"[{i}] prompt: {prompt!r}")
        print(f"    answer: {a.answer!r}")
        print(f"    reward {a.reward:.3g} ({parts}){gold}", flush=True)
    return 0


def cmd_eval(run_dir: str, episodes: int, video: bool, video_length: int) -> int:
    if video:
        os.environ.setdefault(
            "MUJOCO_GL", "egl"
        )  # headless rendering; must precede `import mujoco`
    from pathlib import Path

    from rlkit.evaluate import evaluate

    if episodes < 1:
        raise ConfigError("--episodes must be at least 1")

    def done(index: int, episode_return: float, length: int) -> None:
        # rendered for a video, an episode may take many seconds: show each as it ends
        print(
            f"episode {index + 1}/{episodes}: return {episode_return:.2f} (length {length})",
            flush=True,
        )

    if video:
        print(
            f"recording video of the first episode (up to {video_length} frames) into "
            f"{Path(run_dir) / 'videos'} ...",
            flush=True,
        )
    result = evaluate(Path(run_dir), episodes, video, video_length, on_episode=done)
    if result.returns:
        print(
            f"{episodes} episodes: return {result.mean:.2f} +- {result.std:.2f} "
            f"(length {sum(result.lengths) / len(result.lengths):.0f})"
        )
    for key, value in result.extra.items():
        print(f"{key}: {value:.4g}")
    if result.video:
        print(f"video: {result.video}")
    return 0


def cmd_samples(run_dir: str, step: int | None) -> int:
    """Print a step's sample table (`rlkit.samples`): the last step's by default."""
    from pathlib import Path

    from rlkit import samples

    chosen, rows = samples.read(Path(run_dir), step)
    print(samples.text(chosen, rows))
    return 0


def cmd_list() -> int:
    from rlkit.algorithms import ALGORITHMS
    from rlkit.dataflow import EXECUTORS, POLICIES
    from rlkit.envs.families import families
    from rlkit.extras import EXTRAS, FLAGS, missing
    from rlkit.plugins import load_entry_points, source_of

    load_entry_points()
    print("algorithms:")
    needs: dict[str, list[str]] = {extra: [] for extra in EXTRAS}
    for name in ALGORITHMS:
        algo = ALGORITHMS.get(name)
        source = source_of(algo)
        origin = f"  (plugin: {source})" if source else ""
        trains = algo.trains_on()
        presets = ", ".join(algo.presets()) or "-"
        if not algo.families and algo.presets():
            presets += " (by --model's family)"
        extra = "".join(f"; extra: {e}" for e in algo.extras)
        print(f"  {name:<8} on {trains}; presets: {presets}{extra}{origin}")
        for e in algo.extras:
            needs.setdefault(e, []).append(name)
    print(
        "  (your own: rlkit run path/to/file.py:Class, or an entry point in group rlkit.algorithms)"
    )
    for name in families():
        family = families().get(name)
        print(f"{name} environments (short name -> id; {family.any_id}):")
        for short, full in family.names().items():
            print(f"  {short:<24} {full}")
    print(f"distribution policies: {', '.join(POLICIES)}")
    print(f"executors: {', '.join(EXECUTORS)}")
    print("extras (pip install 'rlkit[NAME]'; in a clone of rlkit: pip install '.[NAME]'):")
    for extra in EXTRAS:
        state = "not installed" if missing(extra) else "installed"
        users = ", ".join(needs.get(extra, [])) or FLAGS.get(extra, "")
        print(f"  {extra:<6} {state:<14} {users}")
    return 0


def cmd_data_example(kind: str, directory: str) -> int:
    """Write the example datasets of the sort task (`rlkit.envs.text.tasks`) to `directory`."""
    from pathlib import Path

    from rlkit.envs.text.tasks import EXAMPLES, example_rows, write_jsonl

    kinds = list(EXAMPLES) if kind == "all" else [kind]
    for k in kinds:
        name, what = EXAMPLES[k]
        rows = example_rows(k)
        path = write_jsonl(Path(directory) / name, rows)
        print(f"{path}: {len(rows):,} rows, {what}")
    print("task: sort 4 digits (the gold reward: --reward rlkit.envs.text.tasks:sorted_exact)")
    return 0


def build_parser() -> _Parser:
    parser = _Parser(
        prog="rlkit",
        description="Reinforcement learning: run, resume, evaluate and plan algorithms.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser(
        "run",
        help="train ALGO on --env ENV (see: rlkit run ALGO --help); ALGO is a name, "
        "path/file.py:Class or module:Class",
        add_help=False,
    )
    run.add_argument("algorithm")
    plan = sub.add_parser(
        "plan", help="print ALGO's graph, plan and placement; trains nothing", add_help=False
    )
    plan.add_argument("algorithm")
    resume = sub.add_parser(
        "resume",
        help="continue a run from its checkpoint; may change runtime-only settings "
        "(--torch-threads, --device, --log-every, --eval-every, --wandb ...)",
    )
    resume.add_argument("run_dir")
    resume.add_argument("--total-steps", default=None, help="raise the step budget")
    ev = sub.add_parser("eval", help="evaluate a run's checkpoint")
    ev.add_argument("run_dir")
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument(
        "--video", action="store_true", help="record the first episode as MP4 (RUN_DIR/videos)"
    )
    ev.add_argument("--video-length", type=int, default=500, help="frames to record at most")
    shown = sub.add_parser("samples", help="print a step's sample table (RL on prompts)")
    shown.add_argument("run_dir")
    shown.add_argument("--step", type=int, default=None, help="the step (default: the last)")
    ev.add_argument(
        "--show",
        type=int,
        default=None,
        metavar="N",
        help="RL stages on prompts: print N held-out prompts, the greedy answers and rewards",
    )
    sub.add_parser("list", help="algorithms, presets, env short names, policies, executors, extras")
    data = sub.add_parser("data", help="datasets: rlkit data example KIND DIR")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    example = data_sub.add_parser(
        "example", help="write a small example dataset (the sort-4-digits task) to DIR"
    )
    example.add_argument("kind", choices=["sft", "prefs", "prompts", "all"])
    example.add_argument("directory", metavar="DIR")
    return parser


def _algo_flag(argv: list[str]) -> list[str]:
    """`rlkit run --algo SPEC ...` -> `rlkit run SPEC ...` (the positional form)."""
    if not argv or argv[0] not in ("run", "plan"):
        return argv
    rest = argv[1:]
    for i, arg in enumerate(rest):
        if arg == "--algo" or arg.startswith("--algo="):
            spec = (
                arg.partition("=")[2] if "=" in arg else (rest[i + 1] if i + 1 < len(rest) else "")
            )
            if not spec:
                raise ConfigError(
                    f"rlkit {argv[0]}: --algo needs module:Class or path/file.py:Class"
                )
            drop = 1 if "=" in arg else 2
            return [argv[0], spec, *rest[:i], *rest[i + drop :]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = _algo_flag(argv)
        args, rest = build_parser().parse_known_args(argv)
        if args.command in ("run", "plan"):
            handler = cmd_run if args.command == "run" else cmd_plan
            return handler(args.algorithm, rest)
        if args.command == "resume":
            return cmd_resume(args.run_dir, args.total_steps, rest)
        if rest:
            raise ConfigError(f"rlkit {args.command}: unexpected argument {rest[0]!r}")
        if args.command == "data":
            return cmd_data_example(args.kind, args.directory)
        if args.command == "samples":
            return cmd_samples(args.run_dir, args.step)
        if args.command == "eval" and args.show is not None:
            return cmd_show(args.run_dir, args.show)
        if args.command == "eval":
            return cmd_eval(args.run_dir, args.episodes, args.video, args.video_length)
        return cmd_list()
    except RLKitError as e:
        print("rlkit: error: " + " ".join(str(e).split()), file=sys.stderr)  # always one line
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `rlkit list | head`: the reader left, nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("\nrlkit: aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
