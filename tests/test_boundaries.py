"""The engine stands on its own: importing it never pulls in the console or a UI library."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


CORE = ("engine", "engine.reconcile", "engine.store", "engine.actions")
PROBE = f"""
import json, sys
def ui():
    return sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'tui'))
import {", ".join(CORE)}
core = ui()
import engine.connectors.http
print(json.dumps({{"core": core, "with_connectors": ui()}}))
"""


@cache
def ui_modules_loaded() -> dict[str, list[str]]:
    """One fresh interpreter: the UI modules loaded after importing the engine's core, then its connectors."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_reconciliation_store_and_actions_load_no_ui_module() -> None:
    assert ui_modules_loaded()["core"] == []


def test_importing_the_engine_with_its_connectors_loads_no_ui_module() -> None:
    assert ui_modules_loaded()["with_connectors"] == []


def test_the_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    command = str(lint_imports) if lint_imports.exists() else shutil.which("lint-imports")
    assert command, "import-linter is not installed"
    result = subprocess.run([command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "0 broken" in report
    assert "The engine never imports the console or a UI library KEPT" in report
