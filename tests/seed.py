"""The seed cluster's objects and names, shared by the tests (see ../shared/seed and deploy/examples)."""

from __future__ import annotations

#: StorageClass parameters of the seed's cfs-normal class.
SEED_PARAMS = {
    "pgroupid": "pgroup-lrquouvl",
    "storagetype": "SD",
    "subnetid": "subnet-rtwb42lu",
    "vers": "3",
    "vpcid": "vpc-oilua6pt",
    "zone": "ap-guangzhou-3",
}

#: The volume name csi-provisioner sent in the seed's log.
SEED_VOLUME_NAME = "pvc-a11e120e-130c-4aff-9901-17b7b91b3f1d"
