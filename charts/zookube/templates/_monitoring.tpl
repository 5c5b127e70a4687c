{{/* Labels of the monitoring objects: the chart's, and monitoring.labels
(which a Prometheus may select them by, e.g. `release: kube-prometheus-stack`). */}}
{{- define "zookube.monitoringLabels" -}}
{{ include "zookube.labels" . }}
{{- with .Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The operator pods' annotations: the conventional prometheus.io/* ones
(metrics.scrapeAnnotations), then podAnnotations, which win. */}}
{{- define "zookube.podAnnotations" -}}
{{- $scrape := dict -}}
{{- if .Values.metrics.scrapeAnnotations -}}
{{- $_ := set $scrape "prometheus.io/scrape" "true" -}}
{{- $_ := set $scrape "prometheus.io/port" (toString .Values.metrics.port) -}}
{{- $_ := set $scrape "prometheus.io/path" "/metrics" -}}
{{- end -}}
{{- toYaml (merge (deepCopy .Values.podAnnotations) $scrape) -}}
{{- end -}}
