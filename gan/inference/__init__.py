"""Using trained generators: loading them from run directories, checkpoints and exports, exporting
them (safetensors, ONNX), translating large images in tiles, scoring outputs, and planning output
files so that none overwrites an input.

Imports from core, data, nets and metrics; never from training.
"""
