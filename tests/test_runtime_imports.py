"""runtime/ must import with TensorFlow, Keras, librosa and scikit-learn absent."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"
BLOCKED = ("tensorflow", "keras", "tf_keras", "librosa", "sklearn", "scipy", "matplotlib")

_CHECK = r"""
import importlib, importlib.abc, sys
BLOCKED = {blocked!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'blocked import of {{name}}')
        return None
sys.meta_path.insert(0, Blocker())
for mod in {modules!r}:
    importlib.import_module(mod)
leaked = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)
assert not leaked, leaked
print('ok', len({modules!r}))
"""


def runtime_modules() -> list[str]:
    return sorted(f"kws.runtime.{p.stem}" for p in RUNTIME.glob("*.py") if p.stem != "__init__")


def test_every_runtime_module_imports_without_tensorflow():
    modules = ["kws.runtime", *runtime_modules()]
    code = _CHECK.format(blocked=BLOCKED, modules=modules)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_runtime_does_not_import_train_or_convert():
    # The interpreter's documented tensorflow.lite fallback is loaded by name at run time.
    pattern = re.compile(r"^\s*(from|import)\s+(kws\.train|kws\.convert|tensorflow|keras|librosa|sklearn)\b",
                         re.MULTILINE)
    for path in RUNTIME.glob("*.py"):
        match = pattern.search(path.read_text())
        assert match is None, f"{path.name} imports {match.group(2)}"
