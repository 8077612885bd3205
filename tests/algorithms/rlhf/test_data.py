"""Data for the LLM stages (envs/text/data.py): every file format gives the same
examples, chat turns are masked by role, truncation cuts the stated side, columns map by
flag, and bad data or model paths are one line naming the file and column, exit 2, with
nothing created."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rlkit.cli import main
from rlkit.envs.text.data import Format, pairs, read_rows, sequences
from rlkit.llm.models import load_tokenizer

ROWS = [{"prompt": w, "response": w[::-1]} for w in ("abcd", "bcde", "cdef")]


def write_formats(directory: Path, rows: list[dict[str, str]]) -> dict[str, Path]:
    import datasets

    directory.mkdir(parents=True, exist_ok=True)
    out = {"jsonl": directory / "d.jsonl", "json": directory / "d.json", "csv": directory / "d.csv"}
    out["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    out["json"].write_text(json.dumps(rows))
    with open(out["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ds = datasets.Dataset.from_list(rows)
    out["parquet"] = directory / "d.parquet"
    ds.to_parquet(str(out["parquet"]))
    out["saved"] = directory / "saved"
    datasets.DatasetDict({"train": ds}).save_to_disk(str(out["saved"]))
    return out


def test_every_format_gives_the_same_examples(tmp_path):
    fmt = Format(load_tokenizer("tiny"))
    made = {
        name: sequences(read_rows(str(path)), fmt, "prompt", "response", "messages")
        for name, path in write_formats(tmp_path, ROWS).items()
    }
    first = made["jsonl"]
    assert len(first) == 3
    for name, data in made.items():
        assert (data.ids, data.loss) == (first.ids, first.loss), name


def test_chat_conversations_train_the_assistant_turns_only():
    tok = load_tokenizer("tiny")
    convo = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": "ok"},
    ]
    data = sequences([{"messages": convo}], Format(tok), "prompt", "response", "messages")
    ids, loss = data.ids[0], data.loss[0]
    trained = tok.decode([t for t, m in zip(ids, loss, strict=True) if m])
    assert trained == "yo<|end|></s>ok<|end|></s>"
    assert tok.decode(ids).startswith("<|system|>be brief<|end|><|user|>hi<|end|><|assistant|>yo")


def test_truncation_cuts_the_side_asked_for_and_drops_what_has_no_response():
    tok = load_tokenizer("tiny")
    rows = [{"prompt": "p" * 10, "response": "r" * 10}, {"prompt": "q" * 40, "response": "x"}]
    right = sequences(rows, Format(tok, max_length=20), "prompt", "response", "messages")
    assert right.dropped == 1 and len(right.ids[0]) == 20
    assert tok.decode(right.ids[0]).endswith("<|assistant|>" + "r" * 7)  # the response's end cut
    left = sequences(
        rows, Format(tok, max_length=20, truncation_side="left"), "prompt", "response", "messages"
    )
    assert left.dropped == 0 and tok.decode(left.ids[1]).endswith("x<|end|></s>")
    assert not tok.decode(left.ids[1]).startswith("<|user|>")  # the prompt's start cut
    prefs = [{"prompt": "p" * 30, "chosen": "c" * 4, "rejected": "r" * 8}]
    cut = pairs(
        prefs, Format(tok, max_length=20, truncation_side="left"), "prompt", "chosen", "rejected"
    )
    assert len(cut.prompt[0]) + len(cut.rejected[0]) == 20 and len(cut.chosen[0]) == 6


def test_columns_map_by_flag(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text(
        "".join(json.dumps({"q": r["prompt"], "a": r["response"]}) + "\n" for r in ROWS)
    )
    args = ["run", "sft", "--data", str(data), "--total-steps", "8", "--samples-per-step", "8"]
    out = ["--out", str(tmp_path / "runs"), "--device", "cpu"]
    assert main([*args, "--prompt-column", "q", "--response-column", "a", *out]) == 0


def rows_file(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def line(row: dict) -> str:
    return json.dumps(row) + "\n"


BAD_DATA = {
    # case: (stage, file name, contents, extra flags, fragments the error line must hold)
    "missing-column": (
        "sft",
        "d.jsonl",
        line({"prompt": "a", "answer": "b"}),
        [],
        ["d.jsonl", "'response'", "--response-column"],
    ),
    "missing-pair-column": (
        "dpo",
        "p.jsonl",
        line({"prompt": "a", "chosen": "b"}),
        [],
        ["p.jsonl", "'rejected'"],
    ),
    "empty-file": ("rm", "e.jsonl", "", [], ["e.jsonl", "no rows"]),
    "only-over-long": (
        "sft",
        "l.jsonl",
        line({"prompt": "abcdefgh", "response": "x"}),
        ["--max-length", "6"],
        ["l.jsonl", "--max-length 6", "'prompt'"],
    ),
    "broken-json": (
        "sft",
        "b.jsonl",
        line({"prompt": "a", "response": "b"}) + "{oops\n",
        [],
        ["b.jsonl line 2", "not valid JSON"],
    ),
    "not-text": (
        "sft",
        "n.jsonl",
        line({"prompt": "a", "response": 7}),
        [],
        ["n.jsonl row 1", "'response'", "int"],
    ),
    "unknown-suffix": ("sft", "d.txt", "prompt,response\n", [], ["d.txt", "unknown file type"]),
    "chat-without-template": (
        "sft",
        "c.jsonl",
        line(
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
        ),
        ["--chat-template", "off"],
        ["c.jsonl", "chat template"],
    ),
}


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlkit: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_is_one_line_naming_file_and_column(case, tmp_path, capsys):
    stage, name, text, flags, fragments = BAD_DATA[case]
    path = rows_file(tmp_path / "data", name, text)
    out = tmp_path / "runs"
    assert main(["run", stage, "--data", str(path), *flags, "--out", str(out)]) == 2
    message = one_error_line(capsys)
    for fragment in fragments:
        assert fragment in message, message
    assert not out.exists()


def bad_models(tmp_path: Path) -> dict[str, tuple[str, list[str]]]:
    (tmp_path / "empty").mkdir()
    unfinished = tmp_path / "unfinished-run"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("algorithm: sft\nconfig: {}\n")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    return {
        "no-such-path": (str(tmp_path / "nope"), ["no such file or directory", "tiny"]),
        "not-a-model": (str(tmp_path / "empty"), ["not a model", "config.json"]),
        "run-without-model": (str(unfinished), ["no exported model/", "rlkit resume"]),
        "broken-config": (str(broken), ["cannot load it"]),
        "hub-name-offline": ("nobody/no-such-model", ["nobody/no-such-model", "cannot load it"]),
    }


@pytest.mark.parametrize(
    "case",
    ["no-such-path", "not-a-model", "run-without-model", "broken-config", "hub-name-offline"],
)
def test_bad_model_paths_are_one_line(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec, fragments = bad_models(tmp_path)[case]
    data = rows_file(tmp_path / "data", "d.jsonl", "".join(line(r) for r in ROWS))
    out = tmp_path / "runs"
    assert main(["run", "sft", "--data", str(data), "--model", spec, "--out", str(out)]) == 2
    message = one_error_line(capsys)
    assert spec in message and all(f in message for f in fragments), message
    assert not out.exists()


def test_data_is_required_and_missing_files_are_named(tmp_path, capsys):
    assert main(["run", "sft", "--out", str(tmp_path / "runs")]) == 2
    assert "--data is required" in one_error_line(capsys)
    assert main(["run", "sft", "--data", str(tmp_path / "no.jsonl")]) == 2
    assert "no.jsonl: no such file" in one_error_line(capsys)


def _chat(*turns: str) -> list[dict[str, str]]:
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


TRL_FORMATS = {
    # stage kind -> TRL format name -> rows (as TRL's docs write them)
    "sft": {
        "prompt/completion": [{"prompt": "abc", "completion": "cba"}],
        "conversational prompt/completion": [
            {"prompt": _chat("abc"), "completion": [{"role": "assistant", "content": "cba"}]}
        ],
        "language modeling": [{"text": "abc cba"}],
        "conversational language modeling": [{"messages": _chat("abc", "cba")}],
    },
    "pairs": {
        "explicit prompt": [{"prompt": "abc ", "chosen": "cba", "rejected": "bca"}],
        "implicit prompt": [{"chosen": "abc cba", "rejected": "abc bca"}],
        "conversational explicit prompt": [
            {
                "prompt": _chat("abc"),
                "chosen": [{"role": "assistant", "content": "cba"}],
                "rejected": [{"role": "assistant", "content": "bca"}],
            }
        ],
        "conversational implicit prompt": [
            {"chosen": _chat("abc", "cba"), "rejected": _chat("abc", "bca")}
        ],
    },
    "prompts": {
        "prompt-only": [{"prompt": "abc", "answer": "cba"}],
        "conversational prompt-only": [{"prompt": _chat("abc"), "answer": "cba"}],
        "prompt/completion": [{"prompt": "abc", "completion": "cba"}],
    },
}


@pytest.mark.parametrize("template", ["off", "auto"])
def test_trl_dataset_formats_load_for_each_stage(template):
    """Every TRL format loads as it is for the stages that take it (SFT; RM and DPO share
    the pairs; GRPO and PPO the prompts), plain and conversational; an implicit prompt is
    the answers' shared beginning, so both responses start where they differ."""
    from rlkit.envs.text.prompts import prompts

    fmt = Format(load_tokenizer("tiny"), chat_template=template)
    for name, rows in TRL_FORMATS["sft"].items():
        if template == "off" and "conversational" in name:
            continue
        data = sequences(rows, fmt, "prompt", "response", "messages")
        assert len(data) == 1 and any(data.loss[0]), name
    for name, rows in TRL_FORMATS["pairs"].items():
        if template == "off" and "conversational" in name:
            continue
        data = pairs(rows, fmt, "prompt", "chosen", "rejected")
        assert data.chosen[0] != data.rejected[0], name
        assert data.prompt[0] and len(data.chosen[0]) == len(data.rejected[0]), name
    explicit = pairs(TRL_FORMATS["pairs"]["explicit prompt"], fmt, "prompt", "chosen", "rejected")
    implicit = pairs(TRL_FORMATS["pairs"]["implicit prompt"], fmt, "prompt", "chosen", "rejected")
    assert (implicit.prompt, implicit.chosen) == (explicit.prompt, explicit.chosen)
    for name, rows in TRL_FORMATS["prompts"].items():
        if template == "off" and "conversational" in name:
            continue
        made = prompts(rows, fmt, "prompt")
        assert len(made) == 1 and made.ids[0] and made.prompt[0] == rows[0]["prompt"], name
