"""Foundations every other package stands on, with no GAN logic of their own: configs and loss
presets (read without torch), the registries, files written atomically, images, checkpoints
loaded safely, process groups, progress lines and the compile switch.

Imports nothing from the packages above it.
"""
