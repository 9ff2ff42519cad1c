"""A plain, non-editable install works from any directory: the migrations ship inside."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_the_migrations_and_runs_from_elsewhere(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("runback-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "runback/store/migrations/env.py" in names
    assert "runback/store/migrations/versions/v0001_foundation.py" in names
    assert "runback/py.typed" in names
    # The dashboard's templates and assets, served from the package: never fetched.
    assert "runback/dashboard/templates/base.html" in names
    assert "runback/dashboard/static/htmx.min.js" in names
    assert "runback/dashboard/static/htmx.LICENSE" in names

    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The unpacked wheel comes first on the path, ahead of the editable checkout.
    program = (
        f"import sys; sys.path.insert(0, {str(unpacked)!r}); import runback; "
        f"assert runback.__file__.startswith({str(unpacked)!r}), runback.__file__; "
        "sys.argv = ['runback', 'keys', 'create', '--data-dir', 'data']; "
        "from runback.cli import main; main()"
    )
    made = subprocess.run(
        [sys.executable, "-c", program],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("rb_")
    assert (elsewhere / "data" / "runback.db").exists()
