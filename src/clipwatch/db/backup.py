"""Backups and restores: SQLite through its online backup API, PostgreSQL through pg_dump and
pg_restore (docs/operations.md).

SQLite: the backup holds one read transaction on the source for the whole copy, so it is the
database at one committed moment even while the service writes (WAL mode lets the writers go
on; without that transaction, every write by another connection restarts the copy, and a busy
service's backup never ends). The copy is written to a temporary file next to its target
and renamed into place: a target path never holds half a backup, and a restore replaces the
database in one rename.

PostgreSQL: the password goes to pg_dump and pg_restore in PGPASSWORD, never on their command
line, and no command or message shows it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from clipwatch.errors import Conflict, InvalidInput, NotFound

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"
STEP_PAGES = 1024  # pages copied per step of a SQLite backup (4 MiB at 4 KiB pages)
BUSY_MS = 10_000

# (pages done, pages in all): called after every step of a SQLite copy.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CopyReport:
    pages: int
    bytes: int


# --- SQLite -----------------------------------------------------------------------------------


def sqlite_path(database_url: str) -> Path:
    """The file of a sqlite+aiosqlite:/// URL (relative to the working directory, as the
    engine opens it)."""
    name = make_url(database_url).database
    if not name or name == ":memory:":
        raise InvalidInput("an in-memory SQLite database has nothing to back up or restore")
    return Path(name)


def backup_sqlite(
    source: Path, target: Path, *, force: bool = False, progress: Progress | None = None
) -> CopyReport:
    """Copy a (possibly running) SQLite database to `target`, consistent at one commit."""
    if not source.is_file():
        raise NotFound(f"no database at {source}")
    _check_target(target, force)
    if target.resolve() == source.resolve():
        raise InvalidInput(f"{target} is the database itself")
    with _connect(source) as src, _temporary_next_to(target) as temporary:
        try:
            src.execute("BEGIN")  # the snapshot every step copies from (see the docstring)
            src.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except sqlite3.DatabaseError as exc:
            raise InvalidInput(f"{source} is not a SQLite database ({exc})") from None
        with _connect(temporary) as dst:
            report = _copy(src, dst, progress)
            # A backup is one self-contained file; the service turns WAL on again when it opens it.
            dst.execute("PRAGMA journal_mode=DELETE").fetchall()
        src.execute("ROLLBACK")
        os.replace(temporary, target)
    return report


def restore_sqlite(
    backup: Path, database: Path, *, progress: Progress | None = None
) -> tuple[CopyReport, frozenset[str]]:
    """Replace `database` by the clipwatch backup in `backup` (checked first: a SQLite file,
    intact, with a schema revision this code knows). The caller makes sure no process has
    the database open. Returns the copy's size and the backup's schema revisions."""
    if not backup.is_file():
        raise NotFound(f"no backup at {backup}")
    _check_magic(backup, "SQLite")
    if database.exists() and database.resolve() == backup.resolve():
        raise InvalidInput(f"{backup} is the database itself")
    with _temporary_next_to(database) as temporary:
        with _connect(backup) as src, _connect(temporary) as dst:
            try:
                report = _copy(src, dst, progress)
            except sqlite3.DatabaseError as exc:
                raise InvalidInput(f"{backup} is not a SQLite database ({exc})") from None
        with _connect(temporary) as copy:
            revisions = _check_clipwatch_database(copy, backup)
        _retire(database)
        os.replace(temporary, database)
    return report, revisions


def _check_clipwatch_database(conn: sqlite3.Connection, name: Path) -> frozenset[str]:
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
        if problems != ["ok"]:
            raise InvalidInput(f"{name} fails SQLite's integrity check: {problems[0]}")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "alembic_version" not in tables:
            raise InvalidInput(f"{name} is not a clipwatch database (no alembic_version table)")
        revisions = frozenset(
            str(row[0]) for row in conn.execute("SELECT version_num FROM alembic_version")
        )
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{name} is not a usable SQLite database ({exc})") from None
    check_revisions(revisions, name)
    return revisions


def _retire(database: Path) -> None:
    """Fold the old database's write-ahead log into it and remove the log, so that it is not
    replayed onto the restored file that takes its name."""
    if database.exists():
        with _connect(database) as old:
            try:
                busy = old.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.OperationalError as exc:  # locked: some process still writes
                raise Conflict(f"{database} is in use ({exc}): stop clipwatch first") from None
            except sqlite3.DatabaseError:
                busy = None  # not a database any more: nothing of it to keep
            if busy and busy[0]:  # a reader's transaction kept the log from being folded in
                raise Conflict(f"{database} is in use by another process: stop clipwatch first")
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)


def _copy(
    src: sqlite3.Connection, dst: sqlite3.Connection, progress: Progress | None
) -> CopyReport:
    total = 0

    def step(_status: int, remaining: int, pages: int) -> None:
        nonlocal total
        total = pages
        if progress is not None:
            progress(pages - remaining, pages)

    src.backup(dst, pages=STEP_PAGES, progress=step, sleep=0)
    page_size = int(dst.execute("PRAGMA page_size").fetchone()[0])
    total = total or int(dst.execute("PRAGMA page_count").fetchone()[0])
    return CopyReport(total, total * page_size)


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, timeout=BUSY_MS / 1000, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def _temporary_next_to(path: Path) -> Iterator[Path]:
    """A temporary file in `path`'s folder (so a rename onto `path` is atomic), removed
    unless it was renamed."""
    if not path.parent.is_dir():
        raise NotFound(f"no folder {path.parent}")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for leftover in (temporary, Path(f"{temporary}-journal")):
        leftover.unlink(missing_ok=True)
    try:
        yield temporary
    finally:
        for leftover in (temporary, Path(f"{temporary}-journal")):
            leftover.unlink(missing_ok=True)


def _check_target(target: Path, force: bool) -> None:
    if target.is_dir():
        raise InvalidInput(f"{target} is a folder; name the backup file")
    if target.exists() and not force:
        raise Conflict(f"{target} exists; --force replaces it")


def _check_magic(path: Path, kind: str) -> None:
    with path.open("rb") as file:
        head = file.read(len(SQLITE_MAGIC))
    if kind == "SQLite" and head.startswith(PG_DUMP_MAGIC):
        raise InvalidInput(f"{path} is a pg_dump archive: restore it into a PostgreSQL database")
    if kind == "PostgreSQL" and head == SQLITE_MAGIC:
        raise InvalidInput(f"{path} is a SQLite database: restore it into a SQLite database")
    expected = SQLITE_MAGIC if kind == "SQLite" else PG_DUMP_MAGIC
    if not head.startswith(expected):
        what = "SQLite database" if kind == "SQLite" else "pg_dump archive (--format=custom)"
        raise InvalidInput(f"{path} is not a {what}")


# --- schema revisions -------------------------------------------------------------------------


def known_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(every revision this code's migrations know, their heads)."""
    from alembic.script import ScriptDirectory

    from clipwatch.db.migrate import MIGRATIONS

    scripts = ScriptDirectory(str(MIGRATIONS))
    every = frozenset(script.revision for script in scripts.walk_revisions())
    return every, frozenset(scripts.get_heads())


def check_revisions(revisions: frozenset[str], name: Path) -> None:
    """A backup's schema must be one this code can migrate from: a revision it does not know
    was made by a newer clipwatch."""
    if not revisions:
        raise InvalidInput(f"{name} is not a clipwatch database (alembic_version is empty)")
    every, heads = known_revisions()
    unknown = sorted(revisions - every)
    if unknown:
        raise InvalidInput(
            f"{name} has schema revision {unknown[0]}, newer than this clipwatch's "
            f"({', '.join(sorted(heads))}): restore it with the clipwatch version that made it"
        )


# --- PostgreSQL -------------------------------------------------------------------------------

SSL_MODES = {"true": "require", "false": "disable"}


@dataclass(frozen=True)
class PgTarget:
    """A PostgreSQL database as libpq's tools name it; the password only in `env`."""

    database: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sslmode: str | None = None

    @classmethod
    def from_url(cls, database_url: str) -> PgTarget:
        url = make_url(database_url)
        if not url.database:
            raise InvalidInput("CLIPWATCH_DATABASE_URL names no database")
        ssl = url.query.get("sslmode") or url.query.get("ssl")
        sslmode = ssl if isinstance(ssl, str) else None
        return cls(
            url.database,
            url.host,
            url.port,
            url.username,
            url.password,
            SSL_MODES.get(sslmode or "", sslmode),
        )

    def args(self) -> list[str]:
        args = ["--no-password"]  # never a prompt: the password comes in PGPASSWORD or not at all
        for option, value in (("--host", self.host), ("--port", self.port)):
            if value is not None:
                args += [option, str(value)]
        if self.user:
            args += ["--username", self.user]
        return [*args, "--dbname", self.database]

    def env(self) -> dict[str, str]:
        env = {}
        if self.password:
            env["PGPASSWORD"] = self.password
        if self.sslmode:
            env["PGSSLMODE"] = self.sslmode
        return env

    def shell(self, command: list[str]) -> str:
        """The command as an operator would type it: the password as a placeholder."""
        env = [f"PGSSLMODE={self.sslmode}"] if self.sslmode else []
        if self.password:
            env.insert(0, "PGPASSWORD='<the password in CLIPWATCH_DATABASE_URL>'")
        return " ".join([*env, shlex.join(command)])


def pg_dump_command(target: PgTarget, file: Path) -> list[str]:
    return ["pg_dump", "--format=custom", f"--file={file}", *target.args()]


def pg_restore_command(target: PgTarget, file: Path) -> list[str]:
    return [
        "pg_restore",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",  # a restore that fails part-way leaves the database as it was
        *target.args(),
        str(file),
    ]


def tool_available(name: str) -> bool:
    return shutil.which(name) is not None


def run_tool(command: list[str], target: PgTarget) -> str:
    """Run pg_dump or pg_restore; its stdout, or a one-line error naming the tool."""
    try:
        done = subprocess.run(
            command,
            env={**os.environ, **target.env()},
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise InvalidInput(f"{command[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise InvalidInput(f"{command[0]}: {_first_error(done.stderr, command[0], target)}")
    return done.stdout


def backup_postgresql(target: PgTarget, file: Path, *, force: bool = False) -> int:
    """pg_dump the database to `file` (written next to it, then renamed); its size."""
    _check_target(file, force)
    with _temporary_next_to(file) as temporary:
        run_tool(pg_dump_command(target, temporary), target)
        size = temporary.stat().st_size
        os.replace(temporary, file)
    return size


def archive_revisions(file: Path, target: PgTarget) -> frozenset[str]:
    """The schema revisions stored in a pg_dump archive, checked against this code's."""
    if not file.is_file():
        raise NotFound(f"no backup at {file}")
    _check_magic(file, "PostgreSQL")
    listing = run_tool(
        ["pg_restore", "--data-only", "--table=alembic_version", "--file=-", str(file)], target
    )
    revisions: set[str] = set()
    rows = False
    for line in listing.splitlines():
        if line.startswith("COPY ") and "alembic_version" in line:
            rows = True
        elif rows and line == "\\.":
            break
        elif rows and line:
            revisions.add(line.split("\t")[0])
    if not rows:
        raise InvalidInput(f"{file} is not a clipwatch backup (no alembic_version table)")
    check_revisions(frozenset(revisions), file)
    return frozenset(revisions)


def restore_postgresql(target: PgTarget, file: Path) -> frozenset[str]:
    revisions = archive_revisions(file, target)
    run_tool(pg_restore_command(target, file), target)
    return revisions


def _first_error(stderr: str, tool: str, target: PgTarget) -> str:
    from clipwatch.monitoring.logging import REDACTED, redact_text

    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = lines[0].removeprefix(f"{tool}: ").removeprefix("error: ") if lines else "failed"
    if target.password:
        text = text.replace(target.password, REDACTED)
    return redact_text(text)
