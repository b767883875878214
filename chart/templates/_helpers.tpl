{{/* Names. Everything podgate owns is named after the full name, so the
webhook configurations, the Secret and the Lease are predictable and RBAC can
pin them by resourceNames. */}}
{{- define "podgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "podgate.fullname" -}}
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

{{/* Object names derived from the full name; the full name is capped so that
the longest suffix still fits in 63 characters. */}}
{{- define "podgate.base" -}}
{{- include "podgate.fullname" . | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- define "podgate.webhookName" -}}{{ include "podgate.base" . }}{{- end -}}
{{- define "podgate.serviceName" -}}{{ include "podgate.base" . }}{{- end -}}
{{- define "podgate.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "provided" -}}
{{- .Values.certificates.provided.secretName -}}
{{- else -}}
{{- printf "%s-tls" (include "podgate.base" .) -}}
{{- end -}}
{{- end -}}
{{- define "podgate.auditName" -}}{{ include "podgate.base" . }}-audit{{- end -}}
{{/* The audit's Lease and its PolicyReports carry podgate's fixed name (see
webhook/audit/lease.py). Two releases in one namespace would share the Lease:
one audit is active, which is what auditing one cluster needs anyway. */}}
{{- define "podgate.auditLeaseName" -}}podgate-audit{{- end -}}
{{- define "podgate.configName" -}}{{ include "podgate.base" . }}-config{{- end -}}
{{- define "podgate.pluginsName" -}}
{{- if .Values.plugins.existingConfigMap -}}
{{- .Values.plugins.existingConfigMap -}}
{{- else -}}
{{- printf "%s-plugins" (include "podgate.base" .) -}}
{{- end -}}
{{- end -}}

{{- define "podgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels. `component` tells the webhook, audit, hook and test pods apart. */}}
{{- define "podgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podgate.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "podgate.labels" -}}
helm.sh/chart: {{ include "podgate.chart" .root }}
{{ include "podgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: podgate
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "podgate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "podgate.webhookServiceAccount" -}}
{{- if .Values.webhook.serviceAccount.create -}}
{{- default (include "podgate.base" .) .Values.webhook.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.webhook.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "podgate.auditServiceAccount" -}}
{{- if .Values.audit.serviceAccount.create -}}
{{- default (include "podgate.auditName" .) .Values.audit.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.audit.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "podgate.pluginsEnabled" -}}
{{- if or .Values.plugins.files .Values.plugins.existingConfigMap -}}true{{- end -}}
{{- end -}}

{{/* In URL mode the API server calls an address outside the cluster: no
Service, no certificate management on the webhook configurations. */}}
{{- define "podgate.urlMode" -}}
{{- if .Values.webhook.url -}}true{{- end -}}
{{- end -}}

{{/* The rendered config.yaml: the `config` value, the `enforcement` shortcut,
the release namespace exempted by default, and the plugin folder. */}}
{{- define "podgate.configFile" -}}
{{- $config := deepCopy .Values.config -}}
{{- if and (hasKey $config "enforcement") (ne (toString $config.enforcement) .Values.enforcement) -}}
{{- fail (printf "config.enforcement (%v) disagrees with enforcement (%s): set only the top-level `enforcement` value" $config.enforcement .Values.enforcement) -}}
{{- end -}}
{{- $_ := set $config "enforcement" .Values.enforcement -}}
{{- $exemptions := default (dict) $config.exemptions -}}
{{- if not (hasKey $exemptions "namespaces") -}}
{{- $_ := set $exemptions "namespaces" (list "kube-system" .Release.Namespace | uniq) -}}
{{- else -}}
{{- /* podgate's own namespace stays exempt whatever else is listed: the audit
must not report podgate, and the webhooks never see it anyway */ -}}
{{- $_ := set $exemptions "namespaces" (append $exemptions.namespaces .Release.Namespace | uniq) -}}
{{- end -}}
{{- if not (hasKey $exemptions "allow_annotation") -}}
{{- /* In a cluster the podgate.dev/exempt annotation is off unless asked for:
whoever may create a Pod could otherwise exempt it from every policy */ -}}
{{- $_ := set $exemptions "allow_annotation" false -}}
{{- end -}}
{{- $_ := set $config "exemptions" $exemptions -}}
{{- if include "podgate.pluginsEnabled" . -}}
{{- $plugins := default (list) $config.plugins -}}
{{- $_ := set $config "plugins" (append $plugins "/etc/podgate/plugins" | uniq) -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Volumes holding the config (and plugins) as one projected directory at
/etc/podgate: mounted whole, never with subPath, so the kubelet's updates reach
the running pods, which poll and reload. One projected volume rather than a
volume nested inside another: the runtime cannot create a mount point inside a
read-only ConfigMap volume. */}}
{{- define "podgate.configVolume" -}}
- name: config
  projected:
    sources:
      - configMap:
          name: {{ include "podgate.configName" . }}
          items:
            - key: config.yaml
              path: config.yaml
      {{- if include "podgate.pluginsEnabled" . }}
      - configMap:
          name: {{ include "podgate.pluginsName" . }}
          items:
            {{- $keys := .Values.plugins.keys }}
            {{- if not .Values.plugins.existingConfigMap }}
            {{- $keys = keys .Values.plugins.files | sortAlpha }}
            {{- end }}
            {{- range $keys }}
            - key: {{ . }}
              path: plugins/{{ . }}
            {{- end }}
      {{- end }}
{{- end -}}

{{/* Cross-value checks a JSON schema cannot express. */}}
{{- define "podgate.validate" -}}
{{- $w := .Values.webhook -}}
{{- $longest := $w.validating.timeoutSeconds -}}
{{- if and $w.mutating.enabled (gt (int $w.mutating.timeoutSeconds) (int $longest)) -}}
{{- $longest = $w.mutating.timeoutSeconds -}}
{{- end -}}
{{- $shortest := $w.validating.timeoutSeconds -}}
{{- if and $w.mutating.enabled (lt (int $w.mutating.timeoutSeconds) (int $shortest)) -}}
{{- $shortest = $w.mutating.timeoutSeconds -}}
{{- end -}}
{{- if ge (float64 $w.deadlineSeconds) (float64 $shortest) -}}
{{- fail (printf "webhook.deadlineSeconds (%v) must be below the shortest webhook timeoutSeconds (%v), so podgate answers before the API server gives up" $w.deadlineSeconds $shortest) -}}
{{- end -}}
{{- if lt (int $w.shutdown.gracePeriodSeconds) (int $longest) -}}
{{- fail (printf "webhook.shutdown.gracePeriodSeconds (%v) must be at least the longest webhook timeoutSeconds (%v), or in-flight admission requests are cut off" $w.shutdown.gracePeriodSeconds $longest) -}}
{{- end -}}
{{- $needed := add $w.shutdown.delaySeconds $w.shutdown.gracePeriodSeconds -}}
{{- if le (int $w.terminationGracePeriodSeconds) (int $needed) -}}
{{- fail (printf "webhook.terminationGracePeriodSeconds (%v) must exceed webhook.shutdown.delaySeconds + webhook.shutdown.gracePeriodSeconds (%v), or the kubelet kills pods still answering" $w.terminationGracePeriodSeconds $needed) -}}
{{- end -}}
{{- if and $w.url (not (hasPrefix "https://" $w.url)) -}}
{{- fail (printf "webhook.url must start with https:// (the API server only calls webhooks over TLS), got %q" $w.url) -}}
{{- end -}}
{{- if and $w.url (not $w.caBundle) -}}
{{- fail "webhook.url needs webhook.caBundle: the base64 PEM CA that signed the certificate served there" -}}
{{- end -}}
{{- if and $w.url $w.deploy (eq .Values.certificates.mode "self-managed") -}}
{{- fail "webhook.url with webhook.deploy=true and certificates.mode=self-managed: the in-cluster pods would overwrite the caBundle of webhook.url; set webhook.deploy=false (or use cert-manager/provided certificates)" -}}
{{- end -}}
{{- if not (or $w.url $w.deploy) -}}
{{- fail "webhook.deploy=false needs webhook.url: the webhook configurations must point somewhere" -}}
{{- end -}}
{{- if eq .Values.certificates.mode "provided" -}}
{{- if and $w.deploy (not .Values.certificates.provided.secretName) -}}
{{- fail "certificates.mode=provided needs certificates.provided.secretName (a Secret with tls.crt and tls.key)" -}}
{{- end -}}
{{- if and (not $w.url) (not .Values.certificates.provided.caBundle) -}}
{{- fail "certificates.mode=provided needs certificates.provided.caBundle (base64 PEM of the CA that signed the Secret's certificate)" -}}
{{- end -}}
{{- end -}}
{{- $as := $w.autoscaling -}}
{{- if $as.enabled -}}
{{- if not $w.deploy -}}
{{- fail "webhook.autoscaling.enabled needs webhook.deploy=true: there is no webhook Deployment to scale" -}}
{{- end -}}
{{- if lt (int $as.maxReplicas) (int $as.minReplicas) -}}
{{- fail (printf "webhook.autoscaling.maxReplicas (%v) must be at least webhook.autoscaling.minReplicas (%v)" $as.maxReplicas $as.minReplicas) -}}
{{- end -}}
{{- if or (lt (int $w.replicas) (int $as.minReplicas)) (gt (int $w.replicas) (int $as.maxReplicas)) -}}
{{- fail (printf "webhook.replicas (%v) must lie within webhook.autoscaling.minReplicas..maxReplicas (%v..%v): it is the count a first install starts with, and the autoscaler would change it at once" $w.replicas $as.minReplicas $as.maxReplicas) -}}
{{- end -}}
{{- if not (or $as.targetCPUUtilizationPercentage $as.requestsInFlightAverageValue) -}}
{{- fail "webhook.autoscaling needs a target: targetCPUUtilizationPercentage above 0 or requestsInFlightAverageValue" -}}
{{- end -}}
{{- if and $as.targetCPUUtilizationPercentage (not (dig "requests" "cpu" "" $w.resources)) -}}
{{- fail "webhook.autoscaling.targetCPUUtilizationPercentage is a percentage of webhook.resources.requests.cpu, which is not set" -}}
{{- end -}}
{{- end -}}
{{- /* the PDB is checked against the fewest replicas there will be: replicas,
or the autoscaler's minReplicas */ -}}
{{- $fewest := int (include "podgate.fewestReplicas" .) -}}
{{- $fewestName := ternary "webhook.autoscaling.minReplicas" "webhook.replicas" (and $as.enabled true) -}}
{{- $pdb := $w.podDisruptionBudget -}}
{{- if and $w.deploy $pdb.enabled (gt $fewest 1) (not (kindIs "string" $pdb.minAvailable)) (ge (int $pdb.minAvailable) $fewest) -}}
{{- fail (printf "webhook.podDisruptionBudget.minAvailable (%v) must be below %s (%v), or no node could ever be drained" $pdb.minAvailable $fewestName $fewest) -}}
{{- end -}}
{{- if and $w.deploy $pdb.enabled (gt $fewest 1) (kindIs "string" $pdb.minAvailable) -}}
{{- /* a percentage rounds up: it must leave at least one replica free to evict */ -}}
{{- $percent := int (trimSuffix "%" $pdb.minAvailable) -}}
{{- if ge (div (add (mul $percent $fewest) 99) 100) $fewest -}}
{{- fail (printf "webhook.podDisruptionBudget.minAvailable (%v of %v replicas (%s), rounded up) leaves no replica to evict: no node could ever be drained" $pdb.minAvailable $fewest $fewestName) -}}
{{- end -}}
{{- end -}}
{{- $pr := .Values.metrics.prometheusRule -}}
{{- if and $pr.enabled (not $pr.webhookSelector) (not (and $w.deploy .Values.metrics.serviceMonitor.enabled)) -}}
{{- fail "metrics.prometheusRule needs metrics.prometheusRule.webhookSelector (the labels your Prometheus gives podgate's webhook series) unless the chart's own ServiceMonitor scrapes the in-cluster webhook (metrics.serviceMonitor.enabled, webhook.deploy)" -}}
{{- end -}}
{{- if and $pr.enabled .Values.audit.enabled (not $pr.auditSelector) (not .Values.metrics.serviceMonitor.enabled) -}}
{{- fail "metrics.prometheusRule needs metrics.prometheusRule.auditSelector (the labels your Prometheus gives the audit's series) unless the chart's own ServiceMonitor scrapes it (metrics.serviceMonitor.enabled)" -}}
{{- end -}}
{{- if and .Values.plugins.files .Values.plugins.existingConfigMap -}}
{{- fail "set either plugins.files or plugins.existingConfigMap, not both" -}}
{{- end -}}
{{- if and .Values.plugins.existingConfigMap (not .Values.plugins.keys) -}}
{{- fail "plugins.existingConfigMap needs plugins.keys: the .py keys to mount" -}}
{{- end -}}
{{- range concat (keys .Values.plugins.files) .Values.plugins.keys -}}
{{- if not (hasSuffix ".py" .) -}}
{{- fail (printf "plugin file %q must end in .py (podgate loads *.py from /etc/podgate/plugins)" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The fewest webhook replicas there will be: what the PodDisruptionBudget
is checked against. */}}
{{- define "podgate.fewestReplicas" -}}
{{- if .Values.webhook.autoscaling.enabled -}}
{{- .Values.webhook.autoscaling.minReplicas -}}
{{- else -}}
{{- .Values.webhook.replicas -}}
{{- end -}}
{{- end -}}

{{/* The Deployment's replicas. Under the autoscaler, the count it chose, read
back from the live Deployment (as the caBundle is) and kept within
minReplicas..maxReplicas: leaving the field out would make `helm upgrade`
delete it from a release that had it, and the Deployment fall to one pod
until the autoscaler acts. A first install (and `helm template`) starts with
`replicas`. */}}
{{- define "podgate.replicas" -}}
{{- $w := .Values.webhook -}}
{{- $replicas := int $w.replicas -}}
{{- if $w.autoscaling.enabled -}}
{{- $live := lookup "apps/v1" "Deployment" .Release.Namespace (include "podgate.base" .) -}}
{{- if and $live $live.spec (hasKey $live.spec "replicas") -}}
{{- $replicas = int $live.spec.replicas -}}
{{- end -}}
{{- $replicas = max (int $w.autoscaling.minReplicas) $replicas | min (int $w.autoscaling.maxReplicas) -}}
{{- end -}}
{{- $replicas -}}
{{- end -}}
