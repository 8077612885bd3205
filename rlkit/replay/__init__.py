"""Replay buffers with a C++ core: uniform and prioritized, n-step, thread-safe.

See docs/replay_buffer.md.
"""

from rlkit.replay.buffer import Field, PrioritizedReplayBuffer, ReplayBuffer

__all__ = ["Field", "PrioritizedReplayBuffer", "ReplayBuffer"]
