"""Allow ``python -m cfs_csi.emulator`` (tests start it this way, independent of the ``cfs-csi`` wiring)."""

from cfs_csi.emulator.cli import main

raise SystemExit(main())
