"""One cluster (2 Rasa servers behind nginx, private PostgreSQL and Redis, one alert and one outreach worker)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from bot.devtools.cluster import WORKERS, Cluster

    data = tmp_path_factory.mktemp("cluster-workers")
    env = {"ALERTS_DB_URL": f"sqlite:///{data / 'alerts.db'}", "OUTREACH_DB_URL": f"sqlite:///{data / 'outreach.db'}"}
    with Cluster(servers=2, workers=tuple(WORKERS), env=env) as running:
        yield running
