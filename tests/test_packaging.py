"""Goal: the package says true things about itself: the LICENSE file is the Apache License 2.0
the metadata declares, the version has one source (raft_otp/_version.py) that
``raft_otp.__version__``, the installed metadata, ``raft-otp version`` and ``--version`` all
report, the project URLs are real ones (no placeholder), the README names no file that is not
in the repository, and the demo's data dir is ignored by git."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from typing import Any

import pytest

import raft_otp
from raft_otp.console.cli import main as cli_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject() -> dict[str, Any]:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_license_file_is_the_apache_2_text_the_metadata_declares() -> None:
    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    with open(os.path.join(REPO, "LICENSE"), encoding="utf-8") as f:
        text = f.read()
    head = " ".join(text.split()[:6])
    assert head == "Apache License Version 2.0, January 2004", head
    for section in ("1. Definitions.", "9. Accepting Warranty or Additional Liability.",
                    "END OF TERMS AND CONDITIONS"):
        assert section in text
    # PEP 639: a license expression replaces the license classifiers
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


def test_version_has_one_source() -> None:
    pp = _pyproject()
    assert "version" not in pp["project"] and "version" in pp["project"]["dynamic"]
    attr = pp["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    module, _, name = attr.rpartition(".")
    assert getattr(importlib.import_module(module), name) == raft_otp.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.dev)?\d*", raft_otp.__version__)


def test_installed_metadata_agrees_with_the_source() -> None:
    def from_here(dist: metadata.Distribution) -> bool:
        direct = dist.read_text("direct_url.json")  # pip writes it for an install from a dir
        return bool(direct) and json.loads(direct).get("url", "").rstrip("/") == "file://" + REPO

    # (a stray raft_otp.egg-info in the checkout is not an install: only pip's record counts)
    installed = [d for d in metadata.distributions(name="raft_otp") if from_here(d)]
    if not installed:
        pytest.skip("raft_otp is not installed from this checkout (pip install -e .)")
    dist = installed[0]
    assert dist.version == raft_otp.__version__, \
        "installed metadata is stale: pip install -e . again"
    assert dist.metadata["License-Expression"] == "Apache-2.0"


def test_version_command_and_flag_print_the_version(capsys: Any) -> None:
    assert cli_main(["version"]) == 0
    assert capsys.readouterr().out == f"raft-otp {raft_otp.__version__}\n"
    with pytest.raises(SystemExit) as e:
        cli_main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"raft-otp {raft_otp.__version__}\n"


def test_version_command_needs_no_node_and_starts_nothing() -> None:
    """A subprocess: ``raft-otp version`` starts no node (no thread besides the main one)."""
    code = ("import sys, threading; from raft_otp.console.cli import main; rc = main(['version']); "
            "assert threading.active_count() == 1, threading.enumerate(); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": REPO})
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"raft-otp {raft_otp.__version__}\n"


def test_project_urls_are_real_ones() -> None:
    project = _pyproject()["project"]
    urls = project.get("urls", {})
    for label, url in urls.items():
        assert url.startswith("https://"), (label, url)
        assert not re.search(r"example\.(com|org)|localhost|TODO|your-?org", url, re.I), url
    assert "Homepage" not in urls, "the project has no homepage to state"


def _repo_files() -> set[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_readme_names_no_file_outside_the_repository() -> None:
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    files = _repo_files()
    # links to files
    for target in re.findall(r"\]\(([^)#\s]+)\)", text):
        if not re.match(r"https?://", target):
            assert target in files or os.path.isdir(os.path.join(REPO, target)), target
    # every *.md named, and every path under the repository's top-level directories
    for name in set(re.findall(r"[\w./-]+\.md\b", text)):
        assert name in files or any(f.endswith("/" + name) for f in files), name
    tops = "|".join(sorted({f.split("/")[0] for f in files if "/" in f} - {".ci"}))
    for path in set(re.findall(rf"(?<![\w/])(?:{tops})/[\w./{{}},-]*[\w}}]", text)):
        if "{" in path:  # latest.{json,md}: generated files, the directory must exist
            path = os.path.dirname(path)
        if _ignored(path):
            continue  # generated output that .gitignore names (docs/api/: the reference)
        assert path in files or os.path.isdir(os.path.join(REPO, path)), path


def _ignored(path: str) -> bool:
    r = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO)
    return r.returncode == 0


def test_demo_data_dir_is_ignored_by_git() -> None:
    r = subprocess.run(["git", "check-ignore", "-q", "raft_otp_demo_data/wal/00000001.wal"],
                       cwd=REPO)
    assert r.returncode == 0, "raft_otp_demo_data/ is not in .gitignore"
