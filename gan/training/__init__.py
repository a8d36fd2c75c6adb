"""The training run: the config checked against the registries (`resolve`), the checks before
step 1 (`preflight`), the loop (`loop.train`) and its machinery: speed switches, CUDA graphs,
the health watch and the TensorBoard event log.

Imports from core, data, nets, metrics and recipes; nothing above it imports into it but tools
and commands.
"""
