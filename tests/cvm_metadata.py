"""A stand-in for the CVM metadata service of a machine with an instance role (part of the Tencent cloud, so
tests may replace it): it hands out the temporary keys and session token the tests choose. And what a search
of a component's output for leaked credentials looks for.

``python -m cfs_csi ... --metadata-url <url>`` then takes its credentials from the role, the way a controller
on a CVM with a CAM role does, and every request it signs carries ``X-TC-Token``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE_PATH = "/latest/meta-data/cam/security-credentials/"
#: The TC3 signature (64 hex digits) after ``Signature=``, in any spelling a log line could use.
SIGNATURE = re.compile(r"Signature\W{0,3}[0-9a-f]{16,}", re.IGNORECASE)


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    """What of ``secrets`` (name -> value) and of any request signature ``text`` shows (empty: nothing)."""
    found = [name for name, value in secrets.items() if value in text]
    found += [f"signature {m.group()!r}" for m in SIGNATURE.finditer(text)]
    return found


@contextmanager
def instance_role(role: str, secret_id: str, secret_key: str, token: str) -> Iterator[str]:
    """Serve the role on loopback; yields the ``--metadata-url`` to pass."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == ROLE_PATH:
                body = role.encode()
            elif self.path == ROLE_PATH + role:
                body = json.dumps({
                    "TmpSecretId": secret_id, "TmpSecretKey": secret_key, "Token": token,
                    "ExpiredTime": int(time.time()) + 3600, "Expiration": "", "Code": "Success",
                }).encode()  # fmt: skip
            else:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the output the tests search is the components', not this one's."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/latest/meta-data/"
    finally:
        server.shutdown()
        server.server_close()
