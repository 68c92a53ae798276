"""Goal: the API reference builds from the docstrings (pdoc, docs/build_reference.py) with no
problem the build can detect (a pdoc warning, a public name with no docstring, a reference to
a raft_otp name that does not exist, a missing page), the checks do catch each of those, and
the "Writing a machine" guide's code runs as written and names only things that exist."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "writing-a-machine.md"


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_reference",
                                                  REPO / "docs" / "build_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = _load_builder()


def test_reference_builds_without_problems(tmp_path: Path) -> None:
    notes: list[str] = []
    problems = builder.build(tmp_path, notes=notes)
    assert problems == [], "\n".join(problems)
    assert all(n.startswith("pdoc: UserWarning: Error parsing type annotation") for n in notes)
    assert (tmp_path / "index.html").is_file()
    lock_page = (tmp_path / "raft_otp" / "machines" / "lock.html").read_text()
    assert "fencing token" in lock_page and "Lock" in lock_page
    errors_page = (tmp_path / "raft_otp" / "errors.html").read_text()
    assert "ConfigError" in errors_page


@pytest.fixture
def fixture_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Two throwaway modules named like ours: one with doc faults, one that cannot import."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "raft_otp_docfaults.py").write_text(textwrap.dedent('''
        """A module with faults the reference build must report.

        It points at ``raft_otp.errors.ConfigError`` (exists) and at
        :class:`raft_otp.errors.NoSuchError` (does not), and at NO_SUCH_NOTES.md, a file
        the repository does not have (README.md it has).
        """

        __all__ = ["undocumented", "dangling", "ghost", "typed"]  # ghost: pdoc warns


        def undocumented() -> None:
            pass

        def dangling() -> None:
            """See :func:`raft_otp.api.no_such_call` and ``raft_otp.nowhere``."""

        def _private() -> None:
            pass

        def typed(x: "NoSuchType[int]") -> None:  # noqa: F821
            """Its annotation cannot be evaluated: a note, not a problem."""
    '''))
    (src / "raft_otp_docbroken.py").write_text('"""Fails on import."""\nraise RuntimeError("boom")\n')
    monkeypatch.syspath_prepend(str(src))
    yield src
    for name in ("raft_otp_docfaults", "raft_otp_docbroken"):
        sys.modules.pop(name, None)


def test_the_build_reports_warnings_missing_docstrings_and_broken_references(
        tmp_path: Path, fixture_modules: Path) -> None:
    notes: list[str] = []
    problems = builder.build(tmp_path / "out", ("raft_otp_docfaults",), notes=notes)
    assert len(notes) == 1 and "NoSuchType[int]" in notes[0], notes
    warned = [p for p in problems if p.startswith("pdoc: ")]
    assert len(warned) == 1 and "ghost" in warned[0], problems
    assert sorted(set(problems) - set(warned)) == sorted([
        "raft_otp_docfaults: docstring refers to raft_otp.errors.NoSuchError, "
        "which does not exist",
        "raft_otp_docfaults: docstring names NO_SUCH_NOTES.md, which is not in the repository",
        "raft_otp_docfaults.undocumented: no docstring",
        "raft_otp_docfaults.dangling: docstring refers to raft_otp.api.no_such_call, "
        "which does not exist",
        "raft_otp_docfaults.dangling: docstring refers to raft_otp.nowhere, which does not exist",
    ])


def test_the_build_reports_a_module_that_does_not_import(
        tmp_path: Path, fixture_modules: Path) -> None:
    problems = builder.build(tmp_path / "out", ("raft_otp_docbroken",))
    assert "raft_otp_docbroken: does not import: RuntimeError: boom" in problems
    assert any(p.startswith("raft_otp_docbroken: no page at") for p in problems), problems


def test_the_command_line_exits_1_on_a_problem(tmp_path: Path, fixture_modules: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: Any) -> None:
    monkeypatch.setattr(builder, "PUBLIC_MODULES", ("raft_otp_docfaults",))
    monkeypatch.setattr(builder.build, "__defaults__", (("raft_otp_docfaults",), None))
    assert builder.main([str(tmp_path / "out")]) == 1
    assert "undocumented: no docstring" in capsys.readouterr().err


def _guide_blocks(lang: str) -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, flags=re.S | re.M)


def test_guide_code_runs_as_written(capsys: Any) -> None:
    blocks = _guide_blocks("python")
    assert len(blocks) >= 4
    namespace: dict[str, Any] = {"__name__": "writing_a_machine"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{GUIDE.name} python block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    # the messages the guide shows in its comments are the ones printed
    assert "lock: config max_locks must be an int >= 1, got 0" in out
    assert "lock: lease_ms must be an int in 1..3600000 (max_lease_ms), got -1" in out


def test_guide_excerpts_are_still_in_the_lock_machine() -> None:
    """Each line of a ``py`` excerpt that is code (not an elision) is in lock.py or
    lock_client.py; a renamed helper or changed step shows here."""
    sources = (REPO / "raft_otp" / "machines" / "lock.py").read_text() + \
        (REPO / "raft_otp" / "machines" / "lock_client.py").read_text()
    for block in _guide_blocks("py"):
        for line in block.splitlines():
            code = line.split("#")[0].strip()
            if not code or code == "...":
                continue
            if code.startswith(("def apply", "class Lock", "def __init__", "def init")):
                code = code.split("(")[0]  # signatures are shortened in the guide
            if code.startswith("self.max_") or code.startswith("self.release_cursor_every"):
                code = code.split("=")[0].strip()
            assert code in sources, f"guide excerpt line not in lock.py/lock_client.py: {code!r}"


def test_guide_names_only_things_that_exist() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    refs = set(re.findall(r"`(raft_otp(?:\.\w+)+)`", text))
    assert "raft_otp.core.machine.ReleaseCursor" in refs
    missing = [r for r in sorted(refs) if not builder._resolve(r)]
    assert missing == []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        path, _, anchor = target.partition("#")
        file = (GUIDE.parent / path).resolve()
        assert file.is_file(), target
        if anchor:
            headings = re.findall(r"^#+ (.+)$", file.read_text(encoding="utf-8"), flags=re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                     for h in headings}
            assert anchor in slugs, target
    for path in re.findall(r"`((?:raft_otp|tests|docs)/[\w/.-]+\.(?:py|md))`", text):
        assert (REPO / path).is_file(), path


def test_readme_links_the_guide_and_says_how_to_build_the_reference() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "(docs/writing-a-machine.md)" in readme
    assert "python docs/build_reference.py" in readme


def test_resolve_tells_existing_names_from_missing_ones() -> None:
    assert builder._resolve("raft_otp.errors.ConfigError")
    assert builder._resolve("raft_otp.machines.lock")
    assert builder._resolve("raft_otp.core.machine.ApplyMeta.system_time_ms")
    assert not builder._resolve("raft_otp.errors.NoSuchError")
    assert not builder._resolve("raft_otp.no_such_module")
    assert os.path.basename(builder.__file__) == "build_reference.py"
