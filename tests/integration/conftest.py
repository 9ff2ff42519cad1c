"""Fixtures of the integration tier: real servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.s3 import MotoS3, S3Server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server, started once per session, with a bucket and credentials it takes."""
    with MotoS3(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server
