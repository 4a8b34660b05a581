"""`clipwatch clips hide|unhide`, `clipwatch audit list` and `clipwatch users role` (issue 17),
as an operator runs them: one line each, errors as one line and exit code 1."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.cli.test_commands import run
from tests.factories import helix_clip


def test_hide_unhide_audit_and_roles_from_the_cli(tmp_path: Path) -> None:
    lines = b"\n".join(orjson.dumps(helix_clip(id=f"Cli{i}")) for i in range(2))
    (tmp_path / "clips.jsonl").write_bytes(lines + b"\n")
    assert run(tmp_path, "clips", "import", "clips.jsonl").returncode == 0

    hidden = run(tmp_path, "clips", "hide", "Cli0", "--reason", "a leaked address")
    assert hidden.returncode == 0, hidden.stderr
    assert hidden.stdout.startswith("clip Cli0 hidden")
    again = run(tmp_path, "clips", "hide", "Cli0", "--reason", "other")
    assert again.stdout.strip() == "clip Cli0 was hidden already (a leaked address)"
    exported = run(tmp_path, "clips", "export", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    assert [orjson.loads(line)["id"] for line in exported.stdout.splitlines()] == ["Cli1"]

    for args, message in (
        (("clips", "hide", "NoSuch", "--reason", "x"), "no clip with id NoSuch"),
        (("clips", "hide", "Cli1", "--reason", " "), "a reason is required"),
        (("users", "role", "nobody", "moderator"), "no user named 'nobody'"),
    ):
        failed = run(tmp_path, *args)
        assert failed.returncode != 0, args
        assert message in failed.stderr, (args, failed.stderr)
        assert "Traceback" not in failed.stderr

    assert run(tmp_path, "clips", "unhide", "Cli0").stdout.strip() == "clip Cli0 is shown again"
    assert run(tmp_path, "clips", "unhide", "Cli0").stdout.strip() == "clip Cli0 was not hidden"
    assert run(tmp_path, "users", "create", "mo").returncode == 0
    made = run(tmp_path, "users", "role", "mo", "moderator")
    assert made.stdout.strip() == "user mo is now a moderator"
    assert "moderator" in run(tmp_path, "users", "list").stdout

    log = run(tmp_path, "audit", "list")
    assert log.returncode == 0, log.stderr
    rows = [line for line in log.stdout.splitlines() if "cli" in line and "│" in line]
    assert [next(a for a in ("user.role", "clip.unhide", "clip.hide") if a in r) for r in rows] == [
        "user.role",
        "clip.unhide",
        "clip.hide",
    ]
    only = run(tmp_path, "audit", "list", "--action", "clip.hide", "--target", "Cli0")
    assert "a leaked address" in only.stdout
    assert "clip.unhide" not in only.stdout
