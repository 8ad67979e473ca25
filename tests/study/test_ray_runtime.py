"""study.ray_runtime: the Ray auth mode is set by the entry points, never as an import side effect."""

from __future__ import annotations

import os
import subprocess
import sys

from study.ray_runtime import AUTH_MODE_VAR, configure_auth


def _run(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != AUTH_MODE_VAR}
    clean.update(env)
    proc = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_importing_study_modules_neither_sets_the_mode_nor_imports_ray():
    out = _run(
        "import os, sys\n"
        "import study.train.loop, study.train.launch, study.tune.runner, study.tune.command\n"
        "import study.experiments, study.demo\n"
        f"print(os.environ.get({AUTH_MODE_VAR!r}), 'ray' in sys.modules)"
    )
    assert out == "None False"


def test_cli_sets_token_mode_before_the_handler_and_keeps_an_explicit_one():
    code = (
        "import os, sys\nfrom study.cli import main\n"
        "rc = main(['tune', '/nonexistent.toml'])\n"
        f"print(rc, os.environ.get({AUTH_MODE_VAR!r}))"
    )
    assert _run(code) == "2 token"
    assert _run(code, **{AUTH_MODE_VAR: "disabled"}) == "2 disabled"


def test_configure_auth_is_a_default(monkeypatch):
    monkeypatch.delenv(AUTH_MODE_VAR, raising=False)
    configure_auth()
    assert os.environ[AUTH_MODE_VAR] == "token"
    monkeypatch.setenv(AUTH_MODE_VAR, "disabled")
    configure_auth()
    assert os.environ[AUTH_MODE_VAR] == "disabled"
