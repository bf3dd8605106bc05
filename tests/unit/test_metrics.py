"""jobrunner.metrics without a database: batch observation and label bounds."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from jobrunner import metrics


def test_observe_many_gives_the_exposition_that_observe_one_at_a_time_gives() -> None:
    draw = random.Random(7)
    values = [draw.uniform(0.01, 40) for _ in range(500)] + [0.0, 0.005, 0.01, 1e9]
    exposed = []
    for batched in (False, True):
        registry = CollectorRegistry()
        histogram = Histogram(
            "t_seconds", "t", ("q",), buckets=metrics.PICKUP_BUCKETS, registry=registry
        )
        child = histogram.labels("a")
        if batched:
            metrics.observe_many(child, values[:100])
            metrics.observe_many(child, values[100:])
        else:
            for value in values:
                child.observe(value)
        exposed.append(
            b"\n".join(
                line
                for line in generate_latest(registry).splitlines()
                if b"_created" not in line and b"_sum" not in line
            )
        )
        sum_line = next(x for x in generate_latest(registry).splitlines() if b"_sum{" in x)
        assert abs(float(sum_line.split()[-1]) - sum(values)) < 1e-6
    assert exposed[0] == exposed[1]
    assert b'le="0.005",q="a"} 2.0' in exposed[1]  # a value on a bound counts in that bucket


def test_queue_labels_past_the_bound_are_other_and_names_given_stay() -> None:
    bounds = metrics.LabelBounds(max_queues=3)
    bounds.configure(max_queues=3, known_queues=["served"])
    given = [bounds.queue(f"user-{n}") for n in range(10)]
    assert given == ["user-0", "user-1", "user-2"] + ["other"] * 7
    assert bounds.queue("served") == "served"  # a configured queue keeps its name
    assert bounds.queue("user-1") == "user-1"
    assert bounds.task("no such task") == "other"
    assert bounds.task("echo") == "echo"  # registered (jobrunner.builtin_tasks)
