"""Shared mode, part 1: the operator that keeps one Tcfs (and one sub-directory provisioner) per shared class.

- :mod:`.shared` and :mod:`.desired`: pure decisions (is a class shared, the Tcfs it asks for, the Deployment
  a Tcfs needs, what to change).
- :mod:`.ownership`: the one rule for what the operator may change or delete: objects that prove they are the
  Tcfs's (controller ownerReference by uid and our labels; a PV by a uid annotation).
- :mod:`.storageclass`: the storageclass controller (a PVC of a shared class -> its Tcfs).
- :mod:`.tcfs`: the tcfs controller (a Tcfs -> its file system, status and provisioner Deployment), with
  :mod:`.sharevolume` (the PV and PVC through which the provisioner pod mounts the share).
- :mod:`.handlers`: the informers (Tcfs, StorageClasses, PVCs) and when each Tcfs is reconciled.
- :mod:`.main`: ``cfs-csi operator``: configuration, CRD installation, leader election, the run.
"""
