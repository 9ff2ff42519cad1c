"""The benchmark runner (``bench/run.py``): how it rewrites the results table, and one real
benchmark (P6, smoke mode: SQLite and PostgreSQL) run through it end to end."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"
START, END = "<!-- results:start -->", "<!-- results:end -->"
PAGE = f"""# Benchmarks

An introduction the lead wrote.

{START}
| an old table |
{END}

## How to read it

Kept as it is.
"""


@pytest.fixture(scope="module")
def runner() -> ModuleType:
    """``bench/run.py`` as a module (``bench`` is no package, and the suite has its own
    ``support``, which run.py does not import)."""
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def fake_result(id_: str, *, figure: float, baseline: float, holds: bool) -> dict[str, Any]:
    """A result as ``support.save`` writes it."""
    return {
        "id": id_,
        "what": f"what {id_} measures",
        "figure": figure,
        "unit": "runs/s",
        "baseline": baseline,
        "baseline_what": "the bare thing",
        "target": ">= 1.0x",
        "holds": holds,
        "mode": "quick",
        "command": f"bench/{id_}.py",
        "notes": f"notes of {id_} | with a pipe",
        "series": None,
    }


def write_results(folder: Path, *results: dict[str, Any]) -> None:
    folder.mkdir()
    for result in results:
        (folder / f"{result['id']}.json").write_text(json.dumps(result))


def table_rows(page: str) -> list[list[str]]:
    """The cells of each result row between the markers."""
    block = page[page.index(START) : page.index(END)]
    return [
        [cell.strip() for cell in line.strip("|").split(" | ")]
        for line in block.splitlines()
        if line.startswith("| **")
    ]


def test_the_table_between_the_markers_is_replaced_and_the_page_around_it_kept(
    tmp_path: Path, runner: ModuleType
) -> None:
    write_results(
        tmp_path / "results",
        fake_result("P6", figure=50.0, baseline=100.0, holds=False),
        fake_result("P10", figure=300.0, baseline=100.0, holds=True),
        fake_result("P1pg", figure=2_000.0, baseline=1_000.0, holds=True),
        fake_result("P1", figure=1_500.0, baseline=1_000.0, holds=True),
        fake_result("P1full", figure=900.0, baseline=1_000.0, holds=False),
    )
    (tmp_path / "results" / "broken.json").write_text("{not json")

    results = runner.load_results(tmp_path / "results")
    page: str = runner.rewrite_page(PAGE, runner.render_table(results))

    before, after = PAGE.split(START)[0], PAGE.split(END)[1]
    assert page.startswith(before + START)
    assert page.endswith(END + after)
    assert "an old table" not in page
    rows = table_rows(page)
    assert [row[0] for row in rows] == ["**P1**", "**P1full**", "**P1pg**", "**P6**", "**P10**"]
    missed = rows[3]
    assert missed[2] == "50.0 runs/s"
    assert missed[3] == "100 (the bare thing)"
    assert missed[4] == "0.50x"
    assert missed[5] == ">= 1.0x"
    assert missed[6] == "❌"
    assert missed[7] == "quick"
    assert len(missed) == 8
    assert [row[6] for row in rows] == ["✅", "❌", "✅", "❌", "✅"]


def test_each_result_s_notes_and_command_follow_the_table(runner: ModuleType) -> None:
    result = fake_result("P6", figure=50.0, baseline=100.0, holds=False)

    details: str = runner.render_details([result])

    assert details.startswith("- **P6** (quick): notes of P6 | with a pipe")
    assert details.endswith(f"`{result['command']}`")


def test_a_page_without_markers_gets_a_results_section_before_its_first_section(
    runner: ModuleType,
) -> None:
    page = "# Benchmarks\n\nIntro.\n\n## Scale-out\n\nA table of its own.\n"
    table = runner.render_table([fake_result("P2", figure=9.0, baseline=3.0, holds=False)])

    once: str = runner.rewrite_page(page, table)
    twice: str = runner.rewrite_page(once, table)

    assert once == twice
    assert once.startswith("# Benchmarks\n\nIntro.\n\n## Results")
    assert once.endswith(f"{END}\n\n## Scale-out\n\nA table of its own.\n")
    assert once.count(START) == once.count(END) == 1
    assert [row[0] for row in table_rows(once)] == ["**P2**"]


def test_a_page_with_its_markers_out_of_order_is_refused(runner: ModuleType) -> None:
    with pytest.raises(ValueError, match="results:start"):
        runner.rewrite_page(f"# B\n\n{END}\n{START}\n", "| table |")


def test_the_runner_runs_p6_in_smoke_mode_and_its_rows_reach_the_page(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    shutil.copy(ROOT / "docs" / "benchmarks.md", docs)
    original = docs.read_text()
    results = tmp_path / "results"

    done = subprocess.run(
        [sys.executable, str(RUN), "--mode", "smoke", "--only", "P6", "--timeout", "60",
         "--results-dir", str(results), "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=ROOT,
        check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(path.name for path in (results / "smoke").iterdir()) == ["P6.json", "P6pg.json"]
    for id_ in ("P6", "P6pg"):
        result = json.loads((results / "smoke" / f"{id_}.json").read_text())
        assert result["mode"] == "smoke"
        assert result["unit"] == "runs/s"
        assert result["figure"] > 0
        assert result["baseline"] > 0
    page = docs.read_text()
    rows = {row[0]: row for row in table_rows(page)}
    assert rows["**P6**"][1] == "accepted runs/s, SQLite (runback api)"
    assert rows["**P6pg**"][1] == "accepted runs/s, PostgreSQL (runback api)"
    assert rows["**P6**"][2].endswith(" runs/s")
    assert rows["**P6**"][7] == "smoke"
    # Whatever the page said outside the results block, it still says.
    outside = original.split(START)[0] + original.split(END)[-1] if START in original else original
    kept = page.split(START)[0] + page.split(END)[-1]
    for line in outside.splitlines():
        assert line in kept.splitlines()
    if importlib.util.find_spec("matplotlib") is not None:  # the bench extra draws plots
        assert (tmp_path / "benchmarks" / "ratios.png").stat().st_size > 0
