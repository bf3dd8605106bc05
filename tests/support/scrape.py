"""Reading a Prometheus text exposition in tests, with prometheus_client's own parser (so a
malformed line fails the test that scraped it)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in found, f"a series twice: {key}"
            found[key] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 for a series not there yet (counters start at 0)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(key)[label] for sample, key in samples if sample == name and label in dict(key)}


def buckets(samples: Samples, name: str, **labels: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram's series, by bound."""
    wanted = set(labels.items())
    found = [
        (float(dict(key)["le"]), count)
        for (sample, key), count in samples.items()
        if sample == f"{name}_bucket" and wanted <= set(key)
    ]
    return sorted(found)
