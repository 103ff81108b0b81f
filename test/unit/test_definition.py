"""The dashboard definition's SQL: which parameters a query cannot run without."""

import pytest

from crypto_etl.dashboard.definition import (
    load_definition,
    render_sql,
    required_parameters,
)

SQL = (
    "SELECT * FROM t WHERE a = {{ exchange }} [[AND b >= {{since}}]]"
    " AND c = {{asset}} [[AND d = {{exchange}}]] AND e = {{exchange}}"
)


def test_required_parameters_are_those_outside_optional_clauses_in_order():
    assert required_parameters(SQL) == ["exchange", "asset"]


def test_a_query_with_only_optional_parameters_requires_none():
    assert required_parameters("SELECT 1 [[WHERE x = {{since}}]]") == []


def test_each_chart_renders_with_its_required_values_and_fails_without_one():
    for chart in load_definition().charts:
        required = required_parameters(chart.sql)
        assert set(required) <= set(chart.parameters), chart.id
        text, bound = render_sql(chart.sql, {name: "v" for name in required})
        assert bound == {name: "v" for name in required}, chart.id
        assert "{{" not in text and "[[" not in text, chart.id
        for name in required:
            others = {n: "v" for n in required if n != name}
            with pytest.raises(ValueError, match=repr(name)):
                render_sql(chart.sql, others)
