"""The published contract: every example scenario in shared/contract must produce its plan, through
the real `trueup plan` command, exactly as CI and a partner's bug report would run it."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CONTRACT = SHARED / "contract"


def trueup_command() -> str:
    found = Path(sys.executable).with_name("trueup")
    if found.exists():
        return str(found)
    which = shutil.which("trueup")
    assert which, "the `trueup` console script is not installed in this environment"
    return which


@pytest.mark.skipif(not CONTRACT.is_dir(), reason=f"shared contract folder absent ({CONTRACT})")
def test_every_contract_example_produces_its_plan() -> None:
    examples = CONTRACT / "examples"
    expected = len(list(examples.glob("*.plan.json")))
    assert expected > 0, "the contract ships no example plans"
    result = subprocess.run(
        [
            sys.executable,
            str(CONTRACT / "check_plan.py"),
            "--cmd",
            f"{shlex.quote(trueup_command())} plan",
            str(examples),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    closing = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"{expected} passed, 0 failed", closing), report
