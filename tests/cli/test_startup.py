"""What a command costs before it does anything, and what it prints besides its answer.

The times themselves are measured by `python -m bench cli`; these tests hold the causes: no
heavy import for help, no Alembic for a database already at the newest revision, no
library log lines without --verbose.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_commands import run

HEAVY = ("sqlalchemy", "alembic", "fastapi", "uvicorn", "httpx", "pydantic_settings", "structlog")


def _loaded_after(tmp_path: Path, *args: str) -> set[str]:
    """The heavy modules a `clipwatch ARGS` run had imported when it ended."""
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print(sorted(m for m in {HEAVY!r} if m in sys.modules),"
        " file=sys.stderr))\n"
        "from clipwatch.cli import app\n"
        f"sys.argv = ['clipwatch', *{list(args)!r}]\n"
        "app()\n"
    )
    last = _python(tmp_path, code)
    return set(eval(last))  # a list of names printed by the line above


def _python(tmp_path: Path, code: str) -> str:
    """`python -c code` with the CLI test's settings; the last line it wrote to stderr."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.strip().splitlines()[-1]


def _env(tmp_path: Path) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "CLIPWATCH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        "CLIPWATCH_SECRET_KEY": "cli-test",
        "CLIPWATCH_LOG_FORMAT": "json",
    }


@pytest.mark.parametrize(
    "args", [["--help"], ["users", "--help"], ["deliveries", "--help"], ["serve", "--help"]]
)
def test_help_imports_nothing_heavy(tmp_path: Path, args: list[str]) -> None:
    assert _loaded_after(tmp_path, *args) == set()


def test_a_database_at_the_newest_revision_is_not_migrated_again(tmp_path: Path) -> None:
    assert "alembic" in _loaded_after(tmp_path, "users", "list")  # a new database: migrated
    assert "alembic" not in _loaded_after(tmp_path, "users", "list")


def test_the_heads_read_from_the_files_are_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from clipwatch.db.migrate import MIGRATIONS, head_revisions

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revisions() == frozenset(ScriptDirectory.from_config(config).get_heads())


def test_library_log_lines_only_with_verbose(tmp_path: Path) -> None:
    quiet = run(tmp_path, "deliveries", "run", "--until-empty")  # migrates a new database
    assert quiet.returncode == 0, quiet.stderr
    assert "alembic" not in quiet.stderr
    assert "0 deliveries sent" in quiet.stdout

    other = tmp_path / "other"
    other.mkdir()
    url = f"sqlite+aiosqlite:///{other}/cli.db"
    verbose = run(
        tmp_path, "--verbose", "deliveries", "run", "--until-empty", CLIPWATCH_DATABASE_URL=url
    )
    assert verbose.returncode == 0, verbose.stderr
    assert "alembic.runtime.migration" in verbose.stderr
    assert "Running upgrade" in verbose.stderr


def test_database_option_names_the_database(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen.db"
    created = run(tmp_path, "--database", f"sqlite+aiosqlite:///{chosen}", "users", "create", "ann")
    assert created.returncode == 0, created.stderr
    assert chosen.exists()
    assert not (tmp_path / "cli.db").exists()


def test_importing_an_empty_or_odd_file_says_what_it_is(tmp_path: Path) -> None:
    empty = run(tmp_path, "clips", "import", "/dev/null")
    assert empty.returncode == 1
    assert empty.stderr.strip().splitlines() == [
        "error: /dev/null (not a regular file, read as a stream): empty input, no clips to import"
    ]
    (tmp_path / "nothing.jsonl").touch()
    nothing = run(tmp_path, "clips", "import", "nothing.jsonl")
    assert nothing.stderr.strip() == "error: nothing.jsonl: empty input, no clips to import"
    folder = run(tmp_path, "clips", "import", str(tmp_path))
    assert folder.returncode == 1
    assert "is a directory" in folder.stderr
    assert "no such file" in run(tmp_path, "clips", "import", "missing.jsonl").stderr


def test_the_collector_is_off_while_a_command_imports_and_on_once_it_works(
    tmp_path: Path,
) -> None:
    """`clipwatch` (the console script's `main`) starts with the cyclic collector off; a
    command's work (`common.run`) turns it back on with startup's objects frozen."""
    code = (
        "import gc, sys\n"
        "from clipwatch.cli import common, main\n"
        "seen = []\n"
        "real = common.run\n"
        "def spy(coro):\n"
        "    seen.append(gc.isenabled())\n"
        "    try:\n"
        "        return real(coro)\n"
        "    finally:\n"
        "        seen.append((gc.isenabled(), gc.get_freeze_count() > 1000))\n"
        "        print(seen, file=sys.stderr)\n"
        "common.run = spy\n"
        "import clipwatch.cli.accounts as accounts\n"
        "accounts.run = spy\n"
        "sys.argv = ['clipwatch', 'users', 'list']\n"
        "main()\n"
    )
    assert _python(tmp_path, code) == "[False, (True, True)]"
    scripts = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert 'clipwatch = "clipwatch.cli:main"' in scripts
