"""Docs a clone can follow: every link and file path in README.md and docs/ names a file
that is in the repository.

Checked: Markdown links `[text](target)` (not web addresses or anchors), resolved against
the page's folder; and file paths written as code (`docs/search.md`, `api/params.py`,
`../shared/PRODUCT.md`), resolved against the repository, `src/clipwatch/`, or the page's
folder. A bare file name (`sync.py`) must name some file of the repository. No path may
leave the repository. The API digests in docs/reference/ cite the source files of other
projects (discord.py's `http.py`), so only their Markdown links are checked.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FILE_EXTENSIONS = "md|py|toml|txt|ini|cfg|json|yaml|yml|sh|mako|service|conf|html|css|js"
CODE_PATH = re.compile(rf"`([^`\s]+\.(?:{FILE_EXTENSIONS}))`")
WEB = ("http://", "https://", "mailto:", "#")


def _repository_files() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line for line in listed.splitlines() if line}


FILES = _repository_files()
NAMES = {Path(name).name for name in FILES}


def _inside(path: Path) -> str | None:
    """The repository-relative path of an existing file or folder, or None."""
    resolved = path.resolve()
    try:
        relative = resolved.relative_to(ROOT)
    except ValueError:
        return None
    as_text = relative.as_posix()
    exists = as_text in FILES or any(name.startswith(as_text + "/") for name in FILES)
    return as_text if exists else None


def broken_references(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in MARKDOWN_LINK.findall(text):
        if target.startswith(WEB):
            continue
        path = target.split("#", 1)[0]
        if path and _inside(page.parent / path) is None:
            broken.append(f"link ({target})")
    if page.is_relative_to(ROOT / "docs" / "reference"):
        return broken
    for path in CODE_PATH.findall(text):
        if "/" not in path:
            if path not in NAMES:
                broken.append(f"`{path}`")
            continue
        bases = (ROOT, ROOT / "src" / "clipwatch", page.parent)
        if not any(_inside(base / path) for base in bases):
            broken.append(f"`{path}`")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_reference_resolves_inside_the_repository(page: Path) -> None:
    assert broken_references(page) == []


def test_the_checker_finds_a_reference_outside(tmp_path: Path) -> None:
    """The check itself can fail: a page naming the old shared files is refused."""
    page = ROOT / "docs" / "probe-not-committed.md"
    page.write_text(
        "See `../shared/PRODUCT.md`, `src/clipwatch/nowhere.py`, [x](missing.md), "
        "`sync.py` and [web](https://example.com).\n",
        encoding="utf-8",
    )
    try:
        assert broken_references(page) == [
            "link (missing.md)",
            "`../shared/PRODUCT.md`",
            "`src/clipwatch/nowhere.py`",
        ]
    finally:
        page.unlink()
