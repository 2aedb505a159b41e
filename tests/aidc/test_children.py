"""A child's last words: the error sentence it died with, readable even when Python framed it
in an exception group's box."""

import subprocess
import sys
from pathlib import Path

from aidc.runtime.children import Child

CRASH = """
import asyncio
async def bad():
    raise ValueError("operands could not be broadcast together with shapes (4,) (5,)")
async def main():
    async with asyncio.TaskGroup() as group:
        group.create_task(bad())
asyncio.run(main())
"""


def _said(tmp_path: Path, text: str) -> str:
    log = tmp_path / "child.log"
    log.write_text(text)
    return Child("core", [], log, {}).last_words()


def test_a_crash_in_a_task_group_is_told_by_its_error_not_its_box(tmp_path: Path) -> None:
    crashed = subprocess.run([sys.executable, "-c", CRASH], capture_output=True, text=True)
    assert crashed.stderr.rstrip().endswith("+------------------------------------")
    assert _said(tmp_path, crashed.stderr) == (
        "ValueError: operands could not be broadcast together with shapes (4,) (5,)"
    )


def test_our_own_sentence_is_told_without_its_prefix(tmp_path: Path) -> None:
    assert _said(tmp_path, "starting\naidc: broker mqtt://h:1 is unreachable\n") == (
        "broker mqtt://h:1 is unreachable"
    )
    assert _said(tmp_path, "") == "no output"
