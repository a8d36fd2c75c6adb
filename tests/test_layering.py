"""Imports run downward (issues 15 and 30): every module of gan/ sits in the layer of its package
and imports only from its own layer or the ones below; the library needs no click, and reading a
config needs no torch. docs/layout.md describes the same layers, one line per package."""

import ast
import subprocess
import sys

import pytest
from conftest import REPO

# Bottom to top, by package: a new module is placed by the folder it is put in.
LAYERS = (
    ("core", ("gan", "gan.core")),
    ("data and networks", ("gan.data", "gan.nets")),
    ("metrics", ("gan.metrics",)),
    ("recipes", ("gan.recipes",)),
    ("runs", ("gan.training", "gan.inference")),
    ("tools", ("gan.tools",)),
    ("commands", ("gan.commands", "gan.__main__")),
)
TOP_LEVEL_LIMIT = 11  # entries at the top of gan/: the packages above, __init__.py and __main__.py


def module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """`gan.core.config` -> `gan.core`: the package at the top of gan/ that holds a module."""
    return ".".join(module.split(".")[:2])


def layer_of(module: str) -> int | None:
    for index, (_, packages) in enumerate(LAYERS):
        if package_of(module) in packages:
            return index
    return None


def imported_modules(path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


MODULES = {module_name(path): path for path in (REPO / "gan").rglob("*.py")}


def test_every_module_has_a_layer():
    assert [name for name in MODULES if layer_of(name) is None] == []


def test_the_top_of_gan_is_a_short_list_of_packages():
    entries = sorted(path.name for path in (REPO / "gan").iterdir() if path.name != "__pycache__")
    loose = [name for name in entries if name.endswith(".py") and name not in ("__init__.py", "__main__.py")]
    assert loose == [], "modules belong in a package whose name says their role"
    assert len(entries) <= TOP_LEVEL_LIMIT, entries


def test_training_and_inference_do_not_import_each_other():
    """One layer, two sides: using a trained generator never needs the training loop, and the
    loop never needs an export or a tiled translation."""
    crossing = {name: sorted(imported & {"gan.training", "gan.inference"} - {package_of(name)})
                for name, path in MODULES.items() if package_of(name) in ("gan.training", "gan.inference")
                for imported in [{package_of(module) for module in imported_modules(path)}]}
    assert {name: packages for name, packages in crossing.items() if packages} == {}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_downward(module):
    own = layer_of(module)
    upward = {name: LAYERS[layer_of(name)][0] for name in imported_modules(MODULES[module])
              if name.startswith("gan.") and layer_of(name) > own}
    assert upward == {}, f"{module} ({LAYERS[own][0]}) imports from layers above it"


def test_only_commands_use_click():
    commands = len(LAYERS) - 1
    users = [name for name, path in MODULES.items() if "click" in imported_modules(path) and layer_of(name) != commands]
    assert users == []


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_reading_a_config_imports_neither_torch_nor_any_recipe():
    loaded = run_python(
        "import sys, gan.core.config\n"
        "config = gan.core.config.read_config('experiments/dcgan_celeba128.toml', ['train.steps=5'])\n"
        "assert config.train.steps == 5\n"
        "print(' '.join(name for name in sys.modules if name.split('.')[0] in ('torch', 'gan')))")
    assert "torch" not in loaded.split()
    assert not [name for name in loaded.split() if name.startswith(("gan.recipes", "gan.data", "gan.nets"))]


def test_training_sampling_and_every_recipe_import_without_torchvision():
    # (torchvision's import, 1.2 s with the torch._dynamo it pulls in, was half of every command's start;
    # only a VGG, a baseline benchmark or Inception needs it, and imports it then)
    loaded = run_python("import sys, gan.training.loop, gan.recipes, gan.inference.generators, gan.commands.train\n"
                        "print(' '.join(sys.modules))")
    assert "gan.recipes.srgan" in loaded.split() and "torchvision" not in loaded.split()


def test_a_sample_set_imports_neither_torchvision_nor_torch_dynamo(tiny_demo_run, tmp_path):
    # (a network's weights drawn on the meta device, where its arguments are checked, imported torch._dynamo:
    # 1.1 s of every command's start; `gan sample` took 4 s where 2 s do)
    out = tmp_path / "faces.png"
    loaded = run_python("import sys\nfrom gan.commands.main import main\n"
                        f"main(['sample', {str(tiny_demo_run)!r}, '--n', '4', '--out', {str(out)!r}], "
                        "standalone_mode=False)\nprint(' '.join(sys.modules))")
    assert out.is_file() and not {"torchvision", "torch._dynamo"} & set(loaded.split())


def test_the_library_imports_without_click():
    library = ["gan.training.loop", "gan.core.checkpoint", "gan.core.distributed", "gan.training.speed", "gan.core.progress", "gan.recipes.ema",
               "gan.recipes.image_pool", "gan.training.resolve", "gan.inference.generators", "gan.inference.tiling", "gan.inference.scoring", "gan.inference.exported",
               "gan.tools.benchmark"]
    assert run_python("import sys\nsys.modules['click'] = None  # any import of click now fails\n"
                      + "".join(f"import {name}\n" for name in library) + "print('imported')") == "imported"
