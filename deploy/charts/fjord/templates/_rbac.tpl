{{/* What each operator may do, and nothing more (checked with SubjectAccessReviews in
tests/integration/test_fjord_install.py). Secrets: RBAC cannot filter by label, so an operator
that writes apps' Secrets may touch Secrets in the namespaces it watches. */}}

{{- define "fjord.rules.credentials" -}}
- apiGroups: ["fjord.dev"]
  resources: ["appcredentials"]
  verbs: ["get", "list", "watch", "delete"]  # delete: only when expiresAt has passed
- apiGroups: ["fjord.dev"]
  resources: ["appcredentials/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{- define "fjord.rules.janitor" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "delete"]
# What can mount a Secret: a Secret in use is never deleted.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: ["apps"]
  resources: ["replicasets", "deployments", "statefulsets"]
  verbs: ["list"]
- apiGroups: ["batch"]
  resources: ["jobs", "cronjobs"]
  verbs: ["list"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{- define "fjord.rules.maskinporten" -}}
- apiGroups: ["fjord.dev"]
  resources: ["maskinportenclients"]
  verbs: ["get", "list", "watch", "patch"]  # patch: the fjord.dev/maskinporten finalizer
- apiGroups: ["fjord.dev"]
  resources: ["maskinportenclients/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{- define "fjord.rules.workloads" -}}
# Reads why Pods cannot run; reports it over HTTP to Flux, never writes to the cluster.
- apiGroups: [""]
  resources: ["pods", "events"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["kustomize.toolkit.fluxcd.io"]
  resources: ["kustomizations"]
  verbs: ["get"]
{{- end -}}
