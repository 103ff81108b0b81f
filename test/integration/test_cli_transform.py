"""`crypto-etl transform` and the data-quality lines of `status`."""

from conftest import query


def test_transform_then_status_shows_the_data_quality_results(cli):
    assert cli("run", "all").code == 0
    built = cli("transform")
    assert built.code == 0, built.err
    assert built.out.startswith("transform: built 16 of 16 models; ")
    status = cli("status")
    assert "data quality (" in status.out
    assert " pass" in status.out.split("data quality (")[1]


def test_a_failing_data_test_exits_7_with_one_line_and_is_recorded(cli, db):
    assert cli("run", "exchanges").code == 0
    query(
        db,
        "UPDATE coincap.exchanges SET percent_total_volume = 150"
        " WHERE exchange_id = (SELECT min(exchange_id) FROM coincap.exchanges"
        "  WHERE percent_total_volume IS NOT NULL)",
    )
    result = cli("transform")
    assert result.code == 7
    assert result.err.splitlines()[-1].startswith("error: ")
    failed = query(db, "SELECT count(*) FROM coincap.dq_results WHERE status = 'fail'")
    assert failed[0][0] >= 1
    status = cli("status")
    assert "  fail    " in status.out


def test_status_before_any_transform_says_so(cli):
    assert "data quality: no results yet" in cli("status").out
