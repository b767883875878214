{{/* Pieces shared by the validating and mutating configurations. */}}

{{/* Annotations of both configurations, as YAML ("{}" when none). */}}
{{- define "podgate.webhookAnnotations" -}}
{{- $ann := deepCopy .Values.webhook.annotations -}}
{{- if and (eq .Values.certificates.mode "cert-manager") (not .Values.webhook.url) -}}
{{- $_ := set $ann "cert-manager.io/inject-ca-from" (printf "%s/%s" .Release.Namespace (include "podgate.tlsSecretName" .)) -}}
{{- end -}}
{{- toYaml $ann -}}
{{- end -}}

{{/* dict: root, url ("true" in URL mode), path, caBundle */}}
{{- define "podgate.clientConfig" -}}
clientConfig:
  {{- if .url }}
  url: {{ printf "%s%s" (trimSuffix "/" .root.Values.webhook.url) .path | quote }}
  {{- else }}
  service:
    name: {{ include "podgate.serviceName" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: {{ .root.Values.webhook.service.port }}
  {{- end }}
  {{- with .caBundle }}
  caBundle: {{ . }}
  {{- end }}
{{- end -}}

{{/* dict: podOperations. Pods and the pod template of every workload kind,
so a bad Deployment is refused at `kubectl apply` and not by a ReplicaSet
failing quietly later. */}}
{{- define "podgate.rules" -}}
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: {{ toJson .podOperations }}
  resources: ["pods"]
  scope: Namespaced
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["replicationcontrollers"]
  scope: Namespaced
- apiGroups: ["apps"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["deployments", "statefulsets", "daemonsets", "replicasets"]
  scope: Namespaced
- apiGroups: ["batch"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["jobs", "cronjobs"]
  scope: Namespaced
{{- end -}}

{{/* The namespaceSelector always leaves out podgate's own namespace (its pods
must start even when the webhook is down: no deadlock), kube-system, and any
namespace labelled podgate.dev/ignore; user selectors only narrow it further. */}}
{{- define "podgate.selectors" -}}
{{- $sel := .Values.webhook.namespaceSelector -}}
{{- $excluded := concat (list .Release.Namespace "kube-system") $sel.excludedNamespaces | uniq -}}
namespaceSelector:
  {{- with $sel.matchLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        {{- toYaml $excluded | nindent 8 }}
    - key: podgate.dev/ignore
      operator: DoesNotExist
    {{- with $sel.matchExpressions }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- with .Values.webhook.objectSelector }}
objectSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- /* An UPDATE that leaves a workload's pod template alone (scaling,
labels, an orphaning delete, its controller's bookkeeping) is never sent:
podgate does not judge it anyway, and sent, it would be refused while podgate
is unreachable, so a Deployment could not scale. Pods always are, `kubectl
debug`'s ephemeral containers too (their request's kind is Pod). Every field
read is guarded by has(): a CEL error fails closed. */}}
matchConditions:
  - name: changes-the-pod-template
    expression: >-
      request.operation != 'UPDATE' || request.kind.kind == 'Pod' ||
      !has(object.spec) || !has(oldObject.spec) ||
      (request.kind.kind == 'CronJob'
        ? !has(object.spec.jobTemplate) || !has(oldObject.spec.jobTemplate) ||
          object.spec.jobTemplate != oldObject.spec.jobTemplate
        : !has(object.spec.template) || !has(oldObject.spec.template) ||
          object.spec.template != oldObject.spec.template)
  {{- with .Values.webhook.matchConditions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
