"""Allow ``python -m cfs_csi.provisioner`` (the sub-directory provisioner alone, without the other commands)."""

from cfs_csi.provisioner.main import main

raise SystemExit(main())
