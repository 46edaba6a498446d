"""The CVM metadata service: region, zone and instance role of the machine we run on.

Asked only when a flag does not say, with short timeouts and a bounded number of tries, so a controller
started outside a CVM fails fast with a message that says which flag to set. Plain GETs through the standard
library (proxies from the environment apply, as they did through httpx, which the controller no longer loads).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

DEFAULT_URL = "http://metadata.tencentyun.com/latest/meta-data/"


class MetadataError(RuntimeError):
    pass


@dataclass(frozen=True)
class Metadata:
    base_url: str = DEFAULT_URL
    attempts: int = 3
    timeout: float = 1.0
    backoff: float = 0.5

    def get(self, path: str) -> str:
        """The value at ``path`` (e.g. ``placement/region``); :class:`MetadataError` after all attempts."""
        url = self.base_url.rstrip("/") + "/" + path
        if not url.startswith(("http://", "https://")):
            raise MetadataError(f"metadata service URL {url!r} must be http:// or https://")
        import http.client  # here: a controller given --region and keys never loads urllib.request (3.6 MB)
        import urllib.error
        import urllib.request

        last = ""
        for attempt in range(self.attempts):
            try:
                with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310 - http(s) URL
                    status: int = response.status
                    text = bytes(response.read()).decode(errors="replace").strip()
                if status == 200 and text:
                    return text
                last = f"HTTP {status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
                last = type(exc).__name__
            if attempt + 1 < self.attempts:
                time.sleep(self.backoff * 2**attempt)
        raise MetadataError(f"metadata service {url} did not answer after {self.attempts} tries ({last})")


def region_and_zone(region: str, zone: str, metadata: Metadata) -> tuple[str, str]:
    """Flags win; the metadata service fills what they leave empty. A region is required, a zone is not."""
    try:
        region = region or metadata.get("placement/region")
    except MetadataError as exc:
        raise MetadataError(f"cannot determine the cloud region: pass --region, or run on a CVM ({exc})") from None
    if not zone:
        try:
            zone = metadata.get("placement/zone")
        except MetadataError:
            zone = ""  # StorageClasses must then name their zone
    return region, zone
