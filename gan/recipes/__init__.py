"""Training recipes by name: `recipe = "dcgan"` in a config."""

from __future__ import annotations

from gan.core.registry import Registry

RECIPES: Registry = Registry("recipe")

# Modules whose import registers recipes; a new recipe adds its module here. (One that fails to import is said
# with a recipe name not found, and keeps no command from the others.)
RECIPES.import_modules(("gan.recipes.dcgan", "gan.recipes.pix2pix", "gan.recipes.cyclegan", "gan.recipes.srgan"),
                       "gan/recipes/__init__.py")


def trains_unconditional(name: str) -> bool:
    """Whether recipe `name` trains an unconditional generator (latents in, images out; scored by
    FID, KID, SWD against the data): one with an `evaluation_generator` (gan/recipes/base.py). False
    for a name no module registers."""
    return name in RECIPES.names() and hasattr(RECIPES.get(name), "evaluation_generator")
