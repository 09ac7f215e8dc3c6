"""One cluster (2 Rasa servers behind nginx, private PostgreSQL and Redis) for the cluster tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cluster():
    from bot.devtools.cluster import Cluster

    with Cluster(servers=2) as running:
        yield running
