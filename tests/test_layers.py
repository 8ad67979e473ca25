"""The import contracts of pyproject.toml (`[tool.importlinter]`, CONTRACT.md's layers) hold, and bite.

`lint-imports` runs as `make lint` does, from the venv this test runs in. The second test breaks a
copy of the packages on purpose (an upward import inside study/, a cycle inside data_shards/) and
checks that the contracts name both, so a contract that silently checks nothing fails here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
PACKAGES = ("data_shards", "models", "study", "dashboard")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` in ``root`` (its pyproject.toml; its packages come first on the path)."""
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo"], cwd=root, capture_output=True, text=True, timeout=120
    )


def test_the_import_contracts_hold():
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_an_upward_import_and_a_cycle_break_the_contracts(tmp_path):
    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "study" / "store" / "upward.py").write_text(
        '"""The store using a study runner."""\n\nimport study.tune.runner\n'
    )
    with open(tmp_path / "data_shards" / "manifest.py", "a") as f:
        f.write("\nimport data_shards.writer  # the writer already imports the manifest\n")
    proc = lint_imports(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "study.store is not allowed to import study.tune" in out, out
    assert "- study.store.upward -> study.tune.runner (l.3)" in out, out
    assert "No cycles are allowed in data_shards." in out and "- .manifest -> .writer (1 import)" in out, out
    assert "study.store is not allowed to import torch" in out, out  # through the runner: data_shards.reader
