"""The CSI gRPC servers: one module per service, plus the server and its interceptor.

- :mod:`.identity`: plugin name, capabilities, readiness.
- :mod:`.controller`: create/delete file systems through a :class:`~cfs_csi.cloud.FileStorage`.
- :mod:`.node`: mount/unmount/stats through a :class:`~cfs_csi.mount.Mounter`.
- :mod:`.server`: the server on a unix socket (grpclib, via :mod:`.grpcserve`), signal handling.
- :mod:`.grpcserve`: grpclib handlers built from the protobuf service descriptors (grpcio only in clients).
- :mod:`.interceptor`: logging with secrets stripped, and error mapping to CSI codes.
"""
