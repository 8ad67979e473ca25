"""The README and docs/ stay true to the code: every `vidcolor` command in their shell code blocks
parses with the real parser (`study.cli.build_parser`), every relative link points to a file,
every `make` target they name is in the Makefile, and the README stays short enough to read in
five minutes."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from study.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200
PICTURE_MAX_BYTES = 300_000

FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
SHELL_BLOCKS = {"", "sh", "bash", "shell", "console"}
PLACEHOLDER = re.compile(r"<[^<>\s]+>")  # <repo>, <time>: any word stands in for them
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
COMMAND_ENDS = {"&&", "||", "|", ";"}
LINK = re.compile(r"!?\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


@dataclass(frozen=True)
class ShellLine:
    path: Path
    lineno: int  # of the line's first physical line
    text: str  # continuation lines (ending in a backslash) joined

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path}:{self.lineno}"


def fenced_blocks(text: str) -> list[tuple[str, list[tuple[int, str]]]]:
    """(info string, [(line number, line)]) of each fenced code block; an unclosed block runs to the end."""
    blocks, current, fence, info = [], None, "", ""
    for lineno, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if current is None and m:
            current, fence, info = [], m.group(1), m.group(2).lower()
        elif current is not None and m and m.group(1).startswith(fence[0] * len(fence)) and not m.group(2):
            blocks.append((info, current))
            current = None
        elif current is not None:
            current.append((lineno, line))
    if current is not None:
        blocks.append((info, current))
    return blocks


def shell_lines(path: Path) -> list[ShellLine]:
    """The logical lines of a page's shell code blocks."""
    out: list[ShellLine] = []
    for info, lines in fenced_blocks(path.read_text(encoding="utf-8")):
        if info not in SHELL_BLOCKS:
            continue
        start, parts = None, []
        for lineno, line in lines:
            start = lineno if start is None else start
            stripped = line.strip()
            if stripped.endswith("\\"):
                parts.append(stripped[:-1])
                continue
            parts.append(stripped)
            out.append(ShellLine(path, start, " ".join(parts)))
            start, parts = None, []
        if parts:
            out.append(ShellLine(path, start, " ".join(parts)))
    return out


def _vidcolor_at(tokens: list[str], i: int) -> int | None:
    """Where the arguments start when ``tokens[i]`` begins a vidcolor command, else None."""
    t = tokens[i]
    if t == "vidcolor" or t.endswith("/vidcolor"):
        return i + 1
    if (t == "python" or re.fullmatch(r"(.*/)?python3?(\.\d+)?", t)) and tokens[i + 1 : i + 3] == ["-m", "study"]:
        return i + 3
    return None


def vidcolor_commands(text: str) -> list[list[str]]:
    """The argument lists of the vidcolor commands in one shell line: at the start (after any
    VAR=value), after `--` (`ray job submit ... -- vidcolor tune ...`), after `&&`, `;` or `|`,
    and inside a quoted argument (`ray exec ... 'vidcolor dashboard ...'`)."""
    tokens = shlex.split(PLACEHOLDER.sub("PLACEHOLDER", text), comments=True)
    found: list[list[str]] = []
    at_command = True
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if at_command and ENV_ASSIGNMENT.match(t):
            i += 1
            continue
        start = _vidcolor_at(tokens, i) if at_command else None
        if start is not None:
            end = next((k for k in range(start, len(tokens)) if tokens[k] in COMMAND_ENDS), len(tokens))
            found.append(tokens[start:end])
            i, at_command = end, False
            continue
        if " " in t and re.match(r"^(\S*/)?vidcolor\s|^python3?\s+-m\s+study\s", t):
            found.extend(vidcolor_commands(t))
        at_command = t in COMMAND_ENDS or t == "--"
        i += 1
    return found


def parse_error(argv: list[str]) -> str | None:
    """argparse's complaint about ``argv`` (its last stderr line), or None when it parses."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            if exc.code not in (0, None):
                lines = err.getvalue().strip().splitlines()
                return lines[-1] if lines else f"exit status {exc.code}"
    return None


def command_problems(pages: list[Path]) -> tuple[list[str], list[list[str]]]:
    """(one message per command that does not parse, every command found) in ``pages``."""
    problems, commands = [], []
    for path in pages:
        for line in shell_lines(path):
            try:
                found = vidcolor_commands(line.text)
            except ValueError as exc:  # shlex: unbalanced quotes
                problems.append(f"{line.where()}: cannot split `{line.text}`: {exc}")
                continue
            for argv in found:
                commands.append(argv)
                error = parse_error(argv)
                if error:
                    problems.append(f"{line.where()}: `vidcolor {shlex.join(argv)}`: {error}")
    return problems, commands


# -- the commands --------------------------------------------------------------------------------


def test_every_documented_command_parses():
    problems, commands = command_problems(PAGES)
    assert not problems, "documented commands the CLI rejects:\n" + "\n".join(problems)
    assert len(commands) >= 30, f"only {len(commands)} vidcolor commands found in README.md and docs/"


def test_the_readme_shows_each_flow_and_the_docs_every_subcommand():
    _, in_readme = command_problems([README])
    flows = {"demo-data", "shard", "train", "tune", "evaluate", "experiments", "dashboard", "ctt", "colorize"}
    assert flows <= {argv[0] for argv in in_readme}, flows - {argv[0] for argv in in_readme}
    _, everywhere = command_problems(PAGES)
    parser_choices = next(a for a in build_parser()._actions if a.dest == "command").choices
    documented = {argv[0] for argv in everywhere}
    assert set(parser_choices) - {"demo"} <= documented, set(parser_choices) - documented  # demo: `make demo`
    ctt = {argv[1] for argv in everywhere if argv[0] == "ctt"}
    assert {"build", "export", "serve", "campaign"} <= ctt


def test_a_bad_flag_is_reported_with_its_file_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n```sh\nvidcolor shard videos/ --out shards/ \\\n    --no-such-flag 3\n"
        "RAY_AUTH_MODE=token ray job submit -- vidcolor tune spec.toml --trails 4\n"
        "ray exec c.yaml 'vidcolor dashboard --db sqlite:///<repo>/r.db'\n```\n\n"
        "```toml\nvidcolor = 'not a command'\n```\n"
    )
    problems, commands = command_problems([page])
    assert commands == [
        ["shard", "videos/", "--out", "shards/", "--no-such-flag", "3"],
        ["tune", "spec.toml", "--trails", "4"],
        ["dashboard", "--db", "sqlite:///PLACEHOLDER/r.db"],
    ]
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{page}:4: `vidcolor shard videos/ --out shards/ --no-such-flag 3`: ")
    assert problems[0].endswith("unrecognized arguments: --no-such-flag 3")
    assert problems[1].startswith(f"{page}:6: ") and "--trails" in problems[1]


def test_a_missing_required_flag_and_a_bad_choice_fail():
    assert "--out" in parse_error(["shard", "videos/"])
    assert "invalid choice" in parse_error(["colorize", "ck", "in.mp4", "--encoder-preset", "quick"])
    assert parse_error(["shard", "--help"]) is None
    assert parse_error(["colorize", "ck", "in.mp4", "--crf", "22"]) is None


# -- links and make targets ----------------------------------------------------------------------


def _prose(text: str) -> str:
    """The page without its code blocks and inline code (links there are not links)."""
    code_lines = {n for _, lines in fenced_blocks(text) for n, _ in lines}
    kept = [line for n, line in enumerate(text.splitlines(), 1) if n not in code_lines and not FENCE.match(line)]
    return INLINE_CODE.sub("", "\n".join(kept))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_to_files(page):
    broken = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if URL_SCHEME.match(target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links to missing files: {broken}"


def makefile_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-/$() ]+?)\s*:(?!=)", line)
        if m and not line.startswith("\t"):
            targets.update(m.group(1).split())
    return targets


def named_make_targets(path: Path) -> list[str]:
    """`make X` in the page's shell blocks and inline code."""
    names = []
    for line in shell_lines(path):
        tokens = shlex.split(line.text, comments=True)
        if tokens[:1] == ["make"]:
            names.extend(t for t in tokens[1:] if not t.startswith("-") and "=" not in t)
    for code in INLINE_CODE.findall(path.read_text(encoding="utf-8")):
        m = re.fullmatch(r"`make((?:\s+[\w-]+)+)`", code)
        if m:
            names.extend(m.group(1).split())
    return names


def test_make_targets_named_in_the_docs_exist():
    targets = makefile_targets()
    assert {"setup", "test", "demo", "bench"} <= targets, targets
    missing = [
        f"{p.relative_to(ROOT)}: make {name}" for p in PAGES for name in named_make_targets(p) if name not in targets
    ]
    assert not missing, f"make targets not in the Makefile: {missing}"
    assert {"demo", "test"} <= set(named_make_targets(README))


# -- the README itself ---------------------------------------------------------------------------


def test_the_readme_is_short_and_its_picture_small():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to docs/"
    )
    pictures = [t for t in LINK.findall(_prose(README.read_text(encoding="utf-8"))) if t.endswith(".png")]
    assert pictures, "README.md shows no picture of the dashboard"
    for target in pictures:
        data = (ROOT / target).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{target} is not a PNG"
        assert len(data) < PICTURE_MAX_BYTES, f"{target}: {len(data)} bytes (keep it under {PICTURE_MAX_BYTES})"
