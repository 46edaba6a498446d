"""Shared mode, part 2: the sub-directory provisioner the operator deploys, one per shared StorageClass.

- :mod:`.paths`: directory names, path patterns, archive names and delete decisions (pure), plus the one
  containment check that keeps every write inside the PV's own directory.
- :mod:`.volumes`: the PersistentVolume for a claim (pure).
- :mod:`.handlers`: the external-provisioning protocol on kopf (claims in, PVs out; released PVs cleaned up).
- :mod:`.main`: ``cfs-csi subdir-provisioner``: configuration from the environment, leader election, the run.
"""
