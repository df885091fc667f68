"""The operators' documents match the metrics the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from services.common import metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"


def exported() -> dict[str, str]:
    """Every metric of the catalog: its name on the wire → its type."""
    names = {}
    for value in vars(metrics).values():
        if isinstance(value, (Counter, Gauge, Histogram)):
            suffix = "_total" if isinstance(value, Counter) else ""
            names[value._name + suffix] = type(value).__name__.lower()
    return names


def test_operations_md_lists_every_metric_with_its_type_and_nothing_else():
    listed = dict(
        re.findall(r"^\| `(jobledger_[a-z_]+)` \| (counter|gauge|histogram) \|", (DOCS / "operations.md").read_text(), re.M)
    )
    assert listed == exported()


def test_the_grafana_dashboard_reads_exported_metrics_and_every_one_of_them():
    dashboard = json.loads((DOCS / "grafana" / "jobledger.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expression in expressions for name in re.findall(r"jobledger_[a-z_]+", expression)}
    known = set(exported()) | {f"{name}_bucket" for name, kind in exported().items() if kind == "histogram"}
    assert used and used <= known, used - known
    assert {name.removesuffix("_bucket") for name in used} == set(exported()), "every metric has a panel"
