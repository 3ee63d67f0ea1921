"""Taking a RestateCloudEnvironment over from upstream's operator (2.8.1) restarts no tunnel pod.

The objects are the ones upstream created for RestateCloudEnvironment `env1`, as recorded in
/work/shared/reference/upstream-fixtures/restatecloudenvironment.yaml (its spec in specs.yaml), minus
what the apiserver fills in: uid, resourceVersion, creationTimestamp, generation, managedFields,
status, the Deployment's revision annotation and the Service's allocated clusterIP. The tunnel
Deployment and Service carry upstream's metadata: the selector labels only, an owner reference to
the resource without blockOwnerDeletion.

They are created the way upstream created them: the resource by `kubectl apply` (client-side), the
tunnel objects by server-side apply under the field manager `restate-operator`, which is ours too
(so our apply removes whatever upstream set and we do not declare), and the finalizer by a JSON
patch without a field manager or User-Agent, which the apiserver records as manager `unknown`.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import get
from tests.integration.test_reconcile_core import wait_ready
from tests.stack import procs
from tests.stack.control_plane import ADMIN_TOKEN
from tests.stack.operator import OPERATOR_NAMESPACE, Operator
from tests.stack.stack import Stack

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
NAME = "env1"
TUNNEL = f"tunnel-{NAME}"
FINALIZER = "cloudenvironments.restate.dev"
TOKEN_SECRET = "cloud-token"
# specs.yaml's env1, as `kubectl apply`-ed for the recording.
ENV1: Obj = {
    "apiVersion": "restate.dev/v1beta1",
    "kind": "RestateCloudEnvironment",
    "metadata": {"name": NAME},
    "spec": {
        "environmentId": "env_201234567890abcdefghijklmn",
        "region": "eu",
        "signingPublicKey": "publickeyv1_2mjpwSmD6C2cyoZEo6xrc7AHmBqUPEsUPgVmJLmKqVDUEKAzU",
        "authentication": {"secret": {"name": TOKEN_SECRET, "key": "token"}},
    },
}
# The tunnel Deployment's and Service's specs as recorded; RCE_UID stands for the resource's uid.
CHILDREN = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tunnel-env1
spec:
  progressDeadlineSeconds: 600
  replicas: 1
  revisionHistoryLimit: 10
  selector:
    matchLabels:
      app.kubernetes.io/instance: tunnel-env1
      app.kubernetes.io/name: restate-cloud-tunnel-client
  strategy:
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 25%
    type: RollingUpdate
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: tunnel-env1
        app.kubernetes.io/name: restate-cloud-tunnel-client
    spec:
      automountServiceAccountToken: false
      containers:
      - env:
        - name: RESTATE_TUNNEL_NAME
          value: RCE_UID
        - name: RESTATE_SIGNING_PUBLIC_KEY
          value: publickeyv1_2mjpwSmD6C2cyoZEo6xrc7AHmBqUPEsUPgVmJLmKqVDUEKAzU
        - name: RESTATE_ENVIRONMENT_ID
          value: env_201234567890abcdefghijklmn
        - name: RESTATE_CLOUD_REGION
          value: eu
        - name: RESTATE_BEARER_TOKEN_FILE
          value: /restate-bearer-token
        - name: RESTATE_REMOTE_PROXY
          value: 'false'
        - name: RUST_BACKTRACE
          value: '1'
        - name: RUST_LIB_BACKTRACE
          value: '0'
        - name: RUST_LOG
          value: info
        image: ghcr.io/restatedev/restate-cloud-tunnel-client:0.6.0
        imagePullPolicy: IfNotPresent
        name: restate-cloud-tunnel-client
        ports:
        - containerPort: 9090
          name: health
          protocol: TCP
        readinessProbe:
          failureThreshold: 3
          httpGet:
            path: /health
            port: 9090
            scheme: HTTP
          periodSeconds: 10
          successThreshold: 1
          timeoutSeconds: 1
        resources:
          limits:
            cpu: '2'
            memory: 2Gi
          requests:
            cpu: '1'
            memory: 1Gi
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
        terminationMessagePath: /dev/termination-log
        terminationMessagePolicy: File
        volumeMounts:
        - mountPath: /restate-bearer-token
          name: bearer-token
          readOnly: true
          subPath: bearer-token
      dnsPolicy: ClusterFirst
      restartPolicy: Always
      schedulerName: default-scheduler
      securityContext:
        fsGroup: 2000
        fsGroupChangePolicy: OnRootMismatch
        runAsGroup: 3000
        runAsUser: 1000
        seccompProfile:
          type: RuntimeDefault
      terminationGracePeriodSeconds: 310
      volumes:
      - name: bearer-token
        secret:
          defaultMode: 420
          items:
          - key: token
            path: bearer-token
          secretName: cloud-token
---
apiVersion: v1
kind: Service
metadata:
  name: tunnel-env1
spec:
  internalTrafficPolicy: Cluster
  ipFamilies:
  - IPv4
  ipFamilyPolicy: SingleStack
  ports:
  - name: health
    port: 9090
    protocol: TCP
    targetPort: 9090
  selector:
    app.kubernetes.io/instance: tunnel-env1
    app.kubernetes.io/name: restate-cloud-tunnel-client
  sessionAffinity: None
  type: ClusterIP
"""


def upstream_children(uid: str) -> list[Obj]:
    """What upstream's operator created for env1 (whose uid is `uid`)."""
    children: list[Obj] = []
    for child in yaml.safe_load_all(CHILDREN.replace("RCE_UID", uid)):
        child["metadata"] = {
            "name": child["metadata"]["name"],
            "namespace": OPERATOR_NAMESPACE,
            "labels": {"app.kubernetes.io/instance": TUNNEL, "app.kubernetes.io/name": "restate-cloud-tunnel-client"},
            "ownerReferences": [
                {
                    "apiVersion": "restate.dev/v1beta1",
                    "kind": "RestateCloudEnvironment",
                    "name": NAME,
                    "uid": uid,
                    "controller": True,
                }
            ],
        }
        children.append(child)
    return children


def add_finalizer_as_upstream(stack: Stack, name: str) -> None:
    """As kube-runtime's `finalizer()`: a JSON patch with a `test` precondition, no field manager, no User-Agent."""
    cp = stack.control_plane
    patch = [
        {"op": "test", "path": "/metadata/finalizers", "value": None},
        {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
    ]
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cp.ca_file)), timeout=30) as http:
        del http.headers["User-Agent"]
        response = http.patch(
            f"{cp.server}/apis/restate.dev/v1beta1/restatecloudenvironments/{name}",
            content=json.dumps(patch),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json-patch+json"},
        )
    response.raise_for_status()


def tunnel_pods(stack: Stack) -> list[Obj]:
    out = stack.control_plane.kubectl(
        "get", "pods", "-n", OPERATOR_NAMESPACE, "-l", f"app.kubernetes.io/instance={TUNNEL}", "-o", "json"
    )
    pods: list[Obj] = json.loads(out)["items"]
    return pods


def test_taking_over_from_upstream_keeps_the_tunnel_pod(operator: Operator) -> None:
    stack, cp = operator.stack, operator.stack.control_plane
    assert get(stack, "rce", NAME) is None, "env1 is this test's"
    operator.stop_watchers()  # upstream's operator runs, not ours
    try:
        secret: Obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": TOKEN_SECRET, "namespace": OPERATOR_NAMESPACE},
            "stringData": {"token": "t0k3n"},
        }
        cp.kubectl("apply", "-f", "-", input=json.dumps(secret))
        cp.kubectl("apply", "-f", "-", input=json.dumps(ENV1))
        uid = get(stack, "rce", NAME)["metadata"]["uid"]  # type: ignore[index]
        add_finalizer_as_upstream(stack, NAME)
        for child in upstream_children(uid):
            cp.kubectl(
                "apply",
                "--server-side",
                "--field-manager=restate-operator",
                "--force-conflicts",
                "-f",
                "-",
                input=json.dumps(child),
            )

        def available() -> bool:
            deployment = get(stack, "deployment", TUNNEL, OPERATOR_NAMESPACE)
            return bool(deployment and (deployment.get("status") or {}).get("availableReplicas") == 1)

        procs.wait_until("upstream's tunnel available", available, timeout=90)
        before = get(stack, "deployment", TUNNEL, OPERATOR_NAMESPACE)
        assert before is not None
        pods_before = sorted(p["metadata"]["uid"] for p in tunnel_pods(stack))
        assert len(pods_before) == 1
    finally:
        operator.start_watcher()

    try:
        wait_ready(stack, NAME, timeout=90)
        after = get(stack, "deployment", TUNNEL, OPERATOR_NAMESPACE)
        assert after is not None
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["metadata"]["generation"] == before["metadata"]["generation"] == 1, "the spec did not change"
        assert after["spec"]["template"] == before["spec"]["template"]
        assert after["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "restate-operator", "ours now"
        assert sorted(p["metadata"]["uid"] for p in tunnel_pods(stack)) == pods_before, "no restart"
        service = get(stack, "service", TUNNEL, OPERATOR_NAMESPACE)
        assert service is not None
        assert service["spec"]["ports"] == [{"name": "health", "port": 9090, "protocol": "TCP", "targetPort": 9090}]

        cp.kubectl("delete", "rce", NAME, "--wait=false")
        procs.wait_until("env1 deleted", lambda: get(stack, "rce", NAME) is None, timeout=60)
    finally:
        cp.kubectl(
            "patch", "rce", NAME, "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]', check=False
        )
        cp.kubectl("delete", "rce", NAME, "--ignore-not-found", "--wait=false")
        cp.kubectl("delete", "secret", TOKEN_SECRET, "-n", OPERATOR_NAMESPACE, "--ignore-not-found")
