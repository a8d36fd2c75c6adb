"""Research tools built on runs: sweeps of many runs (`sweep`), their tables and figures
(`compare`) and the speed benchmark against a plain baseline (`benchmark`).

They start and read runs through `gan.training`; only the commands import them.
"""
