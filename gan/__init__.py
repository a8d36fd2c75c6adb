"""gan: one zoo of GAN networks, one training loop, recipes that plug into it."""

__version__ = "0.1.0"
