"""Reading a ``/metrics`` answer the way Prometheus does, with prometheus_client's parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


class Scrape:
    """One scrape: its families, and each sample by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: list[Sample] = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float | None:
        """The value of sample ``name`` with exactly ``labels``, or None if absent."""
        for sample in self.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
        return None

    def get(self, name: str, **labels: str) -> float:
        """The value of sample ``name`` with exactly ``labels`` (0 when absent: a labelled
        counter has no sample until its first increment)."""
        found = self.value(name, **labels)
        return 0.0 if found is None else found

    def label_values(self, family: str, label: str) -> set[str]:
        """Every value ``label`` takes in ``family``'s samples."""
        return {s.labels[label] for s in self.families[family].samples if label in s.labels}

    def sample_names(self) -> set[str]:
        """Every series name a query may use: each family's samples' names (``_total``,
        ``_bucket``, ``_sum``, ``_count``...), also for families without a sample yet."""
        names = {s.name for s in self.samples}
        for family in self.families.values():
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("_sum", "_count", "_created"),
            }.get(family.type, ("",))
            names.update(family.name + suffix for suffix in suffixes)
        return names
