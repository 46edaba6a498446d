"""Shared mode, part 2: the sub-directory provisioner the operator deploys, one per shared StorageClass.

- :mod:`.paths`: directory names, path patterns, archive names and delete decisions (pure, text only).
- :mod:`.ownership`: which volume owns which directory; may a claim take a path (pure). One directory, one PV.
- :mod:`.disk`: the work on the share, from a handle of its root through :mod:`cfs_csi.safefs` (no symlink is
  ever followed), so nothing outside the PV's own directory is touched.
- :mod:`.volumes`: the PersistentVolume for a claim (pure).
- :mod:`.handlers`: the external-provisioning protocol on the informers of :mod:`cfs_csi.kube` (claims in, PVs
  out; each released PV cleaned up once).
- :mod:`.main`: ``cfs-csi subdir-provisioner`` (or ``python -m cfs_csi.provisioner``): configuration from the
  environment, leader election, the run. No kopf and no official Kubernetes client in this process.
"""
