"""Goal: the CLI explains itself: walking the parser that ``raft-otp`` uses (build_parser),
every option and argument of every (sub)command has help text, and every subcommand has a
one-line description and at least one example that parses as written."""

from __future__ import annotations

import argparse
import shlex
from typing import Iterator

import pytest

from raft_otp.console.cli import build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    # argparse has no public way to list a parser's actions; _actions is the listing
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action.choices, dict):  # the subparsers action: name -> parser
            found.update(action.choices)
    return found


def _walk(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for name, sub in _subparsers(parser).items():
        yield from _walk(sub, f"{path} {name}".strip())


PARSERS = dict(_walk(build_parser()))
COMMANDS = [path for path in PARSERS if path]


def test_the_walk_finds_every_command() -> None:
    assert {"start", "demo", "tree", "status", "kill", "cluster", "cluster start",
            "cluster add-member", "command", "query", "version"} <= set(COMMANDS)


@pytest.mark.parametrize("path", ["", *COMMANDS])
def test_every_option_and_argument_has_help(path: str) -> None:
    missing = []
    for action in PARSERS[path]._actions:
        if isinstance(action.choices, dict):
            continue  # the subcommand list: each subcommand is checked on its own
        text = action.help
        if not text or text == argparse.SUPPRESS or not str(text).strip():
            missing.append("/".join(action.option_strings) or action.dest)
    assert missing == [], f"raft-otp {path}: no help for {missing}"


@pytest.mark.parametrize("path", COMMANDS)
def test_every_subcommand_has_a_one_line_description_and_examples(path: str) -> None:
    parser = PARSERS[path]
    description = parser.description or ""
    assert description.strip(), f"raft-otp {path}: no description"
    assert "\n" not in description and len(description) <= 120, description
    epilog = parser.epilog or ""
    examples = [line.strip() for line in epilog.splitlines() if line.startswith("  raft-otp ")]
    assert examples, f"raft-otp {path}: no example in its epilog"
    assert isinstance(parser.formatter_class, type) and \
        issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter), \
        "the examples' line breaks would be reflowed"
    help_text = parser.format_help()
    assert description in help_text and examples[0] in help_text


@pytest.mark.parametrize("path", COMMANDS)
def test_each_example_parses_as_the_command_it_illustrates(path: str) -> None:
    epilog = PARSERS[path].epilog or ""
    for line in epilog.splitlines():
        if not line.startswith("  raft-otp "):
            continue
        argv = shlex.split(line)[1:]
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # argparse's way of refusing
            pytest.fail(f"example does not parse ({exc.code}): {line.strip()}")
        words = path.split()
        assert args.cmd == words[0], line
        if len(words) > 1:
            assert args.cluster_op == words[1], line


def test_a_subcommand_without_docs_is_caught() -> None:
    """The check above is not vacuous: a parser built without descriptions fails it."""
    bare = argparse.ArgumentParser(prog="x")
    sub = bare.add_subparsers(dest="cmd")
    sub.add_parser("thing").add_argument("--flag")
    walked = dict(_walk(bare))
    assert set(walked) == {"", "thing"}
    assert walked["thing"].description is None and walked["thing"].epilog is None
    flag = [a for a in walked["thing"]._actions if a.dest == "flag"][0]
    assert flag.help is None
