"""prometheus_client's core (metric types and registry), loaded without the package's ``__init__``.

``import prometheus_client`` (or any of its modules, which runs the package's ``__init__`` first) loads its HTTP
servers, push gateway client and WSGI/ASGI glue: ``ssl``, OpenSSL's ``_hashlib``, ``http.server``,
``urllib.request``, ``wsgiref``, ``gzip``, threads. The node plugin refuses ``ssl`` and ``_hashlib``
(:data:`cfs_csi.cli.NODE_REFUSED_MODULES`), so that import would fail there, and it would cost any component
memory for code it never runs: our exposition is :mod:`cfs_csi.metrics.exposition` on the components' own
asyncio HTTP server.

So the core modules (``metrics``, ``registry``, ``values``, ``samples``, ``utils``, ``validation``, ...) are
loaded from prometheus_client's directory as sub-modules of a private package, :data:`ALIAS`, whose
``__init__`` is never run. Their imports are relative, so they find each other there. The real
``prometheus_client`` package stays untouched: a process that imports it too (a test parsing our exposition)
gets its own, separate copy.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: The private package the core modules are loaded under.
ALIAS = "cfs_csi.metrics._prometheus_core"


@dataclass(frozen=True)
class Core:
    """What the components use of prometheus_client."""

    counter: type[Counter]
    gauge: type[Gauge]
    histogram: type[Histogram]
    registry: type[CollectorRegistry]
    #: A sample value as the text format writes it (``+Inf``, ``NaN``, ``1.0``): ``floatToGoString``.
    float_text: Callable[[float], str]


def _package() -> ModuleType:
    loaded = sys.modules.get(ALIAS)
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("prometheus_client")  # finds the directory; runs nothing of it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("prometheus_client is not installed")
    package_spec = importlib.machinery.ModuleSpec(ALIAS, None, is_package=True)
    package_spec.submodule_search_locations = list(spec.submodule_search_locations)
    package = importlib.util.module_from_spec(package_spec)
    sys.modules[ALIAS] = package
    return package


def core() -> Core:
    """prometheus_client's metric types, registry and value formatting (loaded once). ``_created`` series are
    turned off: they would double the series of every counter and histogram for a value not used here."""
    _package()
    metrics = importlib.import_module(f"{ALIAS}.metrics")
    registry = importlib.import_module(f"{ALIAS}.registry")
    utils = importlib.import_module(f"{ALIAS}.utils")
    metrics.disable_created_metrics()
    return Core(metrics.Counter, metrics.Gauge, metrics.Histogram, registry.CollectorRegistry, utils.floatToGoString)
