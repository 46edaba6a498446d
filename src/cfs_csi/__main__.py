"""Allow ``python -m cfs_csi``."""

from cfs_csi.cli import main

raise SystemExit(main())
