"""The drain report's SQL, run by a real restate-server: it reports on the ids asked about, and only those."""

from __future__ import annotations

import pytest

from devstack.operator import Operator
from services.reconcilers.rollout import Asked, DrainReport, drain_query
from tests.helpers import sql

pytestmark = pytest.mark.integration


def test_report_names_the_asked_deployments_routes_and_nothing_else(operator: Operator) -> None:
    stack = operator.stack
    ours = {row["id"] for row in sql(stack, "SELECT id FROM sys_deployment")}
    assert ours, "the operator registered its own services"
    routed = {row["name"] for row in sql(stack, "SELECT name FROM sys_service WHERE deployment_id IS NOT NULL")}

    asked = drain_query(Asked(frozenset({*ours, "dp_unknown"}), frozenset(ours)))
    assert asked is not None
    report = DrainReport.parse(sql(stack, asked))  # with the invocation counts: Restate runs all four parts
    assert report.deployments == ours
    assert set(report.latest) == routed
    assert not report.exists("dp_unknown")

    # An annotation edited into SQL is only an id that matches nothing.
    injected = "x' OR id IS NOT NULL OR id = 'y"
    hostile = drain_query(Asked(frozenset({injected}), frozenset({injected})))
    assert hostile is not None
    assert DrainReport.parse(sql(stack, hostile)) == DrainReport()
