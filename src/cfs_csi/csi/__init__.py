"""Generated CSI v1 protocol stubs; regenerate with scripts/gen_proto.py."""
