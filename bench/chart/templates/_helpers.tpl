{{- define "bench.name" -}}{{ .Values.fjord.app }}{{- end -}}

{{- define "bench.labels" -}}
{{- range $key, $value := .Values.fjord.labels }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "bench.selector" -}}
app.kubernetes.io/name: {{ include "bench.name" . }}
fjord.dev/org: {{ .Values.fjord.org }}
{{- end -}}

{{- define "bench.metadata" -}}
name: {{ include "bench.name" . }}
namespace: {{ .Values.fjord.namespace }}
labels:
  {{- include "bench.labels" . | nindent 2 }}
{{- end -}}

{{- define "bench.autoscaled" -}}
{{- if ne (int .Values.replicas.min) (int .Values.replicas.max) }}true{{ end -}}
{{- end -}}
