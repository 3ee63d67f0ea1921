{{/*
Names. fullname does not include the release name (as upstream): the ClusterRoles are named after
it, so a second installation needs its own fullnameOverride. The schema caps the overrides at 47
characters so that "<fullname>-watcher-metrics" still fits a 63-character DNS label.
*/}}
{{- define "restate-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "restate-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- default "restate-operator" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "restate-operator.watcherName" -}}
{{- printf "%s-watcher" (include "restate-operator.fullname" .) }}
{{- end }}

{{- define "restate-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The bootstrap Restate's fixed names (README examples register with service `restate`). */}}
{{- define "restate-operator.bootstrapName" -}}restate{{- end }}
{{- define "restate-operator.bootstrapConfigName" -}}restate-bootstrap-config{{- end }}
{{- define "restate-operator.identitySecretName" -}}
{{- printf "%s-request-identity" (include "restate-operator.fullname" .) }}
{{- end }}

{{/*
Labels. Call with (dict "root" $ "component" "services"); component is optional.
*/}}
{{- define "restate-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "restate-operator.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "restate-operator.labels" -}}
helm.sh/chart: {{ include "restate-operator.chart" .root }}
{{ include "restate-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Values.image.tag | default .root.Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* ServiceAccount names: always these (serviceAccount.create only decides whether the chart makes them). */}}
{{- define "restate-operator.serviceAccountName" -}}
{{- include "restate-operator.fullname" . }}
{{- end }}
{{- define "restate-operator.watcherServiceAccountName" -}}
{{- include "restate-operator.watcherName" . }}
{{- end }}

{{- define "restate-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* URLs */}}
{{- define "restate-operator.clusterDns" -}}
{{- .Values.clusterDns | default "cluster.local" }}
{{- end }}

{{- define "restate-operator.bootstrapHost" -}}
{{- printf "%s.%s.svc.%s" (include "restate-operator.bootstrapName" .) .Release.Namespace (include "restate-operator.clusterDns" .) }}
{{- end }}

{{/* Without the bootstrap Restate, both URLs of the external one are needed: name every missing one. */}}
{{- define "restate-operator.requireExternalRestate" -}}
{{- $missing := list }}
{{- if not .Values.restate.adminUrl }}
{{- $missing = append $missing "restate.adminUrl (its admin API, e.g. http://restate.restate.svc.cluster.local:9070)" }}
{{- end }}
{{- if not .Values.restate.ingressUrl }}
{{- $missing = append $missing "restate.ingressUrl (its ingress, e.g. http://restate.restate.svc.cluster.local:8080)" }}
{{- end }}
{{- if $missing }}
{{- fail (printf "bootstrap.enabled=false: the operator needs the URLs of the Restate it runs on; set %s" (join " and " $missing)) }}
{{- end }}
{{- end }}

{{- define "restate-operator.adminUrl" -}}
{{- if .Values.bootstrap.enabled }}
{{- printf "http://%s:9070" (include "restate-operator.bootstrapHost" .) }}
{{- else }}
{{- include "restate-operator.requireExternalRestate" . }}
{{- .Values.restate.adminUrl }}
{{- end }}
{{- end }}

{{- define "restate-operator.ingressUrl" -}}
{{- if .Values.bootstrap.enabled }}
{{- printf "http://%s:8080" (include "restate-operator.bootstrapHost" .) }}
{{- else }}
{{- include "restate-operator.requireExternalRestate" . }}
{{- .Values.restate.ingressUrl }}
{{- end }}
{{- end }}

{{- define "restate-operator.advertisedUrl" -}}
{{- .Values.services.advertisedUrl | default (printf "http://%s.%s.svc.%s:9080" (include "restate-operator.fullname" .) .Release.Namespace (include "restate-operator.clusterDns" .)) }}
{{- end }}

{{/* Whether the request-identity key Secret exists (bootstrap Restate signs, services verify). */}}
{{- define "restate-operator.identityEnabled" -}}
{{- if and .Values.bootstrap.enabled .Values.requestIdentity.enabled }}true{{- end }}
{{- end }}

{{/*
Pod scheduling shared by every pod of the chart.
*/}}
{{- define "restate-operator.scheduling" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A NetworkPolicy ingress rule: (dict "port" 8080 "from" <list of peers or nil> "anyone" <bool>).
anyone: a rule without `from` (every source). Otherwise an empty `from` renders no rule at all
(the port stays closed), since the apiserver would read an empty list as "every source".
*/}}
{{- define "restate-operator.ingressRule" -}}
{{- if .anyone }}
- ports:
    - port: {{ .port }}
      protocol: TCP
{{- else if .from }}
- ports:
    - port: {{ .port }}
      protocol: TCP
  from:
    {{- toYaml .from | nindent 4 }}
{{- end }}
{{- end }}

{{/* Metrics rule for port .port from networkPolicy.metricsFrom: [] anyone, list those, null nobody. */}}
{{- define "restate-operator.metricsRule" -}}
{{- $from := .root.Values.networkPolicy.metricsFrom }}
{{- if kindIs "slice" $from }}
{{- include "restate-operator.ingressRule" (dict "port" .port "from" $from "anyone" (empty $from)) }}
{{- end }}
{{- end }}

{{/* Whether the bootstrap Restate is a replicated cluster (bootstrap.replicas > 1). */}}
{{- define "restate-operator.bootstrapReplicated" -}}
{{- if gt (.Values.bootstrap.replicas | int) 1 }}true{{- end }}
{{- end }}

{{/* The node-to-node address of bootstrap node N: (dict "root" $ "index" N). */}}
{{- define "restate-operator.bootstrapNodeAddress" -}}
{{- printf "http://%s-%d.%s-cluster:5122" (include "restate-operator.bootstrapName" .root) (.index | int) (include "restate-operator.bootstrapName" .root) }}
{{- end }}

{{/*
The bootstrap Restate's config.toml (roles: the default, all of them, so every node also runs the
replicated metadata server). One node provisions itself. A replicated cluster never does: a node
that provisions alone (say, restate-0 after losing its volume) would start a second cluster beside
the first, so the post-install Job provisions it once. Keys are dotted, not [tables], so that
top-level keys in extraConfig still land at the top level.
*/}}
{{- define "restate-operator.bootstrapConfig" -}}
{{- $replicas := .Values.bootstrap.replicas | int }}
{{- $replicated := include "restate-operator.bootstrapReplicated" . -}}
cluster-name = "restate-operator"
auto-provision = {{ not $replicated }}
default-num-partitions = {{ .Values.bootstrap.partitions | int }}
rocksdb-total-memory-size = {{ .Values.bootstrap.rocksdbTotalMemorySize | quote }}
{{- if $replicated }}
# a majority of the nodes holds each log record and runs each partition: any one node may fail
default-replication = {{ add (div $replicas 2) 1 }}
{{- $addresses := list }}
{{- range $i := until $replicas }}
{{- $addresses = append $addresses (include "restate-operator.bootstrapNodeAddress" (dict "root" $ "index" $i)) }}
{{- end }}
metadata-client.addresses = {{ $addresses | toJson }}
{{- end }}
{{- with .Values.bootstrap.extraConfig }}

{{ . }}
{{- end }}
{{- end }}

{{/* The labels of one alert: (dict "severity" "warning" "extra" <monitoring.prometheusRule.alertLabels>). */}}
{{- define "restate-operator.alertLabels" -}}
{{- merge (dict "severity" .severity) (.extra | default dict) | toYaml }}
{{- end }}
