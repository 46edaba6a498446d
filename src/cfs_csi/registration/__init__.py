"""The kubelet plugin-registration protocol: generated stubs (scripts/gen_proto.py) and the node plugin's server."""
