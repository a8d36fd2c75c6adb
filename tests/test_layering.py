"""Imports run downward (issue 15): every module of gan/ sits in one layer and imports only
from its own layer or the ones below; the library needs no click, and reading a config
needs no torch. The README's Layout section describes the same layers."""

import ast
import subprocess
import sys

import pytest
from conftest import REPO

# Bottom to top; a module belongs to the first layer with a prefix that names it or a package above it.
LAYERS = (
    ("foundation", ("gan", "gan.registry", "gan.typecheck", "gan.presets", "gan.config")),
    ("support", ("gan.files", "gan.images", "gan.inference", "gan.progress", "gan.distributed", "gan.event_log",
                 "gan.compilation", "gan.cuda_graphs", "gan.health", "gan.ema", "gan.image_pool", "gan.checkpoint",
                 "gan.losses", "gan.augment", "gan.schedules", "gan.outputs")),
    ("data and networks", ("gan.data", "gan.nets")),
    ("metrics", ("gan.metrics",)),
    ("recipes", ("gan.recipes",)),
    ("runs", ("gan.resolve", "gan.preflight", "gan.train", "gan.speed", "gan.exported", "gan.onnx_export",
              "gan.generators", "gan.tiling", "gan.scoring", "gan.benchmark", "gan.sweep", "gan.compare")),
    ("commands", ("gan.commands", "gan.cli", "gan.__main__")),
)


def module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or (prefix != "gan" and module.startswith(prefix + ".")) for prefix in prefixes):
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
        "import sys, gan.config\n"
        "config = gan.config.read_config('experiments/dcgan_celeba128.toml', ['train.steps=5'])\n"
        "assert config.train.steps == 5\n"
        "print(' '.join(name for name in sys.modules if name.split('.')[0] in ('torch', 'gan')))")
    assert "torch" not in loaded.split()
    assert not [name for name in loaded.split() if name.startswith(("gan.recipes", "gan.data", "gan.nets"))]


def test_the_library_imports_without_click():
    library = ["gan.train", "gan.checkpoint", "gan.distributed", "gan.speed", "gan.progress", "gan.ema",
               "gan.image_pool", "gan.resolve", "gan.generators", "gan.tiling", "gan.scoring", "gan.exported",
               "gan.benchmark"]
    assert run_python("import sys\nsys.modules['click'] = None  # any import of click now fails\n"
                      + "".join(f"import {name}\n" for name in library) + "print('imported')") == "imported"
