"""Where metrics go: a CSV file, TensorBoard events, optionally Weights & Biases, and a
learning-curve PNG at the end. One row per training iteration, keyed by env step."""

from __future__ import annotations

import csv
import math
import os
import uuid
from pathlib import Path
from typing import Any

from rlkit import samples
from rlkit.checkpoint import atomic_write
from rlkit.errors import CheckpointError

CSV_NAME = "metrics.csv"
CURVE_NAME = "learning_curve.png"


class MetricsLogger:
    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        use_wandb: bool = False,
        wandb_project: str = "rlkit",
        resume_step: int | None = None,
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.csv_path = self.run_dir / CSV_NAME
        self.columns: list[str] | None = None
        if resume_step is not None and self.csv_path.exists():
            self.columns = self._truncate(resume_step)
        elif self.csv_path.exists():
            self.csv_path.unlink()
        if resume_step is not None:
            samples.keep_until(self.run_dir, resume_step)
        else:
            (self.run_dir / samples.SAMPLES_NAME).unlink(missing_ok=True)
        purge = resume_step + 1 if resume_step is not None else None
        self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)
        self.wandb: Any = None
        if use_wandb:
            self.wandb = _start_wandb(self.run_dir, config, wandb_project, resume_step is not None)

    def _truncate(self, step: int) -> list[str] | None:
        """Keep the rows written up to the checkpoint being resumed (drop later ones).

        The file is rewritten beside itself and renamed over the old one, so a kill at any
        moment leaves either the old file or the new one. A last line cut short by a kill
        (no newline at its end) is dropped; any other malformed row is refused."""
        header, body = read_rows(self.csv_path)
        if header is None:
            return None
        kept = [r for s, r in body if s <= step]
        self._write_all(header, kept)
        return header

    def log(self, row: dict[str, float]) -> None:
        """Append one row; `row["step"]` is the x axis everywhere. A key seen for the first
        time (e.g. learner metrics once off-policy learning starts) adds a column."""
        step = int(row["step"])
        if self.columns is None:
            self.columns = ["step", *[k for k in row if k != "step"]]
            self._rewrite([])
        elif any(k not in self.columns for k in row):
            with open(self.csv_path, newline="") as f:
                old = list(csv.DictReader(f))
            self.columns += [k for k in row if k not in self.columns]
            self._rewrite(old)
        with open(self.csv_path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c, "")) for c in self.columns])
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)):
                self.tb.add_scalar(key, value, step)
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in row.items() if k != "step"}, step=step)

    def log_samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        """A step's sample table (`rlkit.samples`): JSONL, TensorBoard text, a W&B table."""
        samples.append(self.run_dir, step, rows)
        self.tb.add_text("samples", samples.markdown(rows), step)
        if self.wandb is not None:
            import wandb

            columns: list[str | int] = ["step", *samples.COLUMNS]
            data = [[step, *(_wandb_cell(r.get(c)) for c in samples.COLUMNS)] for r in rows]
            self.wandb.log({"samples": wandb.Table(columns=columns, data=data)}, step=step)

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        assert self.columns is not None
        columns = self.columns
        self._write_all(columns, [[r.get(c, "") for c in columns] for r in rows])

    def _write_all(self, header: list[str], rows: list[list[str]]) -> None:
        """Replace the CSV atomically (write beside it, fsync, rename)."""

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(header)
                writer.writerows(rows)

        atomic_write(self.csv_path, write)

    def close(self) -> Path | None:
        """Flush everything and draw the learning curve; returns the PNG path."""
        self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
        return plot_learning_curve(self.csv_path, self.run_dir / CURVE_NAME)


def read_rows(path: Path) -> tuple[list[str] | None, list[tuple[float, list[str]]]]:
    """The header and (step, row) pairs of a metrics CSV; CheckpointError naming the line
    of a row that is not a metrics row. A last line without its newline (a write cut
    short by a kill) is left out."""
    try:
        with open(path, newline="") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is corrupt: not text; delete it to resume") from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # the row being appended when the run was killed
    lines = list(csv.reader(text.splitlines(keepends=True)))
    if not lines:
        return None, []
    header, body = lines[0], []
    if not header or header[0] != "step":
        raise CheckpointError(f"{path} is corrupt: its first line is not a header (step, ...)")
    for number, row in enumerate(lines[1:], start=2):
        if not row:
            continue
        step = _float(row[0])
        if len(row) != len(header) or step is None or not math.isfinite(step):
            raise CheckpointError(
                f"{path} line {number} is not a metrics row ({','.join(row)[:40]!r}): "
                "delete that line and resume again"
            )
        body.append((step, row))
    return header, body


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _fmt(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value


def _wandb_cell(value: Any) -> Any:
    """A table cell W&B takes: numbers, strings and bools as they are, anything else as text."""
    return value if isinstance(value, (int, float, str, bool)) else samples.cell(value)


def _start_wandb(run_dir: Path, config: dict[str, Any], project: str, resume: bool) -> Any:
    import wandb

    os.environ.setdefault("WANDB_DIR", str(run_dir))
    os.environ.setdefault("WANDB_CONFIG_DIR", str(run_dir / "wandb-config"))
    mode = os.environ.get("WANDB_MODE") or (
        "online" if os.environ.get("WANDB_API_KEY") else "offline"
    )
    id_file = run_dir / "wandb_id"
    run_id = id_file.read_text().strip() if resume and id_file.exists() else uuid.uuid4().hex[:8]
    id_file.write_text(run_id)
    return wandb.init(
        project=project,
        dir=str(run_dir),
        config=config,
        mode=mode,  # type: ignore[arg-type]
        id=run_id,
        resume="allow",
        name=run_dir.name,
    )


CURVES = (
    ("reward", ("reward", "gold_reward", "eval_reward", "eval_gold_reward", "accuracy")),
    ("loss and KL", ("loss", "objective", "eval_loss", "kl")),
)
"""The panels of a learning curve on data (LLM stages): the reward a stage optimizes (a
reward model's accuracy) and the gold beside it; its loss and the KL it pays. Each panel
is drawn when its columns exist; two at most, since every run draws its curve (a panel
costs about 0.3 s of matplotlib)."""


def _series(rows: list[dict[str, str]], key: str) -> list[tuple[float, float]]:
    return [(float(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "", "nan")]


def plot_learning_curve(csv_path: Path, png_path: Path) -> Path | None:
    """Episode return against env steps (an algorithm on an env), or what an LLM stage
    optimizes (`CURVES`) against samples, from the metrics CSV."""
    if not csv_path.exists():
        return None
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    on_env = bool(rows) and "episode_return" in rows[0]
    panels = [
        (title, [(k, _series(rows, k)) for k in keys if _series(rows, k)]) for title, keys in CURVES
    ]
    panels = [p for p in panels if p[1]]
    if on_env or not panels:
        panels = [("episode return (mean of last 100)", [("", _series(rows, "episode_return"))])]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.2 + 1.8 * len(panels)), dpi=100)
    axes = axes if len(panels) > 1 else [axes]
    for ax, (title, series) in zip(axes, panels, strict=True):
        for name, points in series:
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, label=name or None)
        if any(name for name, _ in series):
            ax.legend(fontsize=8)
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("environment steps" if on_env or not rows else "samples")
    axes[0].set_title(csv_path.parent.name)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.1, hspace=0.25)
    fig.savefig(png_path)
    plt.close(fig)
    return png_path
