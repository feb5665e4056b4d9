{{- define "chart-app.name" -}}
{{ .Release.Name }}
{{- end }}

{{- define "chart-app.labels" -}}
app.kubernetes.io/name: {{ include "chart-app.name" . }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
