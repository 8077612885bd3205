"""The exact state of a PettingZoo env, saved and restored for resume.

mpe2 envs pickle as their constructor arguments only (gymnasium's `EzPickle`): an
unpickled env is a fresh one, back at step 0. So the state is taken layer by layer: the
attributes of the parallel wrapper, of every PettingZoo wrapper under it and of the raw
env (for mpe2: the `world` with every agent's and landmark's position, velocity and
communication state, the scenario, `np_random`, the step counter, the agent selector,
rewards, terminations and truncations), pickled together so references between them
(an agent's goal landmark) survive. Restoring writes them into an env freshly made with
the same arguments. Rendering resources (pygame surfaces and fonts) are not state; any
other attribute that does not pickle makes the env uncheckpointable, said in one line.
"""

from __future__ import annotations

import pickle
from typing import Any

from rlkit.errors import EnvError

LINKS = ("aec_env", "env")
"""Attributes through which PettingZoo wrappers hold what they wrap."""


def layers(env: Any) -> list[Any]:
    """The env and every env it wraps, outermost first."""
    out: list[Any] = []
    seen: set[int] = set()
    while env is not None and id(env) not in seen:
        out.append(env)
        seen.add(id(env))
        own = vars(env) if hasattr(env, "__dict__") else {}
        env = next((own[name] for name in LINKS if name in own), None)
    return out


def _is_render_resource(value: Any) -> bool:
    return type(value).__module__.split(".")[0] == "pygame"


def _own_state(layer: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(layer).items() if k not in LINKS and not _is_render_resource(v)}


def snapshot(env: Any) -> bytes:
    """Every layer's attributes (but the wrapped env and rendering resources), one pickle."""
    states = [_own_state(layer) for layer in layers(env)]
    try:
        return pickle.dumps(states, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        for layer, state in zip(layers(env), states, strict=True):
            for key, value in state.items():
                try:
                    pickle.dumps(value)
                except (pickle.PicklingError, TypeError, AttributeError):
                    raise EnvError(
                        f"cannot checkpoint the env: {type(layer).__name__}.{key} "
                        f"({type(value).__name__}) does not pickle, and exact resume needs it"
                    ) from None
        raise EnvError(f"cannot checkpoint the env: {e}") from None


def restore(env: Any, blob: bytes) -> None:
    """Put a `snapshot` back into `env`, made with the same constructor arguments."""
    states = pickle.loads(blob)
    chain = layers(env)
    if len(states) != len(chain):
        raise EnvError(
            f"the checkpoint holds an env of {len(states)} wrapper layers; this one has "
            f"{len(chain)}: it was made by another env or library version"
        )
    for layer, state in zip(chain, states, strict=True):
        vars(layer).update(state)
