"""A do-nothing sub-directory provisioner: the control plane's floor for :mod:`bench.shared_bench`.

It speaks the same external-provisioning protocol as ours and nothing else: it takes the Lease once, then for
every claim annotated for it creates a PV at once (no share, no ownership checks, no events), and deletes every
released PV it made. Whatever time a run takes with it is the API server's and kube-controller-manager's own
(kube-controller-manager's PV controller tags and binds claims at its client's default 20 requests/s).

Environment: ``PROVISIONER_NAME``; argument: a kubeconfig. Stdlib only (HTTP/1.1 over TLS, one thread per watch,
one connection per thread), so that its own cost stays far below the control plane's.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import ssl
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ANN = "volume.kubernetes.io/storage-provisioner"
BY = "pv.kubernetes.io/provisioned-by"


class Api:
    def __init__(self, kubeconfig: str) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        url = urlsplit(cluster["server"])
        self.host, self.port = url.hostname or "", url.port or 443
        self.tls = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if "token" in user:
            self.headers["Authorization"] = f"Bearer {user['token']}"
        else:
            self.tls.load_cert_chain(user["client-certificate"], user["client-key"])
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPSConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPSConnection(self.host, self.port, context=self.tls, timeout=30)
        return conn

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, path, None if body is None else json.dumps(body), self.headers)
                response = conn.getresponse()
                data = response.read()
                return response.status, json.loads(data) if data else None
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def watch(self, path: str) -> Any:
        """Yield (type, object) forever: list, then watch from the list's resourceVersion; again on any end."""
        while True:
            status, listed = self.call("GET", path)
            if status != 200:
                raise RuntimeError(f"list {path}: {status} {listed}")
            for item in listed["items"]:
                yield "ADDED", item
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.tls, timeout=330)
            version = listed["metadata"]["resourceVersion"]
            conn.request("GET", f"{path}?watch=1&timeoutSeconds=300&resourceVersion={version}", None, self.headers)
            response = conn.getresponse()
            try:
                for line in response:
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        break
                    yield event["type"], event["object"]
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()


def main() -> None:
    name, api = os.environ["PROVISIONER_NAME"], Api(sys.argv[1])
    namespace = os.environ.get("POD_NAMESPACE", "kube-system")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": "floor", "leaseDurationSeconds": 3600, "acquireTime": now, "renewTime": now},
    }
    status, answer = api.call("POST", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", lease)
    if status not in (201, 409):
        raise RuntimeError(f"lease: {status} {answer}")
    if status == 409:  # a previous run's: take it over
        status, current = api.call("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
        current["spec"] = lease["spec"]
        api.call("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}", current)

    def claims() -> None:
        for kind, claim in api.watch("/api/v1/persistentvolumeclaims"):
            meta, spec = claim["metadata"], claim["spec"]
            if kind == "DELETED" or spec.get("volumeName") or (meta.get("annotations") or {}).get(ANN) != name:
                continue
            pv = {"apiVersion": "v1", "kind": "PersistentVolume",
                  "metadata": {"name": f"pvc-{meta['uid']}", "annotations": {BY: name}},
                  "spec": {"capacity": {"storage": spec["resources"]["requests"]["storage"]},
                           "accessModes": spec["accessModes"], "persistentVolumeReclaimPolicy": "Delete",
                           "storageClassName": spec["storageClassName"],
                           "claimRef": {"kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                                        "name": meta["name"], "uid": meta["uid"]},
                           "csi": {"driver": "floor.example", "volumeHandle": meta["uid"]}}}  # fmt: skip
            api.call("POST", "/api/v1/persistentvolumes", pv)

    def volumes() -> None:
        for kind, pv in api.watch("/api/v1/persistentvolumes"):
            meta = pv["metadata"]
            if (
                kind != "DELETED"
                and (meta.get("annotations") or {}).get(BY) == name
                and pv.get("status", {}).get("phase") == "Released"
                and not meta.get("deletionTimestamp")
            ):
                api.call("DELETE", f"/api/v1/persistentvolumes/{meta['name']}")

    threading.Thread(target=volumes, daemon=True).start()
    claims()


if __name__ == "__main__":
    main()
