"""The dashboard answers methods it does not serve with a JSON 405."""

import pytest
import requests

from crypto_etl.dashboard.server import DashboardServer

from dashboard_data import settings_for, with_reader


@pytest.fixture
def dashboard(db, tmp_path):
    with DashboardServer(with_reader(settings_for(db, tmp_path)), port=0) as server:
        yield server


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/api/charts/total_volume", "/nowhere"])
def test_other_methods_get_a_json_405_naming_the_allowed_ones(dashboard, method, path):
    response = requests.request(method, dashboard.url.rstrip("/") + path, timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "error": f"method {method} is not allowed; use GET, HEAD"
    }


def test_get_and_head_still_answer(dashboard):
    assert requests.get(dashboard.url, timeout=10).status_code == 200
    assert requests.head(dashboard.url, timeout=10).status_code == 200
