"""Goal: the README's Python examples type-check with ``mypy --strict`` against raft_otp as it
is (a renamed call, a wrong argument or an untyped example fails this test)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# Sections whose blocks are sketches of another library's API with names defined
# elsewhere (they are not programs): `supervisors` is not raft_otp.
SKETCHES = {"Supervision in a few lines"}

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_programs(text: str) -> dict[str, str]:
    """Section heading -> its ```python blocks joined in order (a section's blocks
    build on each other, as a reader runs them), sketch sections left out."""
    programs: dict[str, str] = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        heading = part.splitlines()[0].strip()
        blocks = _BLOCK.findall(part)
        if blocks and heading not in SKETCHES:
            programs[heading] = "\n".join(blocks)
    return programs


def test_the_extraction_finds_the_examples() -> None:
    programs = readme_programs(README.read_text())
    assert {"Use it from Python", "Writing a machine"} <= set(programs)
    assert "raft_otp.connect(" in programs["Use it from Python"]
    assert "class Inventory(Machine)" in programs["Writing a machine"]


@pytest.mark.timeout(300)
def test_readme_examples_pass_mypy_strict(tmp_path: pathlib.Path) -> None:
    files = []
    for i, (heading, source) in enumerate(readme_programs(README.read_text()).items()):
        path = tmp_path / f"readme_{i}_{re.sub(r'[^a-z0-9]+', '_', heading.lower())}.py"
        path.write_text(source)
        files.append(str(path))
    out = subprocess.run(
        # as a user sees it: raft_otp's own modules give types, their errors are not the
        # examples' (raft_otp as a whole is not mypy --strict clean)
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
         "--cache-dir", str(tmp_path / "cache"),
         "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_broken_example_fails(tmp_path: pathlib.Path) -> None:
    """The check can fail: the same run on an example with a removed name does."""
    bad = tmp_path / "bad.py"
    bad.write_text("import raft_otp\nraft_otp.process_comand(1, 2)\n")
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                          "--no-incremental",
                          "--cache-dir", str(tmp_path / "cache"), str(bad)],
                         cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert out.returncode != 0 and "process_comand" in out.stdout
