"""A lean asyncio client of the Kubernetes REST API: JSON in, plain dicts out, over the stdlib's http.client.

Why not the official client: importing ``kubernetes.client`` alone makes a process 43 MB (it loads every model
class of every API group, about 550 modules), and kopf with aiohttp another 15 MB; the sub-directory provisioner
runs once per shared StorageClass and the operator next to every controller, and neither needs more than a few
verbs on a few kinds. Why not httpx (tried first): its asyncio transport cost 1.15 ms of CPU per request
against this API server (1.9 ms with ten in flight), http.client 0.27 ms; and httpx, httpcore and anyio are
another 7.7 MB. So each call is a blocking http.client request on a pooled keep-alive connection in a worker
thread (:func:`asyncio.to_thread`), and each watch a thread of its own that hands the events to the event loop.

On top of the transport, only what the API needs: finding the cluster (a kubeconfig or the pod's service
account, see :func:`load_config`), errors by status, paginated lists, merge patches, and one watch request
as an async iterator of events (:mod:`.informer` turns that into list-then-watch with resync). Bodies stay
dicts: reading a list of PVs is one ``json.loads``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml

DEFAULT_KUBECONFIG = "~/.kube/config"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: How often a token file (the pod's projected service-account token, rotated by the kubelet) is read again.
TOKEN_REREAD_SECONDS = 60.0
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(RuntimeError):
    """The API server answered with an error status (``status``) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status, self.reason, self.message = status, reason, message


@dataclass(frozen=True)
class Config:
    """Where the API server is and how to authenticate to it (no secret ever appears in ``repr``)."""

    server: str
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    insecure: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = None  # PEM, from a kubeconfig's client-certificate-data
    key_data: bytes | None = None
    token: str | None = None
    token_file: str | None = None

    def __repr__(self) -> str:
        return f"Config(server={self.server!r})"


def load_config(kubeconfig: str | None = None, env: Mapping[str, str] = os.environ) -> Config:
    """The cluster named by ``kubeconfig``, else ``$KUBECONFIG``, else the pod's service account, else
    ``~/.kube/config``.

    An explicit file (flag or environment) wins over the service account so that a developer can point a pod
    or a laptop at another cluster; the service account wins over ``~/.kube/config`` because in a pod that is
    the identity RBAC was written for.

    ``$KUBECONFIG`` may list several files (``:``-separated): the first that names something wins, as kubectl
    merges them. Exec and auth-provider plugins are not supported (these components run in a pod).
    """
    path = kubeconfig or env.get("KUBECONFIG") or None
    if path is None:
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        if host and port and (SERVICE_ACCOUNT / "token").exists():
            return in_cluster_config(host, port)
        path = os.path.expanduser(DEFAULT_KUBECONFIG)
    documents = []
    for name in path.split(os.pathsep):
        if name and Path(name).exists():
            documents.append((Path(name), yaml.safe_load(Path(name).read_text()) or {}))
    if not documents:
        raise ValueError(f"no kubeconfig at {path}")
    return config_from_kubeconfig(documents)


def in_cluster_config(host: str, port: str) -> Config:
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return Config(server=server, ca_file=str(SERVICE_ACCOUNT / "ca.crt"), token_file=str(SERVICE_ACCOUNT / "token"))


def _named(documents: list[tuple[Path, dict[str, Any]]], section: str, name: str) -> tuple[Path, dict[str, Any]]:
    key = section[:-1]  # clusters -> cluster, users -> user, contexts -> context
    for base, document in documents:
        for entry in document.get(section) or []:
            if entry.get("name") == name:
                return base, entry.get(key) or {}
    raise ValueError(f"kubeconfig: no {key} named {name!r}")


def config_from_kubeconfig(documents: list[tuple[Path, dict[str, Any]]]) -> Config:
    """The current context of the (merged) kubeconfig files; relative paths are relative to their file."""
    current = next((d.get("current-context") for _, d in documents if d.get("current-context")), None)
    if not current:
        raise ValueError("kubeconfig: no current-context")
    _, context = _named(documents, "contexts", current)
    cluster_base, cluster = _named(documents, "clusters", str(context.get("cluster")))
    user_base, user = ({}, {}) if not context.get("user") else _named(documents, "users", str(context["user"]))
    if user.get("exec") or user.get("auth-provider"):
        raise ValueError("kubeconfig: exec and auth-provider credentials are not supported; use a token or "
                         "a client certificate")  # fmt: skip

    def file(base: Any, value: object) -> str | None:
        return None if not value else str((base.parent if isinstance(base, Path) else Path()) / str(value))

    def data(value: object) -> bytes | None:
        return None if not value else base64.b64decode(str(value))

    ca_data = data(cluster.get("certificate-authority-data"))
    return Config(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=file(cluster_base, cluster.get("certificate-authority")),
        ca_data=None if ca_data is None else ca_data.decode(),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=file(user_base, user.get("client-certificate")),
        key_file=file(user_base, user.get("client-key")),
        cert_data=data(user.get("client-certificate-data")),
        key_data=data(user.get("client-key-data")),
        token=user.get("token") or None,
        token_file=file(user_base, user.get("tokenFile")),
    )


def tls_context(config: Config) -> ssl.SSLContext:
    """Verification against the cluster's CA (or none, when the kubeconfig says so) and the client certificate."""
    context = ssl.create_default_context(cafile=config.ca_file, cadata=config.ca_data)
    if config.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert_file and config.key_file:
        context.load_cert_chain(config.cert_file, config.key_file)
    elif config.cert_data and config.key_data:
        # ssl loads a key only from a file: a private directory, gone again before this returns.
        with tempfile.TemporaryDirectory(prefix="cfs-csi-kube-") as private:
            cert, key = Path(private) / "cert.pem", Path(private) / "key.pem"
            for path, content in ((cert, config.cert_data), (key, config.key_data)):
                path.touch(mode=0o600)
                path.write_bytes(content)
            context.load_cert_chain(str(cert), str(key))
    return context


class _Token:
    """A fixed token, or a token file read again every :data:`TOKEN_REREAD_SECONDS` (the kubelet rotates it)."""

    def __init__(self, token: str | None, token_file: str | None) -> None:
        self._token, self._file, self._read_at = token, token_file, 0.0
        self._lock = threading.Lock()

    def header(self) -> str | None:
        if self._file:
            with self._lock:
                if time.monotonic() - self._read_at > TOKEN_REREAD_SECONDS:
                    self._token, self._read_at = Path(self._file).read_text().strip(), time.monotonic()
        return f"Bearer {self._token}" if self._token else None


def _error(status: int, reason: str, data: bytes) -> ApiError:
    try:
        answer = json.loads(data)
        return ApiError(status, str(answer.get("reason", "")), str(answer.get("message", "")))
    except (ValueError, AttributeError):
        return ApiError(status, reason, data[:200].decode(errors="replace"))


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Client:
    """Keep-alive HTTPS connections to the API server, used from worker threads (see the module's docstring).

    Async methods may be called from any number of tasks at once: each request takes an idle connection (or
    opens one) and gives it back. Only ``max_idle`` idle connections are kept.
    """

    def __init__(self, config: Config, timeout: float = 30.0, user_agent: str = "cfs-csi", max_idle: int = 8) -> None:
        self.config = config
        self.timeout = timeout
        url = urlsplit(config.server)
        self._host, self._port = url.hostname or "", url.port or 443
        self._base = url.path.rstrip("/")
        self._tls = tls_context(config)
        self._token = _Token(config.token, config.token_file)
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        self._idle: list[http.client.HTTPSConnection] = []
        self._lock = threading.Lock()
        self._max_idle = max_idle
        self._closed = False

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, **options: Any) -> Client:
        return cls(load_config(kubeconfig), **options)

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _connect(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self._host, self._port, context=self._tls, timeout=timeout)

    def _url(self, path: str, params: Mapping[str, str] | None) -> str:
        return self._base + path + ("?" + urlencode(params) if params else "")

    def _request_headers(self, content_type: str | None) -> dict[str, str]:
        headers = dict(self._headers)
        token = self._token.header()
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _call(
        self, method: str, url: str, content: bytes | None, timeout: float, content_type: str = JSON
    ) -> tuple[int, str, bytes]:
        """One request on a pooled connection (blocking; run in a worker thread)."""
        headers = self._request_headers(content_type if content is not None else None)
        for attempt in (1, 2):
            with self._lock:
                reused = self._idle.pop() if self._idle else None
            connection = reused or self._connect(timeout)
            try:
                connection.timeout = timeout
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
                connection.request(method, url, body=content, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except _STALE:
                connection.close()
                if reused is not None and attempt == 1:  # the server closed an idle connection: once more, anew
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            with self._lock:
                keep = not response.will_close and not self._closed and len(self._idle) < self._max_idle
                if keep:
                    self._idle.append(connection)
            if not keep:
                connection.close()
            return response.status, response.reason, data
        raise AssertionError("unreachable")

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
        content_type: str = JSON,
    ) -> Any:
        """The decoded JSON answer; :class:`ApiError` for a status >= 400 or a transport failure (status 0)."""
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        url = self._url(path, params)
        try:
            status, reason, data = await asyncio.to_thread(
                self._call, method, url, content, timeout or self.timeout, content_type
            )
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(0, "Unreachable", f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if status >= 400:
            raise _error(status, reason, data)
        return json.loads(data) if data else None

    async def get(self, path: str, **options: Any) -> Any:
        return await self.request("GET", path, **options)

    async def get_or_none(self, path: str, **options: Any) -> Any:
        """The object, or ``None`` when it does not exist (404)."""
        try:
            return await self.request("GET", path, **options)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, path: str, body: Any, **options: Any) -> Any:
        return await self.request("POST", path, body, **options)

    async def replace(self, path: str, body: Any, **options: Any) -> Any:
        return await self.request("PUT", path, body, **options)

    async def patch(self, path: str, body: Any, **options: Any) -> Any:
        """A JSON merge patch (RFC 7386): the keys given are set, ``None`` removes one, lists are replaced whole."""
        return await self.request("PATCH", path, body, content_type=MERGE_PATCH, **options)

    async def delete(self, path: str, body: Any = None, **options: Any) -> Any:
        return await self.request("DELETE", path, body, **options)

    async def list(self, path: str, page: int = 500, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """All items of a collection, page by page, with the resourceVersion of the (consistent) list."""
        items: list[Any] = []
        query = {**(params or {}), "limit": str(page)}
        while True:
            answer = await self.get(path, params=query)
            items += answer.get("items") or []
            metadata = answer.get("metadata") or {}
            if not metadata.get("continue"):
                return {"items": items, "metadata": {"resourceVersion": metadata.get("resourceVersion", "")}}
            query["continue"] = metadata["continue"]

    async def watch(self, path: str, resource_version: str, timeout_seconds: int) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request from ``resource_version``, until the server ends it.

        Read in a thread of its own on a connection of its own; closing the iterator (or cancelling its
        consumer) shuts that connection down, which ends the thread. ``BOOKMARK`` events are passed on; an
        ``ERROR`` event (410 Gone: the version is too old) is raised as :class:`ApiError` so that the caller lists
        again.
        """
        params = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": str(timeout_seconds),
                  "allowWatchBookmarks": "true"}  # fmt: skip
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        connection = self._connect(timeout_seconds + 30.0)
        done = object()

        def read() -> None:
            try:
                connection.request("GET", self._url(path, params), headers=self._request_headers(None))
                response = connection.getresponse()
                if response.status >= 400:
                    loop.call_soon_threadsafe(
                        queue.put_nowait, _error(response.status, response.reason, response.read())
                    )
                    return
                for line in response:
                    if line.strip():
                        loop.call_soon_threadsafe(queue.put_nowait, json.loads(line))
                loop.call_soon_threadsafe(queue.put_nowait, done)
            except Exception as exc:  # the consumer decides; a closed loop means nobody is left to tell
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                connection.close()

        reader = threading.Thread(target=read, name=f"watch {path}", daemon=True)
        reader.start()
        try:
            while True:
                item = await queue.get()
                if item is done:
                    return
                if isinstance(item, ApiError):
                    raise item
                if isinstance(item, Exception):
                    raise ApiError(0, "Unreachable", f"watch {path}: {type(item).__name__}: {item}")
                if item.get("type") == "ERROR":
                    status = item.get("object") or {}
                    raise ApiError(int(status.get("code") or 500), str(status.get("reason", "")),
                                   str(status.get("message", "")))  # fmt: skip
                yield item
        finally:
            sock = connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def format_time(moment: Any) -> str:
    """RFC 3339 with microseconds and ``Z``: the one layout every time field of the API accepts."""
    from datetime import UTC

    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return str(utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
