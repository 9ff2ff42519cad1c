"""Run the benchmarks one after another, then rewrite the results in ``docs/benchmarks.md``.

    .venv/bin/python bench/run.py --mode quick              # make bench: P1-P8, ~10 minutes
    .venv/bin/python bench/run.py --mode full               # make bench-full
    .venv/bin/python bench/run.py --mode smoke --only P6    # seconds: proves a script runs

Each ``bench/pN_*.py`` runs as its own process with ``RUNBACK_BENCH_MODE`` set, under a
timeout (its whole process group is stopped when it runs over); a script that breaks is
reported and the others still run, and the exit status is non-zero at the end. Then every
``<results dir>/*.json`` (a ``support.Result`` each) becomes one row of the table between
``<!-- results:start -->`` and ``<!-- results:end -->`` in the docs page, the rest of which
is kept, and the plots are drawn (matplotlib, the ``bench`` extra) into the folder named
like the page (``docs/benchmarks/``).

This module imports nothing from ``bench/`` at import time, so a test can load it and call
``render_table``/``rewrite_page`` (the test suite has its own ``support`` package).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCRIPTS = {
    "P1": "p1_deliveries.py",
    "P2": "p2_latency.py",
    "P3": "p3_receiver.py",
    "P4": "p4_isolation.py",
    "P5": "p5_claim.py",
    "P6": "p6_submissions.py",
    "P7": "p7_memory.py",
    "P8": "p8_alternatives.py",
}
MODES = ("quick", "full", "smoke")
TIMEOUT_SECONDS = {"smoke": 120.0, "quick": 900.0, "full": 3600.0}
"""Per script; ``--timeout`` overrides."""
STOP_GRACE_SECONDS = 15.0
START, END = "<!-- results:start -->", "<!-- results:end -->"
SECTION = f"""## Results

Written by `bench/run.py` (`make bench`, `make bench-full`) from `bench/results/*.json`: one
row per figure, beside its baseline measured in the same run on the same machine, their
ratio, the target and whether it holds. Each script's docstring says exactly what it
measures; the `command` in its JSON file reruns it.

{START}
{END}
"""
_ID = re.compile(r"([A-Za-z]*)(\d+)(.*)")
_RATIO_TARGET = re.compile(r"([<>]=?)\s*([0-9]*\.?[0-9]+)\s*[xX](?![A-Za-z])")


@dataclass(frozen=True)
class Outcome:
    """How one script's run ended."""

    id: str
    script: str
    status: str
    """``ok``, ``broken`` (non-zero exit), ``timeout`` or ``missing``."""
    seconds: float = 0.0

    @property
    def broke(self) -> bool:
        return self.status in ("broken", "timeout")


# --- running the scripts -------------------------------------------------------------------


def benchmark_id(text: str) -> str:
    """``P6`` for ``P6``, ``p6`` or ``P6pg`` (a row names its benchmark)."""
    found = _ID.fullmatch(text.strip())
    if found is None or found.group(1).upper() != "P":
        raise argparse.ArgumentTypeError(f"{text!r} is not a benchmark id like P1 or P6pg")
    return f"P{int(found.group(2))}"


def run_script(id_: str, script: Path, *, mode: str, timeout: float, results_dir: Path) -> Outcome:
    """One benchmark script in its own process group, output passed through."""
    if not script.exists():
        print(f"== {id_}: {script.relative_to(ROOT)} is not there: skipped", flush=True)
        return Outcome(id_, script.name, "missing")
    print(f"== {id_}: {script.relative_to(ROOT)} ({mode})", flush=True)
    env = {**os.environ, "RUNBACK_BENCH_MODE": mode, "RUNBACK_BENCH_RESULTS": str(results_dir)}
    started = time.monotonic()
    # Its own session: on a timeout the runback processes it started stop with it.
    child = subprocess.Popen([sys.executable, str(script)], env=env, cwd=ROOT,
                             start_new_session=True)  # fmt: skip
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(child)
        print(f"== {id_}: stopped after its {timeout:g} s timeout", flush=True)
        return Outcome(id_, script.name, "timeout", time.monotonic() - started)
    except BaseException:  # Ctrl-C: leave nothing running behind
        stop_group(child)
        raise
    seconds = time.monotonic() - started
    status = "ok" if code == 0 else "broken"
    print(f"== {id_}: {status} (exit {code}) in {seconds:.0f} s", flush=True)
    return Outcome(id_, script.name, status, seconds)


def stop_group(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the child's process group, SIGKILL if it is still there after a grace."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sent)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=STOP_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue


# --- the table -----------------------------------------------------------------------------


_MODE_ORDER = {"full": 0, "quick": 1, "smoke": 2}


def load_results(folder: Path) -> list[dict[str, Any]]:
    """Every result under ``folder`` (each mode writes its own subfolder), in table order:
    by id, then full before quick; an unreadable file is said and skipped."""
    found = []
    for path in sorted(folder.rglob("*.json")):
        try:
            result = json.loads(path.read_text())
            if not isinstance(result, dict) or "id" not in result or "figure" not in result:
                raise ValueError("not a benchmark result")
        except ValueError as exc:
            print(f"{path}: skipped ({exc})", file=sys.stderr)
            continue
        found.append(result)
    return sorted(
        found,
        key=lambda result: (
            natural_key(str(result["id"])),
            _MODE_ORDER.get(str(result.get("mode")), 3),
        ),
    )


def natural_key(id_: str) -> tuple[str, int, str]:
    """P1, P1full, P1pg, P2, ..., P10: by number, then by suffix."""
    found = _ID.fullmatch(id_)
    if found is None:
        return (id_, -1, "")
    return (found.group(1), int(found.group(2)), found.group(3))


def number(value: float) -> str:
    """Three significant figures or so, thousands separated."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 0.1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def ratio_of(result: dict[str, Any]) -> float | None:
    """figure / baseline, where the target is a ratio or a latency (P7's target is an
    absolute growth in MB beside the idle process: a ratio there means nothing)."""
    baseline = result.get("baseline")
    if not baseline or "MB" in str(result.get("target", "")):
        return None
    return float(result["figure"]) / float(baseline)


def holds_mark(holds: object) -> str:
    if holds is None:
        return "-"
    return "✅" if holds else "❌"


def cell(text: object) -> str:
    """Text fit for one table cell: no line breaks, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def render_table(results: Sequence[dict[str, Any]]) -> str:
    """The markdown table, one row per result, in the order given."""
    lines = [
        "| id | what | figure | baseline | ratio | target | holds | mode |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        baseline = result.get("baseline")
        baseline_text = "-" if baseline is None else number(float(baseline))
        if result.get("baseline_what"):
            baseline_text += f" ({result['baseline_what']})"
        ratio = ratio_of(result)
        row = [
            f"**{result['id']}**",
            result.get("what", ""),
            f"{number(float(result['figure']))} {result.get('unit', '')}".strip(),
            baseline_text,
            "-" if ratio is None else f"{number(ratio)}x",
            result.get("target", ""),
            holds_mark(result.get("holds")),
            result.get("mode", ""),
        ]
        lines.append("| " + " | ".join(cell(value) for value in row) + " |")
    if not results:
        lines.append("| - | no results yet: run `make bench` | | | | | | |")
    return "\n".join(lines)


def render_details(results: Sequence[dict[str, Any]]) -> str:
    """Under the table, one entry per result: its notes (the percentiles, CPU per item,
    sizes, settings) and the command that measured it."""
    entries = []
    for result in results:
        entry = f"- **{result['id']}** ({result.get('mode', '')}): {result.get('notes', '')}"
        if result.get("command"):
            entry += f" `{result['command']}`"
        entries.append(entry)
    return "\n".join(entries)


def rewrite_page(page: str, block: str) -> str:
    """``page`` with ``block`` between the result markers; without markers, a results
    section is added first (before the page's first ``##`` section, else at its end)."""
    if START not in page and END not in page:
        heading = re.search(r"^## ", page, flags=re.MULTILINE)
        if heading is None:
            page = page.rstrip("\n") + "\n\n" + SECTION
        else:
            page = page[: heading.start()] + SECTION + "\n" + page[heading.start() :]
    start, end = page.find(START), page.find(END)
    if start < 0 or end < start or page.count(START) != 1 or page.count(END) != 1:
        raise ValueError(f"the page needs one {START} followed by one {END}")
    return page[: start + len(START)] + "\n" + block.strip("\n") + "\n" + page[end:]


def results_block(results: Sequence[dict[str, Any]], plots: Sequence[Path], page: Path) -> str:
    """What goes between the markers: the table, then the plots (linked from the page)."""
    parts = [render_table(results)]
    if results:
        parts.append(render_details(results))
    for plot in plots:
        parts.append(f"![{plot.stem}]({plot.relative_to(page.parent).as_posix()})")
    return "\n\n".join(parts)


# --- the plots -----------------------------------------------------------------------------


def ratio_target(target: str) -> float | None:
    """The ratio a target like ``>= 0.7x`` names; None for other targets (``p95 <= 5 ms``)."""
    found = _RATIO_TARGET.search(target)
    return float(found.group(2)) if found else None


def draw_plots(results: Sequence[dict[str, Any]], folder: Path) -> list[Path]:
    """``ratios.png`` (each measured ratio beside its target) and ``<id>.png`` for every
    result with ``series``; nothing (said so) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (the bench extra): no plots drawn", file=sys.stderr)
        return []
    folder.mkdir(parents=True, exist_ok=True)
    drawn = []
    rated = [(result, ratio) for result in results if (ratio := ratio_of(result))]
    if rated:
        figure, axes = plt.subplots(figsize=(9, 0.45 * len(rated) + 1.5))
        labels = [f"{result['id']} ({result.get('mode', '?')})" for result, _ in rated]
        ratios = [ratio for _, ratio in rated]
        colours = [
            "tab:green" if result.get("holds") else "tab:red" if result.get("holds") is False
            else "tab:grey"
            for result, _ in rated
        ]  # fmt: skip
        positions = list(range(len(rated)))
        axes.barh(positions, ratios, color=colours, height=0.6, label="measured ratio")
        labelled = False
        for position, (result, ratio) in enumerate(rated):
            target = ratio_target(str(result.get("target", "")))
            if target is not None:
                axes.plot([target, target], [position - 0.4, position + 0.4], color="black",
                          linewidth=2, label=None if labelled else "target ratio")  # fmt: skip
                labelled = True
            # Right of the bar and of the target's tick, whichever ends later.
            axes.annotate(f"{number(ratio)}x (target {result.get('target', '?')})",
                          (max(ratio, target or 0.0), position), xytext=(6, -3),
                          textcoords="offset points", fontsize=8)  # fmt: skip
        axes.set_yticks(positions, labels)
        axes.invert_yaxis()
        axes.set_xscale("log")
        axes.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
        axes.set_xlabel("figure / baseline (log scale; for latencies lower is better)")
        axes.set_title("Each benchmark beside its baseline (green: target holds, red: missed)")
        axes.set_xlim(right=max([*ratios, 1.0]) * 20)  # room for the labels
        axes.legend(loc="lower right", fontsize=8)
        figure.tight_layout()
        drawn.append(_save(figure, folder / "ratios.png"))
        plt.close(figure)
    for result in results:
        series = {name: values for name, values in (result.get("series") or {}).items() if values}
        if not series:
            continue
        # A series named "x" or "x: <label>" is the x axis of the others.
        x_name = next((name for name in series if name == "x" or name.startswith("x:")), None)
        xs = series.pop(x_name) if x_name else []
        if not series:
            continue
        figure, axes = plt.subplots(figsize=(8, 4))
        for name, values in series.items():
            axes.plot(xs[: len(values)] if len(xs) >= len(values) else range(len(values)),
                      values, label=name, marker="." if len(values) < 50 else None)  # fmt: skip
        axes.set_xlabel(x_name.removeprefix("x:").strip() or "x" if x_name else "sample")
        axes.set_title(f"{result['id']}: {result.get('what', '')}", fontsize=10)
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        drawn.append(_save(figure, folder / f"{result['id']}-{result.get('mode', 'any')}.png"))
        plt.close(figure)
    return drawn


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, dpi=100)
    return path


def update_docs(results_dir: Path, docs: Path) -> None:
    """Rewrite the table (and plots) of ``docs`` from the results in ``results_dir``."""
    results = load_results(results_dir)
    plots = draw_plots(results, docs.with_suffix(""))
    page = docs.read_text() if docs.exists() else "# Benchmarks\n"
    docs.write_text(rewrite_page(page, results_block(results, plots, docs)))
    print(f"{docs}: {len(results)} results, {len(plots)} plots", flush=True)


# --- the command ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=MODES, default="quick")
    parser.add_argument("--only", nargs="+", type=benchmark_id, metavar="ID",
                        help="benchmarks to run, e.g. P1 P6 (default: all)")  # fmt: skip
    parser.add_argument("--timeout", type=float, help="seconds per script [by mode]")
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results",
                        help="each mode writes into its own subfolder")  # fmt: skip
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md",
                        help="the page whose table to rewrite")  # fmt: skip
    parser.add_argument("--no-run", action="store_true", help="only rewrite the docs")
    args = parser.parse_args(argv)

    chosen = [id_ for id_ in SCRIPTS if not args.only or id_ in args.only]
    timeout = args.timeout or TIMEOUT_SECONDS[args.mode]
    results_dir = args.results_dir.resolve()
    (results_dir / args.mode).mkdir(parents=True, exist_ok=True)
    outcomes = []
    started = time.monotonic()
    if not args.no_run:
        for id_ in chosen:
            outcomes.append(
                run_script(id_, BENCH / SCRIPTS[id_], mode=args.mode, timeout=timeout,
                           results_dir=results_dir / args.mode)
            )  # fmt: skip
    try:
        update_docs(results_dir, args.docs.resolve())
    except (OSError, ValueError) as exc:  # the runs' summary below still matters
        print(f"{args.docs}: not rewritten: {exc}", file=sys.stderr)
        outcomes.append(Outcome("docs", args.docs.name, "broken"))
    for outcome in outcomes:
        print(f"{outcome.id:<4} {outcome.script:<20} {outcome.status:<8} {outcome.seconds:6.0f} s")
    broke = [outcome.id for outcome in outcomes if outcome.broke]
    print(f"{len(outcomes)} scripts in {time.monotonic() - started:.0f} s"
          + (f"; broken: {', '.join(broke)}" if broke else ""))  # fmt: skip
    return 1 if broke else 0


if __name__ == "__main__":
    sys.exit(main())
