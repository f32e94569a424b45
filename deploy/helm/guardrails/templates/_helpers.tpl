{{/* The release's name for every object, cut to what names allow. */}}
{{- define "guardrails.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "guardrails.selectorLabels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "guardrails.labels" -}}
{{ include "guardrails.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "guardrails.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "guardrails.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "guardrails.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The metrics port: what follows the last colon of config.metrics.address. */}}
{{- define "guardrails.metricsPort" -}}
{{- regexReplaceAll "^.*:" .Values.config.metrics.address "" -}}
{{- end -}}

{{/*
The agent's config file: the `config` values, with the rules files of
rulesFiles and rulesConfigMap appended to rules.files where they are mounted.
*/}}
{{- define "guardrails.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $rules := default dict $config.rules -}}
{{- $files := default list $rules.files -}}
{{- range $name := keys .Values.rulesFiles | sortAlpha -}}
{{- $files = append $files (printf "/etc/guardrails-rules/%s" $name) -}}
{{- end -}}
{{- range $key := .Values.rulesConfigMap.keys -}}
{{- $files = append $files (printf "/etc/guardrails-rules-external/%s" $key) -}}
{{- end -}}
{{- $_ := set $rules "files" $files -}}
{{- $_ := set $config "rules" $rules -}}
{{- $_ := set $config "apiVersion" "guardrails.dev/v1alpha1" -}}
{{- toYaml $config -}}
{{- end -}}
