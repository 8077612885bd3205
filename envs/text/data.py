"""`--data`: rows from a file or a `datasets` dataset, as token ids for a stage.

Sources: ``.jsonl`` / ``.json`` (JSON lines, or one JSON array), ``.parquet``, ``.csv``, a
`datasets` ``save_to_disk`` directory, or a name `datasets.load_dataset` takes (hub names
need the network). Columns are named by flags (``--prompt-column`` ...). A text is plain
(a string) or chat (a list of ``{"role", "content"}`` messages).

Two shapes of example:

    sequences   SFT: ``prompt`` + ``response``, or chat ``messages``; the ids of the whole
                text and a loss mask that is True on response (assistant) tokens only
    pairs       RM and DPO: ``prompt`` + ``chosen`` + ``rejected``; the prompt's ids and
                the ids of each response

TRL's dataset formats load as they are (`TRL_COLUMNS`): prompt/completion rows (a
``completion`` column where ``response`` is asked for), language-modeling ``text`` rows
(SFT; every token trained), and preferences with an implicit prompt (``chosen`` and
``rejected`` whole conversations or texts, no ``prompt`` column: the prompt is their
common beginning, `implicit_prompt`); each plain or conversational.

Chat templates (``--chat-template auto``): chat data is rendered with the tokenizer's
template; plain prompts too when the tokenizer has one (as a user turn, the response as
the assistant's), so a fine-tune sees what inference will. Each response ends with the
eos token. Examples longer than ``--max-length`` are cut on the ``--truncation-side``
(``right``: the response's end; ``left``: the prompt's start); one with no response token
left is dropped. Bad input is one `ConfigError` line naming the file and the column.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlkit.errors import ConfigError

Rows = list[dict[str, Any]]
Text = str | list[dict[str, str]]


def _jsonl(path: Path) -> Rows:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path} line {number}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path} line {number}: a row must be a JSON object")
            rows.append(row)
    return rows


def _json(path: Path) -> Rows:
    text = path.read_text(encoding="utf-8")
    if not text.lstrip().startswith("["):
        return _jsonl(path)
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
    if not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"{path}: the array must hold JSON objects (one per row)")
    return list(rows)


def _csv(path: Path) -> Rows:
    with open(path, encoding="utf-8", newline="") as f:
        return [dict(r) for r in csv.DictReader(f)]


def _parquet(path: Path) -> Rows:
    import pyarrow.parquet as pq

    try:
        return list(pq.read_table(path).to_pylist())
    except Exception as e:  # pyarrow raises its own ArrowInvalid for a broken file
        raise ConfigError(f"{path}: not a readable Parquet file ({e})") from None


READERS: dict[str, Callable[[Path], Rows]] = {
    ".jsonl": _jsonl,
    ".json": _json,
    ".csv": _csv,
    ".parquet": _parquet,
}
"""File suffix -> reader (rows as dicts)."""


def read_rows(spec: str, split: str = "train", flag: str = "--data") -> Rows:
    """The rows of a file, a saved dataset directory or a `datasets` name (`flag`: the
    option that gave it, for the messages)."""
    path = Path(spec).expanduser()
    if path.is_file():
        reader = READERS.get(path.suffix.lower())
        if reader is None:
            raise ConfigError(
                f"{flag} {spec}: unknown file type {path.suffix!r}; use one of "
                f"{', '.join(READERS)}, or a datasets directory or name"
            )
        try:
            rows = reader(path)
        except UnicodeDecodeError:
            raise ConfigError(f"{spec}: not UTF-8 text") from None
    elif path.is_dir():
        rows = _from_disk(path, split, flag)
    elif spec.startswith((".", "/", "~")) or path.suffix.lower() in READERS:
        raise ConfigError(f"{flag} {spec}: no such file or directory")
    else:
        rows = _load_dataset(spec, split, flag)
    if not rows:
        raise ConfigError(f"{spec}: no rows (an empty dataset); give a file with examples")
    return rows


def _from_disk(path: Path, split: str, flag: str) -> Rows:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(
            f"{flag} {path}: not a saved dataset directory ({' '.join(str(e).split())[:200]})"
        ) from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ConfigError(f"{flag} {path}: no split {split!r} (splits: {', '.join(ds)})")
        ds = ds[split]
    return list(ds.to_list())


def _load_dataset(name: str, split: str, flag: str) -> Rows:
    import datasets

    try:
        return list(datasets.load_dataset(name, split=split).to_list())
    except Exception as e:  # offline, unknown name, missing split: datasets has many kinds
        raise ConfigError(
            f"{flag} {name}: datasets cannot load it ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]})"
        ) from None


# -- formatting --------------------------------------------------------------------------
@dataclass
class Format:
    """How texts become token ids: the tokenizer, the chat-template choice, the length."""

    tokenizer: Any
    chat_template: str = "auto"
    """auto (chat data always; plain texts too when the tokenizer has a template), on, off."""
    max_length: int = 512
    truncation_side: str = "right"
    where: str = ""
    """The data's name, for messages."""

    def templated(self, text: Text) -> bool:
        has = bool(getattr(self.tokenizer, "chat_template", None))
        chat = isinstance(text, list)
        if self.chat_template == "off":
            if chat:
                raise ConfigError(
                    f"{self.where}: chat-format data needs a chat template; --chat-template off"
                )
            return False
        if (chat or self.chat_template == "on") and not has:
            raise ConfigError(
                f"{self.where}: the tokenizer has no chat template to render chat data; "
                "give plain text columns or a model with a template"
            )
        return chat or has

    def ids(self, text: str, special: bool = False) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def render(self, messages: list[dict[str, str]], generation: bool) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation
            )
        )

    def with_eos(self, ids: list[int]) -> list[int]:
        """`ids` ending a response: eos appended unless it is there (a chat template's
        end of turn is often the eos, followed by a newline)."""
        eos = self.tokenizer.eos_token_id
        return ids if eos is None or eos in ids else [*ids, eos]

    def segments(self, messages: list[dict[str, str]]) -> list[tuple[list[int], bool]]:
        """A conversation as (ids, is-assistant) segments, rendered by the chat template."""
        out: list[tuple[list[int], bool]] = []
        done = ""
        for i, m in enumerate(messages):
            if m.get("role") != "assistant":
                continue
            before = self.render(messages[:i], generation=True)
            full = self.render(messages[: i + 1], generation=False)
            if not before.startswith(done) or not full.startswith(before):
                raise ConfigError(
                    f"{self.where}: the chat template does not render turns as prefixes of "
                    "the conversation, so the assistant turns cannot be masked"
                )
            out += [(self.ids(before[len(done) :]), False)]
            out += [(self.with_eos(self.ids(full[len(before) :])), True)]
            done = full
        return [(ids, loss) for ids, loss in out if ids]


def _text(row: dict[str, Any], column: str, where: str, number: int, role: str = "") -> Text:
    """The text in `column` of `row`; `role` is the flag's stem that names the column
    (``response`` for ``--response-column``), which may differ from the column's name."""
    if column not in row:
        raise ConfigError(
            f"{where}: no column {column!r} (columns: {', '.join(map(str, row)) or 'none'}); "
            f"map one with --{_column_flag(role or column)} NAME"
        )
    value = row[column]
    ok_chat = isinstance(value, list) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in value
    )
    if not (isinstance(value, str) or ok_chat):
        raise ConfigError(
            f"{where} row {number}: column {column!r} must be text or a list of "
            f'{{"role", "content"}} messages, got {type(value).__name__}'
        )
    for i, m in enumerate(value if ok_chat else []):
        if not isinstance(m["content"], str) or not isinstance(m["role"], str):
            key = "content" if not isinstance(m["content"], str) else "role"
            raise ConfigError(
                f"{where} row {number}: column {column!r} message {i + 1} has a {key} of "
                f"type {type(m[key]).__name__}; a message's role and content must be strings"
            )
    return value


def _column_flag(column: str) -> str:
    return f"{column.replace('_', '-')}-column"


def _messages(text: Text, role: str) -> list[dict[str, str]]:
    return text if isinstance(text, list) else [{"role": role, "content": text}]


@dataclass
class Sequences:
    """SFT examples: token ids and a loss mask (response tokens) per example."""

    ids: list[list[int]] = field(default_factory=list)
    loss: list[list[bool]] = field(default_factory=list)
    dropped: int = 0
    """Examples left with no response token after truncation."""
    positions: list[list[int]] | None = None
    """Position ids per row when examples are packed (restarting at each example)."""

    def __len__(self) -> int:
        return len(self.ids)


TRL_COLUMNS = {"response": ("completion",)}
"""A column's TRL name, used when the data lacks the column asked for (and the flag kept
its default): TRL's prompt/completion format is rlkit's prompt/response."""


def column_in(rows: Rows, column: str) -> str:
    """`column`, or its TRL name (`TRL_COLUMNS`) when the rows have that instead."""
    if column in rows[0]:
        return column
    return next((c for c in TRL_COLUMNS.get(column, ()) if c in rows[0]), column)


def sequences(rows: Rows, fmt: Format, prompt: str, response: str, messages: str) -> Sequences:
    """SFT examples from ``messages`` (chat), ``prompt`` + ``response`` (or TRL's
    ``completion``) columns, or TRL's language-modeling ``text`` (every token trained)."""
    chat = messages in rows[0]
    response = column_in(rows, response)
    text_only = not chat and prompt not in rows[0] and "text" in rows[0]
    out = Sequences()
    silent = 0  # examples with no response token before any truncation
    for number, row in enumerate(rows, 1):
        if chat:
            convo = _text(row, messages, fmt.where, number, "messages")
            if not isinstance(convo, list):
                raise ConfigError(f"{fmt.where} row {number}: {messages!r} must be messages")
            fmt.templated(convo)  # refused without a template
            parts = fmt.segments(convo)
        elif text_only:
            parts = _language_modeling(fmt, _text(row, "text", fmt.where, number))
        else:
            p = _text(row, prompt, fmt.where, number, "prompt")
            r = _text(row, response, fmt.where, number, "response")
            parts = _prompt_response(fmt, p, r)
        ids = [t for seg, _ in parts for t in seg]
        loss = [flag for seg, flag in parts for _ in seg]
        silent += not any(loss)
        ids, loss = _truncate(ids, loss, fmt)
        if not any(loss):
            out.dropped += 1
            continue
        out.ids.append(ids)
        out.loss.append(loss)
    if silent == len(rows):
        what = "an assistant turn" if chat else f"a non-empty {response!r}"
        raise ConfigError(
            f"{fmt.where}: no example has {what}, so there is nothing to train on; "
            "give examples with a response"
        )
    if not out.ids:
        column = messages if chat else prompt
        raise ConfigError(
            f"{fmt.where}: every example is longer than --max-length {fmt.max_length} in "
            f"column {column!r} before its response starts; raise --max-length or use "
            "--truncation-side left"
        )
    return out


def _language_modeling(fmt: Format, text: Text) -> list[tuple[list[int], bool]]:
    """A ``text`` row: every token trained (a conversation: its rendering)."""
    if isinstance(text, list):
        fmt.templated(text)
        return [(fmt.with_eos(fmt.ids(fmt.render(text, generation=False))), True)]
    return [(fmt.with_eos(fmt.ids(text, special=True)), True)]


def _prompt_response(fmt: Format, prompt: Text, response: Text) -> list[tuple[list[int], bool]]:
    if fmt.templated(prompt) or fmt.templated(response):
        return fmt.segments(_messages(prompt, "user") + _messages(response, "assistant"))
    assert isinstance(prompt, str) and isinstance(response, str)
    return [(fmt.ids(prompt, special=True), False), (fmt.with_eos(fmt.ids(response)), True)]


def _truncate(ids: list[int], loss: list[bool], fmt: Format) -> tuple[list[int], list[bool]]:
    n = fmt.max_length
    if len(ids) <= n:
        return ids, loss
    if fmt.truncation_side == "left":
        return ids[-n:], loss[-n:]
    return ids[:n], loss[:n]


@dataclass
class Pairs:
    """Preference examples: the prompt's ids and each response's, per pair."""

    prompt: list[list[int]] = field(default_factory=list)
    chosen: list[list[int]] = field(default_factory=list)
    rejected: list[list[int]] = field(default_factory=list)
    dropped: int = 0
    ref_logps: Any = None
    """The reference's log-probs ``[N, 2]`` when precomputed (DPO)."""

    def __len__(self) -> int:
        return len(self.prompt)


def pairs(rows: Rows, fmt: Format, prompt: str, chosen: str, rejected: str) -> Pairs:
    """Preference pairs from ``prompt`` + ``chosen`` + ``rejected`` columns, or, with no
    prompt column, TRL's implicit-prompt preferences (`implicit_prompt`)."""
    out = Pairs()
    implicit = prompt not in rows[0] and chosen in rows[0] and rejected in rows[0]
    for number, row in enumerate(rows, 1):
        c = _text(row, chosen, fmt.where, number, "chosen")
        r = _text(row, rejected, fmt.where, number, "rejected")
        if implicit:
            p, c, r = implicit_prompt(c, r, f"{fmt.where} row {number}")
        else:
            p = _text(row, prompt, fmt.where, number, "prompt")
        p_ids, c_ids = _split_ids(fmt, p, c)
        _, r_ids = _split_ids(fmt, p, r)
        cut = _truncate_pair(p_ids, c_ids, r_ids, fmt)
        if cut is None:
            out.dropped += 1
            continue
        out.prompt.append(cut[0])
        out.chosen.append(cut[1])
        out.rejected.append(cut[2])
    if not out.prompt:
        raise ConfigError(
            f"{fmt.where}: every pair is longer than --max-length {fmt.max_length} in column "
            f"{prompt!r} before its responses start; raise --max-length or use "
            "--truncation-side left"
        )
    if all(c == r for c, r in zip(out.chosen, out.rejected, strict=True)):
        raise ConfigError(
            f"{fmt.where}: in every pair column {chosen!r} equals column {rejected!r} (as "
            "tokens, after --max-length), so there is no preference to learn; check that "
            "--chosen-column and --rejected-column name different responses"
        )
    return out


def implicit_prompt(chosen: Text, rejected: Text, where: str) -> tuple[Text, Text, Text]:
    """(prompt, chosen response, rejected response) of a preference whose prompt is inside
    both answers: for conversations the messages they share up to the last one before the
    answers part (the answers start with an assistant turn); for texts the characters they
    share, cut back to the last whitespace so an answer starts at a word."""
    if isinstance(chosen, list) and isinstance(rejected, list):
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
            n += 1
        while n > 0 and chosen[n].get("role") != "assistant":
            n -= 1  # the answers start at an assistant turn
        if n == 0:
            raise ConfigError(
                f"{where}: 'chosen' and 'rejected' share no prompt before an assistant turn; "
                "give a 'prompt' column (--prompt-column NAME)"
            )
        return chosen[:n], chosen[n:], rejected[n:]
    if isinstance(chosen, str) and isinstance(rejected, str):
        n = 0
        while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
            n += 1
        while n > 0 and not chosen[n - 1].isspace():
            n -= 1
        if n == 0:
            raise ConfigError(
                f"{where}: 'chosen' and 'rejected' share no prompt text; give a 'prompt' "
                "column (--prompt-column NAME)"
            )
        return chosen[:n], chosen[n:], rejected[n:]
    raise ConfigError(f"{where}: 'chosen' and 'rejected' must both be texts or both messages")


def _split_ids(fmt: Format, prompt: Text, response: Text) -> tuple[list[int], list[int]]:
    parts = _prompt_response(fmt, prompt, response)
    p = [t for seg, loss in parts if not loss for t in seg]
    r = [t for seg, loss in parts if loss for t in seg]
    return p, r


def _truncate_pair(
    p: list[int], c: list[int], r: list[int], fmt: Format
) -> tuple[list[int], list[int], list[int]] | None:
    n, longest = fmt.max_length, max(len(c), len(r))
    if len(p) + longest <= n:
        return p, c, r
    if fmt.truncation_side == "left":
        keep = n - longest
        return (p[-keep:], c, r) if keep > 0 else None
    room = n - len(p)
    return (p, c[:room], r[:room]) if room > 0 else None


def prompt_ids(fmt: Format, prompt: Text) -> list[int]:
    """The ids a model is prompted with for `prompt`, as training formatted it (for
    generation: the chat template's assistant turn opened)."""
    if fmt.templated(prompt):
        return fmt.ids(fmt.render(_messages(prompt, "user"), generation=True))
    assert isinstance(prompt, str)
    return fmt.ids(prompt, special=True)
