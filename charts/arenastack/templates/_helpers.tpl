{{- define "arenastack.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "arenastack.operatorName" -}}
{{- printf "%s-operator" (include "arenastack.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "arenastack.serviceAccountName" -}}
{{- default (include "arenastack.operatorName" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "arenastack.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "arenastack.operatorSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "arenastack.arenaName" -}}
{{- printf "%s-arena" (include "arenastack.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "arenastack.arenaSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: arena
{{- end -}}

{{- /* SQLite keeps its file on a volume; PostgreSQL (a URL from a Secret) needs none. */ -}}
{{- define "arenastack.arenaSqlite" -}}
{{- if not .Values.arena.database.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "arenastack.arenaClaim" -}}
{{- default (printf "%s-data" (include "arenastack.arenaName" .)) .Values.arena.persistence.existingClaim -}}
{{- end -}}

{{- define "arenastack.arenaSeedConfigMap" -}}
{{- default (printf "%s-seed" (include "arenastack.arenaName" .)) .Values.arena.seedCounts.existingConfigMap -}}
{{- end -}}

{{- define "arenastack.arenaHasSeed" -}}
{{- if or .Values.arena.seedCounts.json .Values.arena.seedCounts.existingConfigMap -}}true{{- end -}}
{{- end -}}

{{- /* The labels the serving dashboard filters engine and router series by. */ -}}
{{- define "arenastack.deploymentRelabelings" -}}
- sourceLabels: [__meta_kubernetes_pod_label_arenastack_io_inferencedeployment]
  targetLabel: inferencedeployment
- sourceLabels: [__meta_kubernetes_pod_label_app_kubernetes_io_component]
  targetLabel: component
{{- end }}
