"""The front door and the pages: README.md stays a front door (at most 250 lines), every relative link and anchor of
README.md, docs/*.md and models/README.md resolves, and every ``liteseg-*`` command their ``sh`` blocks show is
accepted by that tool's own argument parser (the commands the labelling page's loop shows run for real in
test_readme_loop.py; ``make`` targets exist in the Makefile)."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "models" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces to
    hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings (outside code blocks; a repeated heading gets -1, -2, ...)."""
    found: dict[str, int] = {}
    names = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"#{1,6} ", line):
            name = slug(line.lstrip("#"))
            count = found.get(name, 0)
            found[name] = count + 1
            names.add(name if count == 0 else f"{name}-{count}")
    return names


def links(page: Path) -> list[str]:
    """The link targets of a page, code blocks and inline code left out."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [first or second for first, second in LINK.findall(text)]


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for page in ("ros", "depth", "labelling", "training", "evaluation", "cpu", "benchmarks", "limits"):
        assert f"(docs/{page}.md" in text, page
    assert "out/demo/replay/" in text and "report.md" in text  # where make demo writes its report


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # http(s), mailto
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert broken == [], broken


def test_the_link_check_can_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A page: `here`\n\n[ok](#a-page-here) [bad](#nowhere) [gone](missing.md) `[code](x.md)`\n")
    assert anchors(page) == {"a-page-here"}
    assert links(page) == ["#a-page-here", "#nowhere", "missing.md"]


def console_scripts() -> dict[str, str]:
    """liteseg-* tool name -> its module, from setup.py's entry points."""
    text = (ROOT / "setup.py").read_text(encoding="utf-8")
    return dict(re.findall(r'"(liteseg-[\w-]+) = ([\w.]+):main"', text))


def shown_commands(page: Path) -> list[list[str]]:
    """The commands of a page's ``sh`` blocks: continuation lines joined, comments dropped, ``ros2 run liteseg_ros``
    unwrapped."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            words = shlex.split(line, comments=True)
            if words[:3] == ["ros2", "run", "liteseg_ros"]:
                words = words[3:]
            if words:
                commands.append(words)
    return commands


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_tool_command_a_page_shows_is_one_the_tool_accepts(page):
    tools, makefile = console_scripts(), (ROOT / "Makefile").read_text(encoding="utf-8")
    refused = []
    for words in shown_commands(page):
        if words[0] == "make":
            refused += [f"make {target}" for target in words[1:] if not re.search(rf"^{target}:", makefile, re.M)]
        if not words[0].startswith("liteseg-"):
            continue
        if words[0] not in tools:
            refused.append(f"{words[0]}: no such tool")
            continue
        try:
            importlib.import_module(tools[words[0]]).build_parser().parse_args(words[1:])
        except SystemExit as stop:
            refused.append(f"{' '.join(words)} (exit {stop.code})")
    assert refused == [], refused


def test_every_tool_has_a_parser_the_page_check_reads():
    tools = console_scripts()
    assert {"liteseg-mine", "liteseg-train", "liteseg-eval", "liteseg-replay"} <= set(tools)
    for module in tools.values():
        assert callable(importlib.import_module(module).build_parser), module
