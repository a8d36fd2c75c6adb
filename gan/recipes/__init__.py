"""Training recipes by name: `recipe = "dcgan"` in a config."""

from __future__ import annotations

import importlib

from gan.core.registry import Registry

RECIPES: Registry = Registry("recipe")

# Modules whose import registers recipes; a new recipe adds its module here.
for _module in ("gan.recipes.dcgan", "gan.recipes.pix2pix", "gan.recipes.cyclegan", "gan.recipes.srgan"):
    importlib.import_module(_module)
