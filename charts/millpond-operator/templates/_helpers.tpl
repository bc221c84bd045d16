{{/* Chart name, overridable. */}}
{{- define "millpond-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects (at most 63 characters). */}}
{{- define "millpond-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label: name-version. */}}
{{- define "millpond-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels the operator pods are selected by. */}}
{{- define "millpond-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "millpond-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "millpond-operator.labels" -}}
helm.sh/chart: {{ include "millpond-operator.chart" . }}
{{ include "millpond-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: millpond
{{- end }}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "millpond-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "millpond-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Operator image reference. */}}
{{- define "millpond-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Consumer image reference the operator gives consumer pods. */}}
{{- define "millpond-operator.consumerImage" -}}
{{- printf "%s:%s" .Values.consumerImage.repository (default .Chart.AppVersion .Values.consumerImage.tag) }}
{{- end }}

{{/* Name of the leader-election Lease. */}}
{{- define "millpond-operator.leaseName" -}}
{{- default (include "millpond-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The operator's RBAC rules, for the ClusterRole (every namespace) or for the
Role of each namespace in watchNamespaces. Each rule names its API group,
resources and verbs; nothing is granted by wildcard.
*/}}
{{- define "millpond-operator.rules" -}}
# The API it serves. `patch` on the object only; status and scale through
# their subresources.
- apiGroups: ["millpond.io"]
  resources: ["millpondconsumers"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["millpond.io"]
  resources: ["millpondconsumers/status", "millpondconsumers/scale"]
  verbs: ["get", "patch", "update"]
# Owner references with blockOwnerDeletion need update on the owner's
# finalizers (OwnerReferencesPermissionEnforcement admission).
- apiGroups: ["millpond.io"]
  resources: ["millpondconsumers/finalizers"]
  verbs: ["update"]
# The objects it creates for each consumer (server-side apply creates and
# patches them; orphans are deleted by label).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Secrets: the `<name>-admin` token Secrets it creates, and a check that the
# Secrets a spec refers to exist. No list or watch, so the operator never
# holds the Secrets of the cluster in memory; garbage collection deletes
# the token Secrets with their MillpondConsumer.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch", "update"]
# Consumer pods: readiness and the pod IPs whose /metrics it scrapes.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Events explaining its decisions.
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
