"""rlkit: reinforcement learning written against actor / learner / buffer roles, declared
as dataflow graphs, compiled by a distribution policy and run by an executor."""

__version__ = "0.1.0"
