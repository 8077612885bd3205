"""A native parallel step for mpe2 envs: the real mpe2 objects, stepped once for all agents.

mpe2's `parallel_env` is PettingZoo's `aec_to_parallel` over its AEC env: one parallel
step is A turns of the AEC env, each through two wrappers (order enforcing, action bounds)
with a `last()` call that computes the agent's observation and throws it away; only the
last turn steps the world. Measured here, that round trip costs about as much as the world
itself (a step of simple_spread: 245 us through the wrapper, 128 us native).

`NativeMPEEnv` drives the same objects as that last turn does, once per step: it puts every
agent's action into the raw env's `current_actions`, calls the env's own
`_execute_world_step` (its `_set_action`, `world.step()` and `scenario.reward`/
`global_reward`), advances the env's step counter, applies its time limit and
`scenario.is_terminal`, and reads each agent's observation once with the env's `observe`.
Reset stays the wrapper's (once an episode), so the env's RNG, world and counters are the
env's own and `parallel_state.snapshot` saves and restores them unchanged. A test checks
that the observations, rewards, terminations and truncations are bit-identical to the
wrapper's on all eight tasks, discrete and continuous, for the same seeds and actions.

Only mpe2's own wrapper chain qualifies (`aec_to_parallel` over order enforcing over the
bounds wrapper over a `SimpleEnv` whose `step` is mpe2's, without a render mode); any other
env, or an mpe2 env wrapped further, is stepped through PettingZoo's parallel API.
"""

from __future__ import annotations

from typing import Any

from rlkit.errors import EnvError


def native_core(env: Any) -> Any | None:
    """The raw mpe2 env under `env` if `env` is exactly mpe2's parallel env, else None."""
    try:
        from mpe2._mpe_utils.simple_env import SimpleEnv
        from pettingzoo.utils.conversions import aec_to_parallel_wrapper
        from pettingzoo.utils.wrappers import (
            AssertOutOfBoundsWrapper,
            ClipOutOfBoundsWrapper,
            OrderEnforcingWrapper,
        )
    except ImportError:
        return None
    if type(env) is not aec_to_parallel_wrapper:
        return None
    order = env.aec_env
    if type(order) is not OrderEnforcingWrapper:
        return None
    bounds = order.env
    if type(bounds) not in (AssertOutOfBoundsWrapper, ClipOutOfBoundsWrapper):
        return None
    raw = bounds.env
    if not isinstance(raw, SimpleEnv) or type(raw).step is not SimpleEnv.step:
        return None
    if raw.render_mode is not None:
        return None
    return raw


class NativeMPE:
    """One mpe2 env's parallel step, driven on its raw env `raw` (from `native_core`)."""

    def __init__(self, raw: Any, agents: tuple[str, ...]) -> None:
        self.raw = raw
        names = [a.name for a in raw.world.agents]
        if sorted(names) != sorted(agents):
            raise EnvError(f"the mpe2 env's agents {names} are not the spec's {list(agents)}")
        self.names = list(agents)
        self.raw_order = [agents.index(n) for n in names]
        """For the env's i-th agent (the order of its `current_actions`), its index in
        `agents`."""

    def step(self, actions: list[Any]) -> tuple[list[float], bool, bool]:
        """One step of every agent, `actions` in `agents` order (as the env takes them: ints
        or clipped arrays). Returns the rewards in `agents` order and whether the episode was
        terminated or truncated (mpe2 ends every agent at once)."""
        raw = self.raw
        raw.current_actions = [actions[j] for j in self.raw_order]
        raw._execute_world_step()
        raw.steps += 1
        truncated = raw.steps >= raw.max_cycles
        terminated = not truncated and bool(raw.scenario.is_terminal(raw.world))
        if truncated or terminated:  # as the env's own turn would leave its flags
            ended = raw.truncations if truncated else raw.terminations
            for name in raw.agents:
                ended[name] = True
        rewards = raw.rewards
        return [rewards[n] for n in self.names], terminated, truncated

    def observations(self) -> list[Any]:
        """Every agent's observation, in `agents` order, by the env's own `observe`."""
        observe = self.raw.observe
        return [observe(n) for n in self.names]
