"""Prometheus metrics of the driver's components, served on ``--metrics-port`` (0: off).

Instrumented code calls :mod:`cfs_csi.metrics.record` only: a handful of functions that do nothing until a
component's metrics are installed, and that import nothing but the standard library. prometheus_client itself is
loaded (:mod:`cfs_csi.metrics.client`, its core modules only) when a metrics port is set, so a node plugin
without metrics pays nothing for them and one with metrics loads no TLS, HTTP server or OpenSSL module.

Every label takes values from a fixed set (RPC method names, cloud actions, an error code's category, a mount
command, an outcome): never a volume id, a name or a path, which would grow a series per volume.
"""
