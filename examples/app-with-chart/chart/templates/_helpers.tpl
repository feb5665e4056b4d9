{{- define "varsel.selector" -}}
app.kubernetes.io/name: {{ .Values.fjord.app }}
{{- end }}
