"""Every shell command the README shows runs verbatim on a fresh clone.

Each ```sh block must be valid shell, and each command in it must name
something that exists there: a Makefile target, the project's CLI as
``.venv/bin/crypto-etl`` (the parser must accept its arguments), or a shell
builtin. Nothing is hard-coded about which commands the README shows, so
sections added later are checked the same way.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from crypto_etl.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CLI = ".venv/bin/crypto-etl"


def shell_blocks() -> list[str]:
    return re.findall(
        r"^```(?:sh|bash|shell)\n(.*?)^```", README.read_text(), re.S | re.M
    )


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.M))


def commands(block: str) -> list[list[str]]:
    """Split a block into simple commands (words), assignments dropped."""
    found: list[list[str]] = []
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in lexer:
            if set(token) <= set(";&|"):
                found.append(words)
                words = []
            else:
                words.append(token)
        found.append(words)
    result = []
    for words in found:
        while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
            words = words[1:]  # VAR=value before a command
        if words:
            result.append(words)
    return result


def is_builtin(name: str) -> bool:
    kind = subprocess.run(
        ["bash", "-c", f"type -t {shlex.quote(name)}"], capture_output=True, text=True
    ).stdout.strip()
    return kind in ("builtin", "keyword")


BLOCKS = shell_blocks()


def test_the_readme_has_shell_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[b.splitlines()[0] for b in BLOCKS])
def test_each_block_is_valid_shell(block):
    done = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("block", BLOCKS, ids=[b.splitlines()[0] for b in BLOCKS])
def test_each_command_names_something_that_exists(block):
    targets = make_targets()
    parser = build_parser()
    for words in commands(block):
        name, args = words[0], words[1:]
        if name == "make":
            wanted = [a for a in args if not a.startswith("-") and "=" not in a]
            assert set(wanted) <= targets, f"no make target {wanted}: {words}"
        elif name == CLI:
            try:
                parser.parse_args(args)
            except SystemExit:
                pytest.fail(f"the CLI refuses {' '.join(words)}")
        elif name == "crypto-etl":
            pytest.fail(f"not on PATH on a fresh clone, write {CLI}: {words}")
        else:
            assert is_builtin(name), f"{name} is neither make, the CLI nor a builtin"


def test_the_checker_catches_what_would_fail():
    assert commands("A=1 make run  # c\nx &\n") == [["make", "run"], ["x"]]
    assert "nosuchtarget" not in make_targets() and "run" in make_targets()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["backfill", "--asset", "x", "[--end", "y]"])
