"""Making PettingZoo parallel envs: mpe2 short names, ``module:factory`` specs, AEC envs.

An env id is ``module:factory`` (``mpe2.simple_spread_v3:parallel_env``) or
``path/to/file.py:factory``; the factory is called with the ``--env-kwargs``. It must
return a PettingZoo `ParallelEnv`. An AEC env is converted with PettingZoo's own
`aec_to_parallel` when its metadata declares it parallelizable (all agents act once per
cycle, as mpe2's AEC envs do); a turn-based AEC env is refused.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from rlkit import user_code
from rlkit.errors import EnvError, TrainingError

MPE2: dict[str, str] = {
    "simple_spread": "simple_spread_v3",
    "simple_reference": "simple_reference_v3",
    "simple_speaker_listener": "simple_speaker_listener_v4",
    "simple_adversary": "simple_adversary_v3",
    "simple_tag": "simple_tag_v3",
    "simple_push": "simple_push_v3",
    "simple_crypto": "simple_crypto_v3",
    "simple_world_comm": "simple_world_comm_v3",
}
"""Short name -> mpe2 module (``from mpe2 import simple_spread_v3``)."""
SHORT_NAMES: dict[str, str] = {short: f"mpe2.{m}:parallel_env" for short, m in MPE2.items()}
"""Short name -> env id."""
_BY_LOWER = {k.lower(): v for k, v in SHORT_NAMES.items()} | {
    m.lower(): SHORT_NAMES[short] for short, m in MPE2.items()
}


def is_factory_spec(env: str) -> bool:
    """``module:factory`` or ``path/file.py:factory``."""
    module, sep, attr = env.rpartition(":")
    return bool(sep and module and attr.isidentifier())


def resolve(env: str) -> str:
    """The env id of a short name (any case), an mpe2 module name or a factory spec."""
    if env.lower() in _BY_LOWER:
        return _BY_LOWER[env.lower()]
    if is_factory_spec(env):
        load_factory(env)  # a missing module or factory is reported now, in one line
        return env
    close = difflib.get_close_matches(env, list(SHORT_NAMES), n=3, cutoff=0.6)
    hint = "; did you mean " + " or ".join(repr(c) for c in close) + "?" if close else ""
    raise EnvError(
        f"unknown env {env!r}{hint} (rlkit list shows the names; any PettingZoo parallel "
        "env works as module:factory)"
    )


def short_name(env_id: str) -> str:
    """``mpe2.simple_spread_v3:parallel_env`` -> simple_spread; other specs: the module's
    last name (``pettingzoo.butterfly.pistonball_v6:parallel_env`` -> pistonball_v6)."""
    for short, full in SHORT_NAMES.items():
        if full == env_id:
            return short
    module = env_id.rpartition(":")[0]
    return Path(module).stem if module.endswith(".py") else module.rsplit(".", 1)[-1]


def _import(module: str) -> Any:
    if module.endswith(".py"):
        path = Path(module).expanduser().resolve()
        name = f"rlkit_env_{path.stem}_{abs(hash(str(path))) % 10**8}"
        if name in sys.modules:
            return sys.modules[name]
        if not path.is_file():
            raise EnvError(f"env factory file {module} does not exist")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        spec.loader.exec_module(loaded)
        return loaded
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        package = (e.name or module).split(".")[0]
        raise EnvError(
            f"cannot import {module!r} for the env: no module named {e.name!r} "
            f"(pip install {package}, or check the spelling)"
        ) from None
    except Exception as e:  # what the module raised while importing (pettingzoo.mpe: moved)
        hint = "; mpe2's envs go by short names: --env simple_spread (rlkit list)"
        raise EnvError(
            f"--env: importing {module!r} failed ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]})" + (hint if "mpe" in module else "")
        ) from None


def load_factory(env_id: str) -> Callable[..., Any]:
    """The callable an env id names (EnvError with the closest names when it is missing)."""
    module_name, _, attr = env_id.rpartition(":")
    module = _import(module_name)
    factory = getattr(module, attr, None)
    if not callable(factory):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        close = difflib.get_close_matches(attr, names, n=1)
        hint = f"; did you mean {module_name}:{close[0]}?" if close else ""
        raise EnvError(f"{module_name} has no env factory {attr!r}{hint}")
    return factory


def accepted_kwargs(env_id: str) -> list[str]:
    """The keyword arguments an env's factory takes (mpe2's pass **kwargs on to `raw_env`)."""
    module = _import(env_id.rpartition(":")[0])
    for fn in (load_factory(env_id), getattr(module, "raw_env", None)):
        if fn is None:
            continue
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            continue
        named = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if named:
            return [n for n in named if n != "render_mode"]
    return []


FACTORY_TIMEOUT = "RLKIT_ENV_FACTORY_TIMEOUT"
"""The environment variable of the seconds an env factory may take (default 300; 0: no
limit): a factory that never returns (a license server, a network share) ends the run in
one line rather than hanging it."""


class _Raised(NamedTuple):
    error: BaseException


def _made(factory: Callable[..., Any], kwargs: dict[str, Any], env_id: str) -> Any:
    """`factory(**kwargs)` behind the user-code boundary's timeout (`rlkit.user_code`);
    what it raises is re-raised here, for `make_parallel_env` to name by its kind."""

    def make(**given: Any) -> Any:
        try:
            return factory(**given)
        except BaseException as e:  # noqa: BLE001 - SystemExit too: reported, never obeyed
            return _Raised(e)

    timeout = float(os.environ.get(FACTORY_TIMEOUT, "300") or 0)
    call = user_code.UserCall(make, f"--env {env_id}: its factory", kwargs, timeout)
    call.timeout_flag = FACTORY_TIMEOUT
    out = user_code.run(call)
    if isinstance(out, _Raised):
        raise out.error
    return out


def make_parallel_env(env_id: str, kwargs: dict[str, Any], render_mode: str | None = None) -> Any:
    """A PettingZoo parallel env for `env_id`, made with `kwargs` (and `render_mode`)."""
    from pettingzoo.utils.env import AECEnv, ParallelEnv

    factory = load_factory(env_id)
    extra = {"render_mode": render_mode} if render_mode else {}
    try:
        env = _made(factory, {**kwargs, **extra}, env_id)
    except TrainingError as e:  # the timeout: already one line naming the factory
        raise EnvError(str(e).replace("; the last checkpoint is intact", "")) from None
    except (TypeError, ValueError, AssertionError) as e:
        takes = accepted_kwargs(env_id)
        given = ",".join(f"{k}={v}" for k, v in kwargs.items()) or "(none)"
        hint = f"; it takes {', '.join(takes)}" if takes else ""
        detail = " ".join(str(e).split()) or type(e).__name__
        raise EnvError(
            f"--env-kwargs {given}: {short_name(env_id)} refuses them ({detail}){hint}"
        ) from None
    except (Exception, SystemExit) as e:  # user code: one line naming it, never a traceback
        detail = " ".join(str(e).split())[:200]
        raise EnvError(
            f"--env {env_id}: its factory raised {type(e).__name__}: {detail}; fix the factory"
        ) from None
    if isinstance(env, ParallelEnv):
        return env
    if isinstance(env, AECEnv):
        if env.metadata.get("is_parallelizable", False):
            from pettingzoo.utils.conversions import aec_to_parallel

            return aec_to_parallel(env)
        env.close()
        raise EnvError(
            f"{env_id} is a turn-based PettingZoo AEC env (not parallelizable): rlkit trains "
            "parallel envs, where every agent acts each step; give the env's parallel factory "
            "(module:parallel_env) instead"
        )
    raise EnvError(
        f"{env_id} returned a {type(env).__name__}, not a PettingZoo env: give a factory "
        "that returns a ParallelEnv (or a parallelizable AECEnv)"
    )


def derived_return(
    env_id: str, kwargs: dict[str, Any]
) -> Callable[[float, int, int], float] | None:
    """The on-policy repository's return convention (Yu et al.'s MPE curves) as a function
    of (team return, length, agents), where it follows from mpe2's own: simple_spread with
    local_ratio 0.5. There each agent's reward was the full global distance penalty plus
    its collisions, shared as the sum over agents, and every agent also counted a
    collision with itself each step, so the convention is 2 x team - agents x length."""
    if short_name(env_id) != "simple_spread" or kwargs.get("local_ratio", 0.5) != 0.5:
        return None
    return lambda team, length, agents: 2.0 * team - agents * length
