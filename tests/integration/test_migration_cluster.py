"""Taking a RestateCluster over from upstream's operator (2.8.1) restarts nothing.

The objects are the ones upstream created for RestateCluster `rc1`, as recorded in
/work/shared/reference/upstream-fixtures/restatecluster.yaml (its spec in specs.yaml), minus what
the apiserver fills in: uid, resourceVersion, creationTimestamp, generation, managedFields, status
and the Service's allocated clusterIP. Every child there carries the same metadata
(`upstream_metadata`: the CR's annotations, kubectl's last-applied-configuration included, its labels
and ours, an owner reference without blockOwnerDeletion); the Namespace, which the recording does not
list, is built the same way, as upstream's `object_meta` does.

They are created the way upstream created them: the children by server-side apply under the field
manager `restate-operator`, which is ours too (so our apply removes whatever upstream set and we do
not declare), and the finalizer by a JSON patch without a field manager or User-Agent, which the
apiserver records as manager `unknown`.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import condition, get
from tests.integration.test_cluster import wait_for
from tests.stack import procs
from tests.stack.control_plane import ADMIN_TOKEN
from tests.stack.operator import Operator
from tests.stack.stack import Stack

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
NAME = "rc1"
FINALIZER = "clusters.restate.dev"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# What `kubectl apply` of specs.yaml's rc1 stored; upstream copied it onto every child and the pod template.
RC1_LAST_APPLIED = (
    '{"apiVersion":"restate.dev/v1","kind":"RestateCluster","metadata":{"annotations":{},"name":"rc1"},'
    '"spec":{"compute":{"image":"docker.io/restatedev/restate:1.7.12","replicas":1},'
    '"config":"roles = [\\"worker\\", \\"admin\\", \\"metadata-server\\", \\"log-server\\", \\"http-ingress\\"]\\n",'
    '"storage":{"storageRequestBytes":2147483648}}}\n'
)
RC1: Obj = {
    "apiVersion": "restate.dev/v1",
    "kind": "RestateCluster",
    "metadata": {"name": NAME, "annotations": {LAST_APPLIED: RC1_LAST_APPLIED}},
    "spec": {
        "compute": {"image": "docker.io/restatedev/restate:1.7.12", "replicas": 1},
        "config": 'roles = ["worker", "admin", "metadata-server", "log-server", "http-ingress"]\n',
        "storage": {"storageRequestBytes": 2147483648},
    },
}
# The children in the recording's order, metadata apart (see upstream_metadata).
CHILDREN = """
apiVersion: v1
kind: ServiceAccount
metadata:
  name: restate
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: restate-config-831f490d
data:
  config.toml: 'roles = ["worker", "admin", "metadata-server", "log-server", "http-ingress"]

    '
---
apiVersion: v1
kind: Service
metadata:
  name: restate
spec:
  internalTrafficPolicy: Cluster
  ipFamilies:
  - IPv4
  ipFamilyPolicy: SingleStack
  ports:
  - appProtocol: kubernetes.io/h2c
    name: ingress
    port: 8080
    protocol: TCP
    targetPort: 8080
  - appProtocol: kubernetes.io/h2c
    name: admin
    port: 9070
    protocol: TCP
    targetPort: 9070
  - appProtocol: kubernetes.io/h2c
    name: metrics
    port: 5122
    protocol: TCP
    targetPort: 5122
  selector:
    app.kubernetes.io/instance: rc1
    app.kubernetes.io/name: restate
  sessionAffinity: None
  type: ClusterIP
---
apiVersion: v1
kind: Service
metadata:
  name: restate-cluster
spec:
  clusterIP: None
  clusterIPs:
  - None
  internalTrafficPolicy: Cluster
  ipFamilies:
  - IPv4
  ipFamilyPolicy: SingleStack
  ports:
  - appProtocol: kubernetes.io/h2c
    name: node
    port: 5122
    protocol: TCP
    targetPort: 5122
  publishNotReadyAddresses: true
  selector:
    app.kubernetes.io/instance: rc1
    app.kubernetes.io/name: restate
  sessionAffinity: None
  type: ClusterIP
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: restate
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/instance: rc1
      app.kubernetes.io/name: restate
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: restate
spec:
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: Retain
    whenScaled: Retain
  podManagementPolicy: Parallel
  replicas: 1
  revisionHistoryLimit: 10
  selector:
    matchLabels:
      app.kubernetes.io/instance: rc1
      app.kubernetes.io/name: restate
  serviceName: restate-cluster
  template:
    metadata:
      annotations:
        kubectl.kubernetes.io/last-applied-configuration: RC1_LAST_APPLIED
      labels:
        app.kubernetes.io/instance: rc1
        app.kubernetes.io/name: restate
    spec:
      automountServiceAccountToken: false
      containers:
      - env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              apiVersion: v1
              fieldPath: metadata.name
        - name: POD_ZONE
          valueFrom:
            fieldRef:
              apiVersion: v1
              fieldPath: metadata.labels['topology.kubernetes.io/zone']
        - name: POD_REGION
          valueFrom:
            fieldRef:
              apiVersion: v1
              fieldPath: metadata.labels['topology.kubernetes.io/region']
        - name: RESTATE_LOG_FORMAT
          value: json
        - name: RESTATE_CLUSTER_NAME
          value: rc1
        - name: RESTATE_BASE_DIR
          value: /restate-data
        - name: RUST_BACKTRACE
          value: '1'
        - name: RUST_LIB_BACKTRACE
          value: '0'
        - name: RESTATE_CONFIG
          value: /config/config.toml
        - name: RESTATE_ADVERTISED_ADDRESS
          value: http://$(POD_NAME).restate-cluster:5122
        - name: RESTATE_NODE_NAME
          value: $(POD_NAME)
        image: docker.io/restatedev/restate:1.7.12
        imagePullPolicy: IfNotPresent
        name: restate
        ports:
        - containerPort: 8080
          name: ingress
          protocol: TCP
        - containerPort: 9070
          name: admin
          protocol: TCP
        - containerPort: 5122
          name: metrics
          protocol: TCP
        readinessProbe:
          failureThreshold: 3
          httpGet:
            path: /health
            port: 9070
            scheme: HTTP
          initialDelaySeconds: 30
          periodSeconds: 10
          successThreshold: 1
          timeoutSeconds: 1
        resources: {}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
        terminationMessagePath: /dev/termination-log
        terminationMessagePolicy: File
        volumeMounts:
        - mountPath: /restate-data
          name: storage
        - mountPath: /tmp
          name: tmp
        - mountPath: /config
          name: config
          readOnly: true
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
      serviceAccount: restate
      serviceAccountName: restate
      terminationGracePeriodSeconds: 60
      volumes:
      - emptyDir: {}
        name: tmp
      - configMap:
          defaultMode: 420
          name: restate-config-831f490d
        name: config
  updateStrategy:
    rollingUpdate:
      partition: 0
    type: RollingUpdate
  volumeClaimTemplates:
  - apiVersion: v1
    kind: PersistentVolumeClaim
    metadata:
      labels:
        app.kubernetes.io/instance: rc1
        app.kubernetes.io/name: restate
      name: storage
    spec:
      accessModes:
      - ReadWriteOnce
      resources:
        requests:
          storage: '2147483648'
      volumeMode: Filesystem
    status:
      phase: Pending
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-admin-access
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/instance: rc1
      app.kubernetes.io/name: restate
  policyTypes:
  - Ingress
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-egress-to-dns
spec:
  egress:
  - ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
    to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
    - ipBlock:
        cidr: 169.254.20.10/32
  podSelector:
    matchLabels:
      app.kubernetes.io/instance: rc1
      app.kubernetes.io/name: restate
  policyTypes:
  - Egress
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-ingress-access
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/instance: rc1
      app.kubernetes.io/name: restate
  policyTypes:
  - Ingress
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-metrics-access
spec:
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: rc1
      podSelector:
        matchLabels:
          app.kubernetes.io/instance: rc1
          app.kubernetes.io/name: restate
    ports:
    - port: 5122
      protocol: TCP
  podSelector:
    matchLabels:
      app.kubernetes.io/instance: rc1
      app.kubernetes.io/name: restate
  policyTypes:
  - Ingress
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-restate-egress
spec:
  egress:
  - ports:
    - port: 5122
      protocol: TCP
    to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: rc1
      podSelector:
        matchLabels:
          app.kubernetes.io/instance: rc1
          app.kubernetes.io/name: restate
  - to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          allow.restate.dev/rc1: 'true'
  podSelector:
    matchLabels:
      app.kubernetes.io/instance: rc1
      app.kubernetes.io/name: restate
  policyTypes:
  - Egress
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-restate-egress-to-public-internet
spec:
  egress:
  - to:
    - ipBlock:
        cidr: 0.0.0.0/1
        except:
        - 10.0.0.0/8
    - ipBlock:
        cidr: 128.0.0.0/1
        except:
        - 192.168.0.0/16
        - 172.16.0.0/12
        - 169.254.0.0/16
  podSelector:
    matchLabels:
      app.kubernetes.io/instance: rc1
      app.kubernetes.io/name: restate
  policyTypes:
  - Egress
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/instance: rc1
      app.kubernetes.io/name: restate
  policyTypes:
  - Egress
  - Ingress
"""


def upstream_metadata(name: str, uid: str, *, namespaced: bool = True) -> Obj:
    meta: Obj = {
        "name": name,
        "annotations": {LAST_APPLIED: RC1_LAST_APPLIED},
        "labels": {"app.kubernetes.io/instance": NAME, "app.kubernetes.io/name": "restate"},
        "ownerReferences": [
            {"apiVersion": "restate.dev/v1", "kind": "RestateCluster", "name": NAME, "uid": uid, "controller": True}
        ],
    }
    if namespaced:
        meta["namespace"] = NAME
    return meta


def upstream_children(uid: str) -> list[Obj]:
    """What upstream's operator created for rc1 (whose uid is `uid`), Namespace first."""
    text = CHILDREN.replace("RC1_LAST_APPLIED", json.dumps(RC1_LAST_APPLIED))
    children: list[Obj] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": upstream_metadata(NAME, uid, namespaced=False)}
    ]
    for child in yaml.safe_load_all(text):
        child["metadata"] = upstream_metadata(child["metadata"]["name"], uid)
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
            f"{cp.server}/apis/restate.dev/v1/restateclusters/{name}",
            content=json.dumps(patch),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json-patch+json"},
        )
    response.raise_for_status()


def remove_finalizers(stack: Stack, name: str) -> None:
    stack.control_plane.kubectl(
        "patch", "rsc", name, "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]', check=False
    )


def pod_ready(stack: Stack) -> Obj | None:
    pod = get(stack, "pod", "restate-0", NAME)
    return pod if condition(pod, "Ready").get("status") == "True" else None


def test_taking_over_from_upstream_keeps_every_pod_and_deletes_cleanly(operator: Operator) -> None:
    stack, cp = operator.stack, operator.stack.control_plane
    assert get(stack, "rsc", NAME) is None, "rc1 is this test's"
    operator.stop_watchers()  # upstream's operator runs, not ours
    try:
        cp.kubectl("create", "-f", "-", input=json.dumps(RC1))
        uid = get(stack, "rsc", NAME)["metadata"]["uid"]  # type: ignore[index]
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
        procs.wait_until("upstream's node ready", lambda: pod_ready(stack) is not None, timeout=90)
        before = get(stack, "statefulset", "restate", NAME)
        pod = pod_ready(stack)
        assert before is not None
        assert pod is not None
        recorded = json.loads(cp.kubectl("get", "rsc", NAME, "-o", "json", "--show-managed-fields"))
        finalizer_managers = [
            m["manager"] for m in recorded["metadata"]["managedFields"] if "f:finalizers" in json.dumps(m["fieldsV1"])
        ]
        assert finalizer_managers == ["unknown"], "the finalizer is upstream's, as in the recording"
    finally:
        operator.start_watcher()

    try:
        wait_for(stack, NAME, "Ready", "True", timeout=90)
        after = get(stack, "statefulset", "restate", NAME)
        assert after is not None
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["metadata"]["generation"] == before["metadata"]["generation"] == 1, "the spec did not change"
        assert after["spec"]["template"] == before["spec"]["template"]
        assert after["status"]["updateRevision"] == before["status"]["updateRevision"]
        assert get(stack, "pod", "restate-0", NAME)["metadata"]["uid"] == pod["metadata"]["uid"], "no restart"  # type: ignore[index]
        configmaps = json.loads(cp.kubectl("get", "configmap", "-n", NAME, "-o", "json"))["items"]
        assert sorted(c["metadata"]["name"] for c in configmaps) == ["kube-root-ca.crt", "restate-config-831f490d"]
        assert after["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "restate-operator", "ours now"

        cp.kubectl("delete", "rsc", NAME, "--wait=false")
        procs.wait_until("rc1 deleted", lambda: get(stack, "rsc", NAME) is None, timeout=60)
    finally:
        remove_finalizers(stack, NAME)  # whatever happened above, leave no stuck cluster behind
        cp.kubectl("delete", "rsc", NAME, "--ignore-not-found", "--wait=false")
