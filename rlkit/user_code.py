"""The boundary around user code (reward functions, env factories): whatever a user's
function does, the run ends in one line that names it, or goes on.

A user's function runs in a daemon thread while the run waits for it, so that:

- one that never returns is abandoned after its timeout (``--reward-timeout``) with a
  `TrainingError` naming it, and a Ctrl-C while it runs stops the run at once (the
  trainer's first Ctrl-C normally waits for the iteration to end; an iteration stuck in
  user code would never end);
- what it raises, `SystemExit` and `KeyboardInterrupt` included, becomes one line naming
  it (a ``sys.exit(3)`` inside a reward function must not end rlkit silently with 3);
- it gets deep copies of the data it is given: a function that appends to a list-valued
  column must not change the dataset the next epoch (or a resumed run) reads (callables,
  such as TRL's ``log_metric`` callback, are passed as they are: a copy would log into a
  copy).

The thread costs ~50 us a call, nothing beside a reward call's own cost.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlkit.errors import TrainingError

INTERRUPT = threading.Event()
"""Set by the trainer on the first Ctrl-C: a call waiting for user code that was running
when it came gives up at once (KeyboardInterrupt); the second Ctrl-C raises anyway."""

POLL_S = 0.05
"""How often a wait looks at `INTERRUPT` (Ctrl-C answers within this)."""


@dataclass
class UserCall:
    """One call of a user's function: `fn(**kwargs)` as `who` (the flag and its value,
    e.g. ``--reward my.py:score``), within `timeout_s` seconds (0: no limit)."""

    fn: Callable[..., Any]
    who: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 0.0
    timeout_flag: str = "--reward-timeout"
    hint: str = ""
    """What the function is expected to do, added to the message when it raises."""


def run(call: UserCall) -> Any:
    """`call.fn(**copies of call.kwargs)`'s result; TrainingError naming `call.who` when it
    raises, exits or runs past its timeout; KeyboardInterrupt on Ctrl-C meanwhile."""
    kwargs = {k: v if callable(v) else copy.deepcopy(v) for k, v in call.kwargs.items()}
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call.fn(**kwargs)
        except BaseException as e:  # noqa: BLE001 - SystemExit too: reported, never obeyed
            outcome["error"] = e

    thread = threading.Thread(target=target, name=f"rlkit user code {call.who}", daemon=True)
    # a Ctrl-C from before the call (during generation, say) asks for the step to finish
    # and be saved: only one that arrives while the user's code runs abandons it
    abandon = not INTERRUPT.is_set()
    thread.start()
    _wait(thread, call, abandon_on_interrupt=abandon)
    if "error" in outcome:
        raise TrainingError(_raised(call, outcome["error"])) from None
    return outcome["value"]


def _wait(thread: threading.Thread, call: UserCall, abandon_on_interrupt: bool) -> None:
    waited = 0.0
    while thread.is_alive():
        if abandon_on_interrupt and INTERRUPT.is_set():
            raise KeyboardInterrupt
        if call.timeout_s and waited >= call.timeout_s:
            raise TrainingError(
                f"{call.who} did not return within {call.timeout_flag} {call.timeout_s:g} "
                "seconds; make it faster or raise the timeout; the last checkpoint is intact"
            )
        step = POLL_S if not call.timeout_s else min(POLL_S, call.timeout_s - waited)
        thread.join(step)
        waited += step


def _raised(call: UserCall, error: BaseException) -> str:
    if isinstance(error, SystemExit):
        what = f"called sys.exit({error.code!r})"
    else:
        what = f"raised {type(error).__name__}: {' '.join(str(error).split())[:200]}"
    hint = f"; {call.hint}" if call.hint else ""
    return f"{call.who} {what}; fix the function{hint}"
