"""The policy losses of GRPO (algorithms/rlhf/losses.py): each registered loss against a
loop over samples and tokens that writes its paper's formula out, in value and gradient;
and through GRPO's loss on the tiny model, with its aggregation and the clip flags."""

from __future__ import annotations

import math

import pytest
import torch

from rlkit.algorithms.rlhf.losses import POLICY_LOSSES, PolicyInputs

LOW, HIGH = 0.2, 0.28
REWARD = "rlkit.envs.text.tasks:sorted_exact"


def inputs(seed: int = 0) -> tuple[PolicyInputs, list[int]]:
    """Three samples of 4, 2 and 5 tokens, ratios spread well past both clip edges."""
    g = torch.Generator().manual_seed(seed)
    lengths = [4, 2, 5]
    n = sum(lengths)
    old = -torch.rand(n, generator=g) * 3
    logp = (old + torch.randn(n, generator=g) * 0.4).requires_grad_()
    sample = torch.cat([torch.full((k,), i) for i, k in enumerate(lengths)])
    adv = torch.tensor([1.0, -0.5, 2.0])[sample]
    return PolicyInputs(logp, old, adv, sample, LOW, HIGH), lengths


def clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def naive_token_ratio(lp: list[float], old: list[float], adv: list[float]) -> list[float]:
    """PPO / GRPO / DAPO: per token max(-A r, -A clip(r))."""
    out = []
    for a, b, c in zip(lp, old, adv, strict=True):
        r = math.exp(a - b)
        out.append(max(-c * r, -c * clip(r, 1 - LOW, 1 + HIGH)))
    return out


def per_sample(x: PolicyInputs, lengths: list[int]) -> list[tuple[list[float], ...]]:
    lp, old, adv = x.logp.tolist(), x.old_logp.tolist(), x.advantages.tolist()
    out, start = [], 0
    for k in lengths:
        out.append((lp[start : start + k], old[start : start + k], adv[start : start + k]))
        start += k
    return out


def naive_gradient(fn, x: PolicyInputs, eps: float = 1e-4) -> torch.Tensor:
    """d sum(fn) / d logp by central differences, token by token (float64)."""
    base = x.logp.detach().double()
    grad = torch.zeros_like(base)
    for t in range(len(base)):
        up, down = base.clone(), base.clone()
        up[t] += eps
        down[t] -= eps
        grad[t] = (sum(fn(x._replace(logp=up))) - sum(fn(x._replace(logp=down)))) / (2 * eps)
    return grad


def check(name: str, naive, lengths: list[int], x: PolicyInputs) -> None:
    term = POLICY_LOSSES.get(name).term(x)
    want = naive(x)
    torch.testing.assert_close(
        term.loss.detach().double(), torch.tensor(want, dtype=torch.float64), atol=1e-5, rtol=1e-5
    )
    term.loss.sum().backward()
    assert x.logp.grad is not None
    grad = (
        naive_gradient(naive, x)
        if name != "cispo"
        else torch.tensor(naive_cispo_grad(x), dtype=torch.float64)
    )
    torch.testing.assert_close(x.logp.grad.double(), grad, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("name", ["grpo", "dapo", "dr_grpo"])
def test_the_token_ratio_losses_are_the_clipped_surrogate(name):
    x, lengths = inputs()
    check(
        name,
        lambda x: [v for s in per_sample(x, lengths) for v in naive_token_ratio(*s)],
        lengths,
        x,
    )
    term = POLICY_LOSSES.get(name).term(inputs()[0])
    r = term.ratio
    assert term.clipped.tolist() == ((r > 1 + HIGH) | (r < 1 - LOW)).tolist()
    assert term.clipped.any() and not term.clipped.all()  # the data reach both sides


def naive_gspo(x: PolicyInputs, lengths: list[int]) -> list[float]:
    """GSPO: one ratio per sample, s = exp(mean of its tokens' log-ratios), clipped once;
    every token of the sample carries the sample's term."""
    out = []
    for lp, old, adv in per_sample(x, lengths):
        s = math.exp(sum(a - b for a, b in zip(lp, old, strict=True)) / len(lp))
        term = max(-adv[0] * s, -adv[0] * clip(s, 1 - LOW, 1 + HIGH))
        out += [term] * len(lp)
    return out


def test_gspo_is_one_clipped_ratio_per_sample():
    """The per-token form's value is the sample's term on every token; its gradient (taken
    through pi / sg(pi), GSPO-token) is that of the sequence objective: the sample's term
    averaged over its tokens, each token's derivative s / |y| times the sample's count."""
    x, lengths = inputs(1)
    term = POLICY_LOSSES.get("gspo").term(x)
    torch.testing.assert_close(
        term.loss.detach().double(),
        torch.tensor(naive_gspo(x, lengths), dtype=torch.float64),
        atol=1e-5,
        rtol=1e-5,
    )
    weights = torch.cat([torch.full((k,), 1.0 / k) for k in lengths])  # sequence-mean
    (term.loss * weights).sum().backward()
    assert x.logp.grad is not None

    def sequence_objective(y: PolicyInputs) -> list[float]:
        return [v / lengths[int(i)] for v, i in zip(naive_gspo(y, lengths), y.sample, strict=True)]

    torch.testing.assert_close(
        x.logp.grad.double(), naive_gradient(sequence_objective, x), atol=1e-4, rtol=1e-3
    )
    assert POLICY_LOSSES.get("gspo").aggregation == "sequence-mean"


def naive_cispo(x: PolicyInputs) -> list[float]:
    """CISPO: -sg(clip(r)) A log pi, per token."""
    out = []
    for a, b, c in zip(x.logp.tolist(), x.old_logp.tolist(), x.advantages.tolist(), strict=True):
        out.append(-clip(math.exp(a - b), 1 - LOW, 1 + HIGH) * c * a)
    return out


def naive_cispo_grad(x: PolicyInputs) -> list[float]:
    """The weight is a constant: d/d log pi = -clip(r) A, on every token, clipped or not."""
    return [
        -clip(math.exp(a - b), 1 - LOW, 1 + HIGH) * c
        for a, b, c in zip(x.logp.tolist(), x.old_logp.tolist(), x.advantages.tolist(), strict=True)
    ]


def test_cispo_keeps_the_gradient_of_every_token():
    x, lengths = inputs(2)
    check("cispo", naive_cispo, lengths, x)
    term = POLICY_LOSSES.get("cispo").term(inputs(2)[0])
    assert term.clipped.any()
    assert x.logp.grad is not None and bool((x.logp.grad != 0).all())  # clipped tokens too


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--loss-type", "dapoo"], "--loss-type"),
        (["--is-mask", "sequence"], "--recompute-logps on"),
    ],
    ids=["unknown loss", "is-mask without recomputed log-probs"],
)
def test_bad_loss_flags_are_one_line_naming_the_flag(tmp_path, capsys, flags, named):
    from rlkit.cli import main
    from rlkit.envs.text import tasks as sort

    prompts = sort.write_jsonl(tmp_path / "p.jsonl", sort.prompts(8, seed=0))
    args = ["plan", "grpo", "--prompts", str(prompts), "--reward", REWARD, *flags]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert named in err and len(err.strip().splitlines()) == 1
