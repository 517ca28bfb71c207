"""One page of figures: benchmarks/RESULTS.md from benchmarks/results/*.json.

Run: `scripts/bench page` (scripts/bench also runs it after the benchmarks), or
`python benchmarks/results_page.py`. It reads the JSON files only, whatever each
benchmark writes: every number in a file is a figure (nested ones by their dotted path),
listed with its goal when the file names one, and a goal not met is marked plainly.

Goals come from a file's ``goals`` object, as a number (the direction read from the
figure's name: rates and ratios are "at least", times, sizes and latencies "at most"),
as text such as ``"<= 4"``, ``">= 0.8"``, or ``"homeiq <= recorder"`` (two parts of an
object figure), and from ``goal_<words>`` keys, matched to the one figure whose name
holds those words.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
import operator
from pathlib import Path
import re
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = REPO / "benchmarks" / "results"
PAGE: Final = REPO / "benchmarks" / "RESULTS.md"
# The command of a file that does not record its own.
COMMANDS: Final = {
    "store": "scripts/bench store",
    "capture": "scripts/bench capture",
    "retention": "scripts/bench retention",
    "influx": "scripts/bench influx",
    "ingest_compare": ".venv/bin/python benchmarks/bench_ingest_compare.py",
}
META: Final = {"machine", "date", "command", "commit", "goals"}
_OPS: Final = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
# A bare number as a goal: "at least" for rates and ratios, "at most" for times,
# latencies, sizes, CPU per event; the first of these words in the name decides
# (lag_s_at_5k_events_per_s is a lag), "at most" when none is there.
_DIRECTION: Final = re.compile(
    r"(?:^|_)(?:(?P<higher>per_s|ratio)|(?P<lower>lag|latency|seconds|ms|s|mb|gb|bytes|us))(?=_|$)"
)


def figures(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of every number, flag and short text; lists of numbers whole."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if not prefix and (key in META or key.startswith("goal_")):
            continue
        if isinstance(value, dict):
            yield from figures(value, name + ".")
        elif isinstance(value, list):
            if value and all(isinstance(v, int | float) for v in value):
                yield name, value
        elif isinstance(value, bool | int | float) or (isinstance(value, str) and value):
            yield name, value


def lookup(data: dict[str, Any], name: str) -> Any:
    for part in name.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def goals_of(data: dict[str, Any]) -> dict[str, Any]:
    """Figure name -> goal as written, from ``goals`` and from ``goal_*`` keys. A
    ``goal_<words>`` key sets the goal of the figure named ``<words>``, or else of every
    top-level figure whose name has all those words (``goal_bytes_per_rollup``: the
    hourly and the daily figure)."""
    goals = dict(data.get("goals") or {})
    for key, goal in data.items():
        if not key.startswith("goal_"):
            continue
        named = key.removeprefix("goal_")
        words = named.split("_")
        matches = [named] if named in data else [
            n for n in data
            if not n.startswith("goal_") and n not in META
            and all(w in n.split("_") for w in words)
        ]  # fmt: skip
        for figure in matches or [key]:
            goals[figure] = goal
    return goals


def judge(name: str, value: Any, goal: Any) -> tuple[str, bool | None]:
    """The goal as shown, and whether ``value`` meets it (None: cannot tell)."""
    if isinstance(goal, bool) or not isinstance(goal, int | float | str):
        return str(goal), None
    if isinstance(goal, int | float):
        first = _DIRECTION.search(name)
        op = ">=" if first is not None and first.group("higher") else "<="
        goal = f"{op} {goal}"
    match = re.fullmatch(r"\s*(?:(\w+)\s*)?(<=|>=|<|>)\s*([\w.+-]+)\s*", goal)
    if match is None:
        return goal, None
    left, op, right = match.groups()
    try:
        threshold: Any = float(right)
    except ValueError:
        threshold = None
    if left is not None or threshold is None:
        # "homeiq <= recorder": two parts of an object figure.
        if not isinstance(value, dict) or left not in value or right not in value:
            return goal, None
        mine, theirs = value[left], value[right]
    else:
        mine, theirs = value, threshold
    # A figure measured over rounds is judged by its median ({"median", "min", "max"}).
    mine, theirs = _median(mine), _median(theirs)
    if isinstance(mine, dict) and left is None:
        # One figure per case (per home, per size): the goal holds for each.
        verdicts = [judge(name, part, goal)[1] for part in mine.values()]
        return goal, None if None in verdicts or not verdicts else all(verdicts)
    if not isinstance(mine, int | float) or not isinstance(theirs, int | float):
        return goal, None
    return goal, bool(_OPS[op](mine, theirs))


def _median(value: Any) -> Any:
    return value["median"] if isinstance(value, dict) and "median" in value else value


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {shown(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def machine(data: dict[str, Any]) -> str:
    info = data.get("machine")
    if not isinstance(info, dict):
        return "not recorded"
    parts = [f"{k} {shown(v)}" for k, v in info.items() if not k.startswith("load_avg")]
    loads = [
        f"{k.removeprefix('load_avg_')} {shown([round(x, 2) for x in v])}"
        for k, v in info.items()
        if k.startswith("load_avg") and isinstance(v, list)
    ]
    if isinstance(data.get("load_average"), dict):
        loads += [f"{k} {shown(v)}" for k, v in data["load_average"].items()]
    return "; ".join(parts) + (f"; load average {', '.join(loads)}" if loads else "")


def section(name: str, data: dict[str, Any]) -> list[str]:
    goals = goals_of(data)
    command = data.get("command") or COMMANDS.get(name, f"scripts/bench {name}")
    lines = [
        f"## {name} (`results/{name}.json`)",
        "",
        f"- date: {data.get('date', 'not recorded')}"
        + (f", commit {data['commit']}" if data.get("commit") else ""),
        f"- command: `{command}`",
        f"- machine: {machine(data)}",
        "",
        "| figure | value | goal | met |",
        "|---|---|---|---|",
    ]
    rows = []
    for figure, goal in goals.items():
        value = lookup(data, figure)
        text, met = judge(figure, value, goal)
        verdict = {True: "met", False: "**NOT MET**", None: "—"}[met]
        rows.append(f"| `{figure}` | {shown(value) if value is not None else '—'} "
                    f"| {shown(text)} | {verdict} |")  # fmt: skip
    for figure, value in figures(data):
        if figure not in goals and not any(figure.startswith(g + ".") for g in goals):
            rows.append(f"| `{figure}` | {shown(value)} | | |")
    return [*lines, *rows, ""]


def page() -> str:
    sections: list[str] = []
    met: list[str] = []
    missed: list[str] = []
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        sections += section(path.stem, data)
        for figure, goal in goals_of(data).items():
            verdict = judge(figure, lookup(data, figure), goal)[1]
            if verdict is not None:
                (met if verdict else missed).append(f"`{path.stem}: {figure}`")
    return "\n".join(
        [
            "# Benchmark figures",
            "",
            "Generated by `scripts/bench page` (`benchmarks/results_page.py`) from",
            "`benchmarks/results/*.json`; `scripts/bench` rewrites it after each run. Do not",
            "edit: what the figures mean is in `benchmarks/README.md`. Per benchmark, its",
            "goals first, then every other figure; a goal not met says **NOT MET**.",
            "",
            f"Goals met: {len(met)}. **Not met: {len(missed)}**"
            + (f" ({', '.join(missed)})." if missed else "."),
            "",
            *sections,
        ]
    )


def main() -> None:
    PAGE.write_text(page())
    print(f"written {PAGE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
