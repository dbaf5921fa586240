"""``hack/db/db.sh`` works from any checkout: one under a directory only its owner may enter (such
as a ``mktemp -d`` clone) included, though the server runs as the unprivileged ``postgres`` user."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.db


def test_the_database_script_runs_from_a_checkout_in_a_private_directory(tmp_path: Path) -> None:
    private = tmp_path / "private"
    (private / "hack" / "db").mkdir(parents=True)
    private.chmod(0o700)
    script = private / "hack" / "db" / "db.sh"
    shutil.copy(ROOT / "hack" / "db" / "db.sh", script)

    def db(cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(script), cmd], capture_output=True, text=True, timeout=120, check=False
        )

    try:
        up = db("up")
        assert up.returncode == 0, up.stderr
        dsn = up.stdout.strip().splitlines()[-1]
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        db("down")
