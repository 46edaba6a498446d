from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cfs_csi.client import CsiClient
from tests.conftest import Driver


@pytest.fixture
async def client(driver: Driver) -> AsyncIterator[CsiClient]:
    async with CsiClient(driver.endpoint) as csi:
        yield csi
