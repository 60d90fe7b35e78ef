"""Docs that cannot go stale: every documented command parses, every Python example runs, the site builds.

Commands: each ``mobilenetv2 ...`` line of a ```bash / ```console / ```sh fence in ``docs/**/*.md`` and
``README.md`` (backslash continuations joined, a ``$ `` prompt and ``VAR=value`` prefixes stripped, comments and
output lines skipped) goes through the real parser, ``build_parser().parse_args``. Python examples: each ```python
fence in ``docs/`` runs in a fresh namespace in a temporary folder, unless the line before it is
``<!-- no-run: reason -->`` (skipped with the reason); ``<!-- slow: reason -->`` marks one that trains a model
``slow``, so that ``make check`` leaves it to ``make test``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from mobilenetv2.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README = REPO / "README.md"
SHELL_LANGS = {"bash", "console", "sh", "shell"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>```+)\s*(?P<lang>[\w+-]*)")
NO_RUN = re.compile(r"<!--\s*no-run:\s*(?P<reason>.+?)\s*-->")
SLOW = re.compile(r"<!--\s*slow:\s*(?P<reason>.+?)\s*-->")  # runs, but only outside `make check` (it trains)
OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&"}
ENV_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
MIN_COMMANDS = 80  # the docs hold far more; fewer means the scanner broke, not that the docs shrank
MAX_README_LINES = 200


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, the line of its first content line (1-based) and its lines."""

    path: Path
    lang: str
    line: int
    lines: tuple[str, ...]
    before: str  # the line before the opening fence


def markdown_files() -> list[Path]:
    """Every page of the site, then the README."""
    return sorted(DOCS.rglob("*.md")) + [README]


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, dedented to their fence's indentation (fences in list items)."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, ticks = len(opening["indent"]), opening["ticks"]
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(ticks):
            end += 1
        body = tuple(line[indent:] if line[:indent].strip() == "" else line for line in lines[i + 1:end])
        blocks.append(Block(path, opening["lang"].lower(), i + 2, body, lines[i - 1] if i else ""))
        i = end + 1
    return blocks


def logical_lines(block: Block) -> list[tuple[int, str]]:
    """A shell block's lines with backslash continuations joined, each with the line number it starts on."""
    out, current, start = [], "", 0
    for offset, raw in enumerate(block.lines):
        if not current:
            start = block.line + offset
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        out.append((start, current + line))
        current = ""
    if current:
        out.append((start, current))
    return out


def command_argv(line: str) -> list[str] | None:
    """The arguments after ``mobilenetv2`` on a shell line, or None when the line runs no ``mobilenetv2``."""
    text = line.strip()
    if text.startswith("$ "):
        text = text[2:]
    if not text or text.startswith("#"):
        return None
    lexer = shlex.shlex(text, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: an output line, not a command
        return None
    while tokens and ENV_PREFIX.match(tokens[0]):
        tokens.pop(0)
    for i, token in enumerate(tokens):
        if token in OPERATORS:
            continue
        if token == "mobilenetv2" or token.endswith("/mobilenetv2"):
            argv = tokens[i + 1:]
            cut = next((j for j, t in enumerate(argv) if t in OPERATORS), len(argv))
            return argv[:cut]
    return None


def documented_commands() -> list[tuple[str, int, str, list[str]]]:
    """(file relative to the repository, line, command as written, argv) of every documented command."""
    found = []
    for path in markdown_files():
        for block in fenced_blocks(path):
            if block.lang not in SHELL_LANGS:
                continue
            for line_no, line in logical_lines(block):
                argv = command_argv(line)
                if argv is not None:
                    found.append((str(path.relative_to(REPO)), line_no, line.strip(), argv))
    return found


def python_examples() -> list[Block]:
    """Every ```python block of the site."""
    return [b for path in sorted(DOCS.rglob("*.md")) for b in fenced_blocks(path) if b.lang in ("python", "py")]


COMMANDS = documented_commands()
EXAMPLES = python_examples()
EXAMPLE_PARAMS = [pytest.param(b, id=f"{b.path.relative_to(REPO)}:{b.line}",
                               marks=[pytest.mark.slow] if SLOW.search(b.before) else []) for b in EXAMPLES]


def test_many_commands_are_documented():
    """The scanner finds the docs' commands: a floor, so that a broken scanner cannot pass on zero."""
    assert len(COMMANDS) >= MIN_COMMANDS, f"only {len(COMMANDS)} mobilenetv2 commands found in docs/ and README.md"
    assert any(where == "README.md" for where, *_ in COMMANDS), "no command found in README.md"
    assert len(EXAMPLES) >= 10, f"only {len(EXAMPLES)} Python examples found in docs/"


@pytest.mark.parametrize(("where", "line", "command", "argv"), COMMANDS,
                         ids=[f"{where}:{line}" for where, line, _, _ in COMMANDS])
def test_documented_command_parses(where: str, line: int, command: str, argv: list[str]):
    """The real parser accepts the command: every subcommand, option and choice it names exists."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):  # --help and --version exit 0
            pytest.fail(f"{where}:{line}: `{command}` does not parse: {stderr.getvalue().strip()}")


@pytest.mark.parametrize("block", EXAMPLE_PARAMS)
def test_python_example_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The example runs as written, in a fresh namespace, in an empty temporary folder."""
    skip = NO_RUN.search(block.before)
    if skip:
        pytest.skip(f"no-run: {skip['reason']}")
    monkeypatch.chdir(tmp_path)
    source = textwrap.dedent("\n".join(block.lines))
    where = f"{block.path.relative_to(REPO)}:{block.line}"
    code = compile("\n" * (block.line - 1) + source, str(block.path), "exec")
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            exec(code, {"__name__": "__docs_example__"})  # noqa: S102 - running the docs' own examples is the test
        except Exception as exc:
            raise AssertionError(f"the Python example at {where} failed: {type(exc).__name__}: {exc}") from exc


def test_readme_is_short():
    """The README is the pitch and the quick start; the manual is the site."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines (at most {MAX_README_LINES})"


def test_site_builds_strictly(tmp_path: Path):
    """``mkdocs build --strict``: no broken link, no missing page, no API reference that does not resolve."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]


def test_scanner_reads_commands_as_documented():
    """The scanner's rules: continuations joined, prompts, env prefixes and comments stripped, output skipped."""
    block = Block(Path("x.md"), "bash", 1, ("$ mobilenetv2 train \\", "    --epochs 3   # short", "# mobilenetv2 info",
                                            "CUDA_VISIBLE_DEVICES=0 mobilenetv2 info --json | head", "ls runs/"), "")
    argvs = [command_argv(line) for _, line in logical_lines(block)]
    assert argvs == [["train", "--epochs", "3"], None, ["info", "--json"], None]
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        build_parser().parse_args(["train", "--epoch", "3"])
