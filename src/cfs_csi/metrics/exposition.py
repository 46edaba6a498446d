"""Prometheus' text exposition format (version 0.0.4) of a registry.

prometheus_client's own writer lives in a module that loads its HTTP servers and TLS (see
:mod:`cfs_csi.metrics.client`), so the text is written here, from what the registry collects: ``# HELP`` and
``# TYPE`` lines per family (a counter's family is named with its ``_total``, as the samples are), then one
line per sample. :func:`render` is pure; ``promtool check metrics`` validates its output in the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: prometheus_client's family types as the text format names them (the others are written as they are).
_TYPES = {"info": "gauge", "stateset": "gauge", "unknown": "untyped", "gaugehistogram": "histogram"}


class Collects(Protocol):
    def collect(self) -> Iterable[Metric]: ...


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def family_name(metric: Metric) -> str:
    """The name the ``# HELP``/``# TYPE`` lines give a family: a counter's samples end in ``_total``, an info's in
    ``_info``, and the family line must name them so."""
    if metric.type == "counter":
        return f"{metric.name}_total"
    if metric.type == "info":
        return f"{metric.name}_info"
    return metric.name


def render(families: Iterable[Metric], float_text: Callable[[float], str]) -> bytes:
    """The text format of ``families`` (pure); ``float_text`` writes a value (``+Inf``, ``1.0``)."""
    lines: list[str] = []
    for metric in families:
        name = family_name(metric)
        lines.append(f"# HELP {name} {escape_help(metric.documentation)}")
        lines.append(f"# TYPE {name} {_TYPES.get(metric.type, metric.type)}")
        for sample in metric.samples:
            lines.append(f"{sample.name}{_labels(sample.labels)} {float_text(sample.value)}")
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{escape_label(value)}"' for key, value in sorted(labels.items())) + "}"
