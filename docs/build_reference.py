"""Build the API reference of raft_otp's public modules from their docstrings (pdoc).

    python docs/build_reference.py [OUT_DIR]      # default docs/api (ignored by git)

Prints each problem found and exits 1 if there is any; ``tests/test_docs_build.py`` runs
:func:`build` into a temporary directory, so the reference cannot rot unnoticed.

What counts as a problem (the ones a build can detect):

- a warning pdoc raises while it imports or renders (a module that fails to import, a
  member it cannot document), except an annotation it cannot evaluate, which is
  printed as a note (the page shows it as written);
- a public module, class, function or method with no docstring (``_private`` names, and
  members a class inherits from outside raft_otp, are not checked);
- a cross-reference to a ``raft_otp`` name that does not exist: a dotted name in a
  reST role (``:class:`raft_otp.errors.ConfigError```) or in backticks
  (```raft_otp.aio.process_command```), or a file (``*.md``, ``*.txt``, ``*.rst``)
  that is not in the repository;
- a public module whose page is missing from the output.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import gc
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

#: The modules the reference documents: the public API and what a machine author needs.
PUBLIC_MODULES: tuple[str, ...] = (
    "raft_otp",
    "raft_otp.api",
    "raft_otp.aio",
    "raft_otp.errors",
    "raft_otp.core.machine",
    "raft_otp.core.types",
    "raft_otp.system.config",
    "raft_otp.machines",
    "raft_otp.machines.counter",
    "raft_otp.machines.kv",
    "raft_otp.machines.lock",
    "raft_otp.machines.lock_client",
)

#: Public callables that had no docstring when this check came in, in modules other
#: engineers were changing at the time. Shrink it; never add to it: a new public name
#: gets its docstring.
KNOWN_UNDOCUMENTED: frozenset[str] = frozenset({
    "raft_otp.aio.local_query",
    "raft_otp.aio.leader_query",
    "raft_otp.aio.consistent_query",
    "raft_otp.core.machine.Machine.snapshot_encode",
    "raft_otp.core.machine.Machine.snapshot_decode",
    "raft_otp.system.runtime.System.tree",
    "raft_otp.system.runtime.System.is_alive",
    "raft_otp.client.AsyncClient.local_query",
    "raft_otp.client.AsyncClient.leader_query",
    "raft_otp.client.AsyncClient.consistent_query",
})

#: pdoc warnings reported as notes, not problems: an annotation that cannot be evaluated
#: where it is used (``typing.get_type_hints`` fails on it too, e.g. a string forward
#: reference in another module's alias) is shown as written instead of linked.
NOTE_WARNINGS: tuple[str, ...] = ("Error parsing type annotation",)

_FILE_REF = re.compile(r"(?<![\w/.-])([\w-]+\.(?:md|txt|rst))\b")


def _repo_file_names() -> frozenset[str]:
    """The names of the repository's files (a docstring may name a file by its name)."""
    global _NAMES
    if _NAMES is None:
        names: set[str] = set()
        for _root, dirs, files in os.walk(REPO):
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
            names.update(files)
        _NAMES = frozenset(names)
    return _NAMES


_SKIP_DIRS = frozenset({".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis"})
_NAMES: frozenset[str] | None = None

_REF = re.compile(r"(?::[a-z]+:`~?|``?)(raft_otp(?:\.\w+)+)(?:\(\))?`")


def _resolve(dotted: str) -> bool:
    """Whether ``dotted`` names a module or an attribute reachable from one."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                # a dataclass field or an attribute set in __init__ only shows as an annotation
                if name in getattr(obj, "__annotations__", {}) or \
                        name in getattr(obj, "__dataclass_fields__", {}):
                    obj = None
                    continue
                return False
            obj = getattr(obj, name)
        return True
    return False


def _check_docs(module: object, problems: list[str], modules: tuple[str, ...]) -> None:
    """Missing docstrings and broken ``raft_otp`` references in one pdoc module tree."""
    import pdoc.doc

    def visit(d: "pdoc.doc.Doc[Any]") -> None:
        inherited = isinstance(d, pdoc.doc.Function | pdoc.doc.Class) and \
            not d.modulename.startswith("raft_otp")
        if inherited:
            return
        documentable = isinstance(d, pdoc.doc.Module | pdoc.doc.Class | pdoc.doc.Function)
        where = ".".join(d.taken_from) if d.taken_from[1] else d.fullname  # where it is defined
        if documentable and not d.docstring.strip() and not d.name.startswith("_") \
                and where not in KNOWN_UNDOCUMENTED:
            problems.append(f"{where}: no docstring")
        for ref in _REF.findall(d.docstring):
            if not _resolve(ref):
                problems.append(f"{where}: docstring refers to {ref}, which does not exist")
        for name in _FILE_REF.findall(d.docstring):
            if name not in _repo_file_names():
                problems.append(f"{where}: docstring names {name}, which is not in the "
                                "repository")
        if isinstance(d, pdoc.doc.Module | pdoc.doc.Class):
            for member in d.own_members:
                if member.name.startswith("_") and member.name != "__init__":
                    continue
                if member.taken_from[0] != d.modulename and \
                        member.taken_from[0] in modules:
                    continue  # a re-export: checked on the page of the module defining it
                visit(member)

    visit(module)  # type: ignore[arg-type]


def build(out_dir: str | os.PathLike[str], modules: tuple[str, ...] = PUBLIC_MODULES,
          notes: list[str] | None = None) -> list[str]:
    """Render the reference of ``modules`` into ``out_dir``; return the problems found
    (empty: all good).  Warnings of :data:`NOTE_WARNINGS` go to ``notes`` instead."""
    import pdoc
    import pdoc.doc
    import pdoc.render

    out = Path(out_dir)
    problems: list[str] = []
    pdoc.render.configure(docformat="restructuredtext", show_source=False,
                          footer_text=f"raft_otp {_version()}")
    # garbage the caller left (in a test run: another test's unclosed pipe) is collected
    # now, so that its ResourceWarning is not taken for one of the build's
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importable = []
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:
                problems.append(f"{name}: does not import: {type(exc).__name__}: {exc}")
            else:
                importable.append(name)
        if importable:
            pdoc.pdoc(*importable, output_directory=out)
        for name in importable:
            _check_docs(pdoc.doc.Module(importlib.import_module(name)), problems, modules)
    for w in caught:
        if issubclass(w.category, DeprecationWarning) and "raft_otp" not in str(w.message):
            continue  # a library's own deprecation, nothing in our docstrings
        line = f"pdoc: {w.category.__name__}: {str(w.message).splitlines()[0]}"
        kept = notes if notes is not None and line.startswith(
            tuple(f"pdoc: UserWarning: {n}" for n in NOTE_WARNINGS)) else problems
        if line not in kept:  # the check's second pass over a module warns again
            kept.append(line)
    for name in modules:
        page = out.joinpath(*name.split(".")).with_suffix(".html")
        if not page.is_file():
            problems.append(f"{name}: no page at {page}")
    return problems


def _version() -> str:
    from raft_otp._version import __version__
    return __version__


def main(argv: list[str]) -> int:
    """``python docs/build_reference.py [OUT_DIR]``: 0 when the reference built clean."""
    out = argv[0] if argv else str(REPO / "docs" / "api")
    notes: list[str] = []
    problems = build(out, notes=notes)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    for p in problems:
        print(p, file=sys.stderr)
    print(f"API reference: {out}/index.html ({len(problems)} problem(s))")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main(sys.argv[1:]))
