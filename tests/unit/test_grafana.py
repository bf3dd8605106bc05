"""deploy/grafana/jobrunner.json reads only series jobrunner exports, the way they are meant."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import cast

from prometheus_client import REGISTRY

from jobrunner import metrics
from jobrunner.api.job_metrics import JobMetrics
from jobrunner.api.metrics import RequestMetrics
from jobrunner.db.pool import Pool

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "jobrunner.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> dict[str, str]:
    """Every sample name jobrunner exports -> its family's type."""
    assert metrics.ENQUEUED is not None  # the job series are in the default registry
    unread = JobMetrics(cast(Pool, None), ttl=1, max_queues=1, snapshot_warn=1)  # no read
    families = [*REGISTRY.collect(), *unread.collect()]
    families += RequestMetrics(None).histogram.collect()
    return {
        family.name + suffix: family.type
        for family in families
        if family.name.startswith("jobrunner_")
        for suffix in SUFFIXES[family.type]
    }


def test_every_panel_reads_exported_series_with_rate_and_quantiles_over_buckets() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = exported()
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 8
    for expr in exprs:
        for used in re.findall(r"jobrunner_[a-z_]+", expr):
            assert used in names, f"{used} is not exported ({expr})"
            if used.endswith(("_total", "_bucket")):  # counters only make sense as rates
                assert f"rate({used}" in expr, expr
        if "histogram_quantile" in expr:
            assert "_bucket" in expr and "by (le" in expr, expr
