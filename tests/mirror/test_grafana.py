"""The Grafana dashboards in grafana/: importable as they are, and every query asks for
what the mirror writes.

The add-on runs as a real process mirroring to a real victoria-metrics (events and
rollups); the series and labels found there are what the dashboards may name. The
VictoriaMetrics dashboard's queries run against it (``/api/v1/query_range``) and must
return data. The InfluxDB dashboards cannot run here (no InfluxDB): their measurements,
fields and tags are checked against the same engine, where ``<measurement>_<field>`` is
the series of each field and the tags are its labels (``homeiq_addon/mirror/points.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
import json
import re
import time
from typing import Any
import urllib.parse

import pytest

from tests.conftest import REPO
from tests.mirror.addon import MirroringAddon, mirroring_addon, state, vm_target
from tests.mirror.engines import VictoriaMetrics, http, running, wait_until

GRAFANA = REPO / "grafana"
DASHBOARDS = {path.name: json.loads(path.read_text()) for path in sorted(GRAFANA.glob("*.json"))}
PLUGINS = {
    "homeiq-victoriametrics.json": "prometheus",
    "homeiq-influxdb-flux.json": "influxdb",
    "homeiq-influxdb-influxql.json": "influxdb",
}
NUMERIC = "sensor.kitchen_temp"
TEXT_STATES = ("binary_sensor.door", "light.lamp")
# The field every point of a measurement has (points.py).
ALWAYS = {"homeiq": "events", "homeiq_states": "active", "homeiq_hourly": "events",
          "homeiq_hourly_states": "seconds"}  # fmt: skip
# What Grafana puts in place of its variables when it sends a query.
GRAFANA_VARIABLES = {
    "$__interval_ms": "60000",
    "$__interval": "1m",
    "$__range": "1d",
    "$domain": ".*",
    "$entity": NUMERIC,
    "$state_entity": "|".join(TEXT_STATES),
}


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, query) of every panel target and every query variable."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"{panel['title']} {target['refId']}", target.get("expr") or target["query"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield (
                f"variable {variable['name']}",
                query if isinstance(query, str) else query["query"],
            )


def test_the_dashboards_are_the_three_the_readme_names() -> None:
    assert set(DASHBOARDS) == set(PLUGINS)
    readme = (GRAFANA / "README.md").read_text()
    for name in DASHBOARDS:
        assert name in readme


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_a_dashboard_imports_with_its_datasource_as_an_input(name: str) -> None:
    dashboard = DASHBOARDS[name]
    (source,) = dashboard["__inputs"]
    assert source["type"] == "datasource"
    assert source["pluginId"] == PLUGINS[name]
    wanted = {"type": PLUGINS[name], "uid": "${" + source["name"] + "}"}
    required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    assert ("datasource", PLUGINS[name]) in required
    # Import fills the input into every panel, target and query variable that names it.
    for panel in dashboard["panels"]:
        assert panel["datasource"] == wanted, panel["title"]
        assert ("panel", panel["type"]) in required, panel["type"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == wanted, panel["title"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == wanted, variable["name"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["id"] is None  # a new dashboard on import, not an overwrite
    assert dashboard["uid"] == name.removesuffix(".json")
    # What an owner looks for (issue 14): the same six panels on every engine.
    titles = " | ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for wanted_title in ("events per minute by domain", "top entities", "value of",
                         "states of", "hourly mean", "time in each state"):  # fmt: skip
        assert wanted_title in titles, wanted_title


class Mirrored:
    """victoria-metrics holding what the add-on mirrored: events of the last hours and
    their hourly rollups."""

    def __init__(self, engine: VictoriaMetrics, addon: MirroringAddon, now: datetime) -> None:
        self.engine = engine
        self.addon = addon
        self.now = now

    def get(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        status, raw = http("GET", f"{self.engine.url}{path}?{query}")
        assert status == 200, (path, params, raw[:300])
        answer = json.loads(raw)
        assert answer["status"] == "success", answer
        return answer["data"]

    def names(self) -> set[str]:
        return set(self.get("/api/v1/label/__name__/values"))

    def labels(self, name: str) -> set[str]:
        """The label names of the series ``name``."""
        return set(self.get("/api/v1/labels", **{"match[]": name}))


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirrored]:
    # Module-scoped, so no ``socket_enabled``: tests/mirror run in the add-on's own
    # environment, where pytest-socket blocks nothing unless asked to.
    work = tmp_path_factory.mktemp("grafana")
    engine = VictoriaMetrics(work / "vm")
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=5)
    events = []
    for minute in range(0, 180, 5):
        at = start + timedelta(minutes=minute)
        value = 20 + minute / 60
        events.append(state(at, NUMERIC, f"{value}", numeric=value, area="Kitchen",
                            device_class="temperature", unit="°C",
                            attributes={"battery": 80}))  # fmt: skip
        on = minute % 10 == 0
        for entity in TEXT_STATES:
            events.append(
                state(at + timedelta(seconds=1), entity, "on" if on else "off",
                      old_state="off" if on else "on", area="Hall")
            )  # fmt: skip
    with (
        running(engine),
        mirroring_addon(
            work / "data", mirror_targets=[vm_target("vm", engine.url, send="both")]
        ) as addon,
    ):
        addon.ingest(events)
        addon.wait_mirrored("vm")
        # The hourly rollups of the hours that ended, built by a retention dry run.
        status, answer = addon.call(
            "POST", "/api/v1/retention/run", {"dry_run": True, "now": now.isoformat()}
        )
        assert status == 200, answer
        found = Mirrored(engine, addon, now)

        def rolled_up() -> bool:
            engine.flush()
            return {"homeiq_hourly_mean", "homeiq_hourly_states_seconds"} <= found.names()

        wait_until(rolled_up, 30, "hourly rollups in victoria-metrics")
        yield found


def _substituted(query: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    assert "$" not in query, query
    return query


VM_QUERIES = list(queries(DASHBOARDS["homeiq-victoriametrics.json"]))


@pytest.mark.parametrize(("where", "expr"), VM_QUERIES, ids=[w for w, _ in VM_QUERIES])
def test_each_victoriametrics_query_names_mirrored_series_and_returns_data(
    mirrored: Mirrored, where: str, expr: str
) -> None:
    names = mirrored.names()
    metrics = set(re.findall(r"\bhomeiq\w*", expr))
    assert metrics, where
    assert metrics <= names, (where, metrics - names)
    labels = set(re.findall(r"(\w+)\s*[!=]~?\s*\"", expr))
    for grouped in re.findall(r"\bby \(([^)]*)\)", expr):
        labels |= {label.strip() for label in grouped.split(",")}
    for metric in metrics:
        assert labels <= mirrored.labels(metric), (where, metric, labels)
    variable = re.fullmatch(r"label_values\((\w+), (\w+)\)", expr)
    if variable:
        metric, label = variable.groups()
        assert label in mirrored.labels(metric), where
        assert mirrored.get(f"/api/v1/label/{label}/values", **{"match[]": metric}), where
        return
    end = time.time()
    data = mirrored.get(
        "/api/v1/query_range", query=_substituted(expr), start=end - 12 * 3600, end=end, step=60
    )
    assert data["result"], (where, "no data")
    assert all(series["values"] for series in data["result"]), where


def influx_references(query: str) -> tuple[set[str], set[str], set[str]]:
    """(measurements, fields, tags) a Flux or InfluxQL query names."""
    measurements = set(re.findall(r'r\._measurement == "(\w+)"', query))
    measurements |= set(re.findall(r'FROM "(\w+)"', query))
    fields = set(re.findall(r'r\._field == "(\w+)"', query))
    fields |= set(re.findall(r'\b(?:sum|mean|min|max|last)\("(\w+)"\)', query))
    tags = {tag for tag in re.findall(r"\br\.(\w+)", query) if not tag.startswith("_")}
    for columns in re.findall(r"columns: \[([^\]]*)\]", query):
        tags |= {c.strip(' "') for c in columns.split(",") if not c.strip(' "').startswith("_")}
    tags |= set(re.findall(r'tag: "(\w+)"', query))
    tags |= set(re.findall(r'"(\w+)" =~', query))
    tags |= set(re.findall(r'WITH KEY = "(\w+)"', query))
    for grouped in re.findall(r"GROUP BY (.*?)(?: fill\(|$)", query):
        tags |= {t.strip(' "') for t in grouped.split(",") if not t.strip().startswith("time(")}
    return measurements, fields, tags


INFLUX_QUERIES = [
    (name, where, query)
    for name in ("homeiq-influxdb-flux.json", "homeiq-influxdb-influxql.json")
    for where, query in queries(DASHBOARDS[name])
]


@pytest.mark.parametrize(
    ("name", "where", "query"), INFLUX_QUERIES, ids=[f"{n} {w}" for n, w, _ in INFLUX_QUERIES]
)
def test_each_influxdb_query_names_measurements_fields_and_tags_the_mirror_writes(
    mirrored: Mirrored, name: str, where: str, query: str
) -> None:
    measurements, fields, tags = influx_references(query)
    assert len(measurements) == 1, (where, measurements)
    (measurement,) = measurements
    names = mirrored.names()
    # A SHOW TAG VALUES variable names no field: the one every point of it has.
    series = {f"{measurement}_{field}" for field in fields or {ALWAYS[measurement]}}
    assert series <= names, (where, series - names)
    for one in series:
        assert tags <= mirrored.labels(one), (where, one, tags - mirrored.labels(one))
