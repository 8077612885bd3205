"""The text env family's parts: prompt and preference datasets (`data`: files, `datasets`
directories and names, chat formatting; `prompts`: the RL stages' prompts), and a
synthetic task with a checkable answer and its gold reward (`tasks`: sort 4 digits, what
`rlkit data example` writes). An LLM stage reads its data here as a classic algorithm
reads its env from `envs/`.
"""
