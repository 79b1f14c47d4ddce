"""`import engine` (and the engine modules the console uses) loads no textual, rich or tui."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
{imports}
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in {names!r})))
"""


def loaded(imports: str, names: tuple[str, ...]) -> str:
    code = PROBE.format(imports=imports, names=names)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_engine_core_imports_no_ui() -> None:
    imports = "import engine, engine.reconcile, engine.actions, engine.plan, engine.store, engine.money"
    assert loaded(imports, ("textual", "rich", "tui")) == ""


def test_workspace_and_executor_import_no_console() -> None:
    imports = "import engine.workspace, engine.settings, engine.sync.executor, engine.sandbox.demo"
    assert loaded(imports, ("textual", "tui")) == ""


def test_connectors_import_no_rich() -> None:
    imports = "import engine.workspace, engine.settings, engine.sync.executor, engine.connectors.pax8"
    assert loaded(imports, ("rich", "textual", "tui")) == ""
