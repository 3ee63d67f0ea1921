"""The chart's observability: the Grafana dashboard (dashboards/restate-operator.json, a ConfigMap with
monitoring.dashboards.enabled) and the PrometheusRule (monitoring.prometheusRule.enabled).

- the dashboard is valid JSON of a Grafana dashboard, and shows what the issue asks for;
- every expression, of the dashboard and of the rules, names only series the operator exports
  (services/metrics.py's registry, as the chart's ServiceMonitor stores them) and their labels;
- promtool (`make tools`) parses every expression, lints the rules, and its rule unit tests
  (prometheusrule_test.yaml) make each alert fire on recorded series, and not fire on others;
- the values reach the objects, a misspelt value fails, and (integration) the apiserver accepts both
  objects with a PrometheusRule CRD installed, and rejects a malformed rule.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from devstack import tools
from devstack.stack import Stack
from services import metrics
from tests.chart import promql
from tests.chart.helm import CHART, NS, PROMETHEUSRULE_CRD, RELEASE, Helm, Obj, as_list, find, kinds_and_names

HERE = Path(__file__).resolve().parent
DASHBOARD = CHART / "dashboards" / "restate-operator.json"
RULE_TESTS = HERE / "prometheusrule_test.yaml"
ENABLED: Obj = {"monitoring": {"dashboards": {"enabled": True}, "prometheusRule": {"enabled": True}}}
ALERTS = {
    "RestateOperatorResourceDegraded",
    "RestateOperatorDrainStuck",
    "RestateOperatorWatcherDown",
    "RestateOperatorWatcherNotForwarding",
    "RestateOperatorWatcherBacklog",
    "RestateOperatorServicesDown",
}
# The labels Prometheus Operator gives every series of a ServiceMonitor's targets. A metric's own
# label of the same name is stored as exported_<name> (honorLabels is false).
TARGET_LABELS = frozenset({"job", "instance", "namespace", "service", "pod", "container", "endpoint"})
# Grafana's variables, replaced by what they stand for before an expression is checked
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": ".*"}


# --- what the operator exports ------------------------------------------------------------------


def exported_series() -> dict[str, frozenset[str]]:
    """Every series name of the operator's /metrics (services and watcher) -> its label names as stored.

    From prometheus_client's registry after `metrics.initialise()`: counters gain `_total`, histograms
    are `_bucket` (with `le`), `_sum` and `_count`. Labels of metrics without children yet come from
    their definition in services/metrics.py.
    """
    metrics.initialise()
    defined = {w._name: set(w._labelnames) for w in vars(metrics).values() if isinstance(w, MetricWrapperBase)}
    series: dict[str, frozenset[str]] = {}
    for family in REGISTRY.collect():
        own = defined.get(family.name) or {label for s in family.samples for label in s.labels}
        stored = (own - TARGET_LABELS) | {f"exported_{label}" for label in own & TARGET_LABELS} | TARGET_LABELS
        names = {
            "counter": [f"{family.name}_total"],
            "histogram": [f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"],
            "summary": [family.name, f"{family.name}_sum", f"{family.name}_count"],
        }.get(family.type, [family.name])
        for name in names:
            series[name] = frozenset(stored | ({"le"} if name.endswith("_bucket") else set()))
    series["up"] = TARGET_LABELS  # Prometheus' own, one per scraped target
    return series


def test_the_inventory_knows_the_operators_metrics() -> None:
    """The inventory itself: counters with _total, histogram series, labels of metrics without children."""
    series = exported_series()
    assert series["controller_runtime_reconcile_total"] >= {"controller", "result", "job", "namespace"}
    assert "controller_runtime_reconcile_total_total" not in series
    assert {"le", "controller"} <= series["controller_runtime_reconcile_time_seconds_bucket"]
    assert "le" not in series["controller_runtime_reconcile_time_seconds_count"]
    assert series["restate_operator_reconciliation_errors_total"] >= {"kind", "error", "exported_instance"}
    resource = {"resource_namespace", "resource_name"}
    assert series["restate_operator_deployment_versions"] >= {*resource, "phase", "namespace"}
    assert series["restate_operator_resource_condition"] >= {*resource, "kind", "condition"}
    assert "restate_watcher_pending_keys" in series
    assert "restate_operator_deployment_versions_total" not in series


def problems(expr: str, series: dict[str, frozenset[str]]) -> list[str]:
    """What in `expr` the operator does not export: unknown metrics, unknown labels."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    refs = promql.references(expr)
    unknown = refs.metrics - set(series)
    if unknown:  # their labels cannot be checked
        return [f"{m}: not exported" for m in sorted(unknown)]
    found = [
        f"{selector.metric}{{{label}}}: no such label"
        for selector in refs.selectors
        for label in sorted(set(selector.labels) - series[selector.metric])
    ]
    known = set().union(*(series[m] for m in refs.metrics))
    found += [f"by/on ({label}): no metric of the expression has it" for label in sorted(refs.grouping - known)]
    return found


@pytest.mark.parametrize(
    ("expr", "metrics_", "grouping"),
    [
        ('sum by (a, b) (rate(x_total{c=~"$v"}[5m]))', {"x_total"}, {"a", "b"}),
        ("histogram_quantile(0.95, sum by (le) (rate(h_bucket[1h30m])))", {"h_bucket"}, {"le"}),
        ("a and on (x) b > 0 unless ignoring (y) c offset 5m", {"a", "b", "c"}, {"x", "y"}),
        ('absent(up{job="j"} == 1) or vector(0)', {"up"}, set()),
        ("max without (pod) (g) / on (n) group_left (m) k", {"g", "k"}, {"pod", "n", "m"}),
        ("count({__name__=\"n\", q='by (x)'}) BY (z)", {"n"}, {"z"}),
        ("rate(x_total[5m:30s] @ start())", {"x_total"}, set()),
    ],
)
def test_promql_references_name_metrics_and_labels_only(expr: str, metrics_: set[str], grouping: set[str]) -> None:
    refs = promql.references(expr.replace("$v", "v"))
    assert (refs.metrics, refs.grouping) == (metrics_, grouping)


def test_promql_references_refuse_what_they_cannot_read() -> None:
    with pytest.raises(ValueError, match="cannot tokenize"):
        promql.references("rate(x_total[$__rate_interval])")
    with pytest.raises(ValueError, match="without a metric name"):
        promql.references('{job="j"}')


# --- the dashboard ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> Obj:
    loaded: Obj = json.loads(DASHBOARD.read_text())
    return loaded


def panels_of(dashboard: Obj) -> list[Obj]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def dashboard_expressions(dashboard: Obj) -> list[tuple[str, str]]:
    """(panel title, expression) of every query of the dashboard, variables included."""
    found = [(p["title"], t["expr"]) for p in panels_of(dashboard) for t in p["targets"]]
    found += [
        (f"variable {v['name']}", re.sub(r"^label_values\((.*), \w+\)$", r"\1", v["definition"]))
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    ]
    return found


def test_dashboard_is_a_grafana_dashboard(dashboard: Obj) -> None:
    assert (dashboard["uid"], dashboard["title"]) == ("restate-operator", "Restate operator")
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["allValue"] == ".*"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] < grid["x"] + grid["w"] <= 24, panel["title"]
        xs, ys = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        cells = {(x, y) for x in xs for y in ys}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
    for panel in panels_of(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel.get("description"), f"{panel['title']} has no description"
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == panel["datasource"], panel["title"]
            assert t["expr"].strip(), panel["title"]


def test_dashboard_shows_reconciles_rollouts_admin_calls_and_the_watcher(dashboard: Obj) -> None:
    used: dict[str, set[str]] = {}
    for title, expr in dashboard_expressions(dashboard):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        used.setdefault(title, set()).update(promql.references(expr).metrics)

    def shown(metric: str, *words: str) -> bool:
        return any(metric in m and all(w in t.lower() for w in words) for t, m in used.items())

    assert shown("controller_runtime_reconcile_total", "controller", "result")
    assert shown("controller_runtime_reconcile_errors_total", "errors")
    assert shown("restate_operator_reconciliation_errors_total", "failing resources")
    assert shown("controller_runtime_reconcile_time_seconds_bucket", "p50", "p95")
    assert shown("restate_operator_deployment_versions", "phase")
    assert shown("restate_operator_deployment_draining_invocations", "draining invocations")
    assert shown("restate_operator_admin_calls_total", "admin", "calls", "outcome")
    assert shown("restate_operator_admin_calls_total", "admin", "errors")
    assert shown("restate_watcher_forwarded_total", "forwards")
    assert shown("restate_watcher_forward_errors_total", "forward errors")
    assert shown("restate_watcher_forward_lag_seconds_bucket", "lag", "p95")
    quantiles = [t["expr"] for p in panels_of(dashboard) for t in p["targets"] if "histogram_quantile" in t["expr"]]
    assert {q.split(",")[0] for q in quantiles} == {"histogram_quantile(0.5", "histogram_quantile(0.95"}


def test_dashboard_expressions_name_only_exported_series(dashboard: Obj) -> None:
    series = exported_series()
    found = {f"{title}: {p}" for title, expr in dashboard_expressions(dashboard) for p in problems(expr, series)}
    assert not found, "\n".join(sorted(found))


def test_dashboard_panels_follow_the_namespace_variable(dashboard: Obj) -> None:
    for panel in panels_of(dashboard):
        for target in panel["targets"]:
            for selector in promql.references(target["expr"].replace("$__rate_interval", "5m")).selectors:
                assert selector.labels.get("namespace") == "$namespace", f"{panel['title']}: {selector.metric}"


def test_dashboard_expressions_parse_with_promtool(dashboard: Obj, tmp_path: Path) -> None:
    """Each query as a recording rule: promtool parses it with Prometheus' own PromQL parser."""
    rules = []
    for i, (_, expr) in enumerate(dashboard_expressions(dashboard)):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_dashboard_configmap_carries_the_file_for_the_grafana_sidecar(helm: Helm, dashboard: Obj) -> None:
    default = kinds_and_names(helm.render())
    assert ("ConfigMap", "restate-operator-dashboard") not in default
    assert not [kind for kind, _ in default if kind == "PrometheusRule"]
    objects = helm.render({"monitoring": {"dashboards": {"enabled": True}}})
    configmap = find(objects, "ConfigMap", "restate-operator-dashboard")
    assert configmap["metadata"]["namespace"] == NS
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["labels"]["app.kubernetes.io/component"] == "monitoring"
    assert "annotations" not in configmap["metadata"]
    assert list(configmap["data"]) == ["restate-operator.json"]
    assert json.loads(configmap["data"]["restate-operator.json"]) == dashboard
    assert not [o for o in objects if o["kind"] == "PrometheusRule"]

    custom = helm.render(
        {
            "fullnameOverride": "rop",
            "monitoring": {
                "dashboards": {
                    "enabled": True,
                    "namespace": "monitoring",
                    "labels": {"grafana_dashboard": "restate", "team": "platform"},
                    "annotations": {"grafana_folder": "Restate"},
                }
            },
        }
    )
    configmap = find(custom, "ConfigMap", "rop-dashboard")
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "restate"
    assert configmap["metadata"]["labels"]["team"] == "platform"
    assert configmap["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Restate"}


# --- the PrometheusRule -------------------------------------------------------------------------


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools.promtool_bin()), *args], capture_output=True, text=True, check=False, timeout=120, cwd=cwd
    )


@pytest.fixture(scope="module")
def rule(helm: Helm) -> Obj:
    return find(helm.render(ENABLED), "PrometheusRule", "restate-operator")


def alerts_of(rule: Obj) -> dict[str, Obj]:
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def test_rule_holds_the_alerts_with_their_defaults(rule: Obj) -> None:
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == NS
    assert rule["metadata"]["labels"]["app.kubernetes.io/component"] == "monitoring"
    alerts = alerts_of(rule)
    assert set(alerts) == ALERTS
    defaults = {
        "RestateOperatorResourceDegraded": ("10m", "warning"),
        "RestateOperatorDrainStuck": ("30m", "warning"),
        "RestateOperatorWatcherDown": ("5m", "critical"),
        "RestateOperatorWatcherNotForwarding": ("5m", "critical"),
        "RestateOperatorWatcherBacklog": ("15m", "warning"),
        "RestateOperatorServicesDown": ("5m", "critical"),
    }
    for name, alert in alerts.items():
        assert (alert["for"], alert["labels"]) == (defaults[name][0], {"severity": defaults[name][1]}), name
        assert set(alert["annotations"]) == {"summary", "description"}, name
        text = alert["annotations"]["summary"] + alert["annotations"]["description"]
        assert "{{ ." not in text, f"{name}: a Helm template left over"
        assert "<no value>" not in text, f"{name}: a value missing"
        # every series of this release's processes only, by the ServiceMonitor's target labels
        for selector in promql.references(alert["expr"]).selectors:
            assert selector.labels["namespace"] == NS, name
            assert selector.labels["job"] in {"restate-operator-metrics", "restate-operator-watcher-metrics"}, name
    assert 'condition="Degraded"' in alerts["RestateOperatorResourceDegraded"]["expr"]
    assert alerts["RestateOperatorWatcherBacklog"]["expr"].endswith("> 20")


def test_rule_follows_its_values(helm: Helm) -> None:
    values: Obj = {
        "fullnameOverride": "rop",
        "monitoring": {
            "prometheusRule": {
                "enabled": True,
                "labels": {"release": "kube-prometheus"},
                "alertLabels": {"team": "platform", "severity": "ignored"},
                "resourceDegraded": {"for": "20m", "severity": "critical"},
                "drainStuck": {"for": "2h"},
                "watcherBacklog": {"pendingKeys": 100, "for": "30m"},
                "servicesDown": {"enabled": False},
            }
        },
    }
    rule = find(helm.render(values), "PrometheusRule", "rop")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus"
    alerts = alerts_of(rule)
    assert set(alerts) == ALERTS - {"RestateOperatorServicesDown"}
    degraded = alerts["RestateOperatorResourceDegraded"]
    assert (degraded["for"], degraded["labels"]) == ("20m", {"severity": "critical", "team": "platform"})
    assert "Degraded for 20m" in degraded["annotations"]["description"]
    assert alerts["RestateOperatorDrainStuck"]["for"] == "2h"
    assert "more than 2h" in alerts["RestateOperatorDrainStuck"]["annotations"]["summary"]
    backlog = alerts["RestateOperatorWatcherBacklog"]
    assert (backlog["for"], backlog["expr"].endswith("> 100")) == ("30m", True)
    assert 'job="rop-watcher-metrics"' in alerts["RestateOperatorWatcherDown"]["expr"]
    assert 'job="rop-metrics"' in degraded["expr"]


def test_rule_expressions_name_only_exported_series(rule: Obj) -> None:
    series = exported_series()
    found = {f"{name}: {p}" for name, alert in alerts_of(rule).items() for p in problems(alert["expr"], series)}
    assert not found, "\n".join(sorted(found))


def write_rules(rule: Obj, directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    return path


def test_rules_pass_promtool_check(rule: Obj, tmp_path: Path) -> None:
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", str(write_rules(rule, tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_alerts_fire_on_recorded_series_and_only_then(rule: Obj, tmp_path: Path) -> None:
    """promtool's rule unit tests: each alert fires (labels and annotations as expected), and where it must not, not."""
    write_rules(rule, tmp_path)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = {e["alertname"] for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for e in t["alert_rule_test"]}
    assert tested == ALERTS
    result = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# --- the values schema ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"monitoring": {"dashboard": {"enabled": True}}}, "dashboard", id="typo-dashboards"),
        pytest.param({"monitoring": {"prometheusRules": {}}}, "prometheusRules", id="typo-prometheusRule"),
        pytest.param({"monitoring": {"prometheusRule": {"drainStuck": {"forr": "1h"}}}}, "forr", id="typo-in-an-alert"),
        pytest.param(
            {"monitoring": {"prometheusRule": {"resourceDegraded": {"for": "10 minutes"}}}},
            "/monitoring/prometheusRule/resourceDegraded/for",
            id="not-a-duration",
        ),
        pytest.param(
            {"monitoring": {"prometheusRule": {"watcherBacklog": {"pendingKeys": -1}}}},
            "/monitoring/prometheusRule/watcherBacklog/pendingKeys",
            id="negative-threshold",
        ),
        pytest.param(
            {"monitoring": {"prometheusRule": {"watcherDown": {"severity": ""}}}},
            "/monitoring/prometheusRule/watcherDown/severity",
            id="empty-severity",
        ),
        pytest.param(
            {"monitoring": {"dashboards": {"namespace": "Monitoring"}}},
            "/monitoring/dashboards/namespace",
            id="bad-namespace",
        ),
        pytest.param(
            {"monitoring": {"prometheusRule": {"alertLabels": {"team": 1}}}},
            "/monitoring/prometheusRule/alertLabels/team",
            id="non-string-label",
        ),
    ],
)
def test_mistaken_monitoring_values_fail_naming_the_value(helm: Helm, values: Obj, message: str) -> None:
    result = helm.template(values)
    assert result.returncode != 0, f"rendered despite {values}"
    assert message in result.stderr, result.stderr


# --- against the real apiserver -------------------------------------------------------------------


def install_prometheusrule_crd(stack: Stack) -> None:
    kube = stack.control_plane
    kube.kubectl("apply", "--server-side", "-f", str(PROMETHEUSRULE_CRD))
    kube.kubectl("wait", "--for=condition=Established", "crd/prometheusrules.monitoring.coreos.com")


@pytest.mark.integration
def test_apiserver_accepts_the_dashboard_and_the_rule_and_rejects_a_malformed_rule(
    stack: Stack, helm: Helm, release_ns: str
) -> None:
    install_prometheusrule_crd(stack)
    kube = stack.control_plane
    objects = [
        o for o in helm.render(ENABLED) if o["metadata"]["labels"]["app.kubernetes.io/component"] == "monitoring"
    ]
    assert {o["kind"] for o in objects} == {"ConfigMap", "PrometheusRule"}
    result = kube.kubectl_result(
        "apply", "--dry-run=server", "-o", "name", "-f", "-", input=as_list(objects, release_ns)
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == [
        "configmap/restate-operator-dashboard",
        "prometheusrule.monitoring.coreos.com/restate-operator",
    ]

    # the CRD's schema really checks the rules: a misspelt field and a malformed duration are refused
    def broken(change: Callable[[Obj], None]) -> subprocess.CompletedProcess[str]:
        rule: Obj = json.loads(json.dumps(next(o for o in objects if o["kind"] == "PrometheusRule")))
        rule["metadata"]["namespace"] = release_ns
        change(rule["spec"]["groups"][0]["rules"][1])
        return kube.kubectl_result("apply", "--dry-run=server", "-f", "-", input=json.dumps(rule))

    misspelt = broken(lambda r: r.update(fro=r.pop("for")))
    assert misspelt.returncode != 0
    assert 'unknown field "spec.groups[0].rules[1].fro"' in misspelt.stderr, misspelt.stderr
    malformed = broken(lambda r: r.update({"for": "30 minutes"}))
    assert malformed.returncode != 0
    assert 'spec.groups[0].rules[1].for: Invalid value: "30 minutes"' in malformed.stderr, malformed.stderr
