"""Region and zone from flags or from a (real, local) HTTP metadata service, with bounded retries."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from cfs_csi.cloud.tencent.metadata import Metadata, MetadataError, region_and_zone


class _Handler(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, str]] = {
        "/latest/meta-data/placement/region": "ap-guangzhou",
        "/latest/meta-data/placement/zone": "ap-guangzhou-3",
    }
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = self.answers.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write((body or "").encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metadata_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/latest/meta-data/"
    server.shutdown()


def test_flags_win(metadata_url: str) -> None:
    assert region_and_zone("ap-shanghai", "ap-shanghai-2", Metadata(metadata_url)) == ("ap-shanghai", "ap-shanghai-2")


def test_metadata_fills_the_gaps(metadata_url: str) -> None:
    assert region_and_zone("", "", Metadata(metadata_url)) == ("ap-guangzhou", "ap-guangzhou-3")


def test_missing_metadata_is_fatal_for_the_region_only() -> None:
    dead = Metadata("http://127.0.0.1:9/", attempts=2, timeout=0.2, backoff=0.01)
    with pytest.raises(MetadataError, match="--region"):
        region_and_zone("", "", dead)
    assert region_and_zone("ap-beijing", "", dead) == ("ap-beijing", "")


def test_attempts_are_bounded(metadata_url: str) -> None:
    _Handler.hits = 0
    with pytest.raises(MetadataError, match="3 tries"):
        Metadata(metadata_url, attempts=3, backoff=0.01).get("placement/nothing")
    assert _Handler.hits == 3
