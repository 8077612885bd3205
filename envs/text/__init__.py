"""The text env family's parts: prompt and preference datasets (`data`: files, `datasets`
directories and names, chat formatting; `prompts`: the RL stages' prompts), the rewards
and their scorer (`rewards`: rule functions named by ``--reward``, a reward model, the
gold check, and the evaluation of answers by them), and a synthetic task with a
checkable answer and its gold reward (`tasks`: sort 4 digits, what `rlkit data example`
writes). An LLM stage reads its data here as a classic algorithm reads its env from
`envs/`.
"""
