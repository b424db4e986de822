{{/*
Helpers. The public templates (codex-sentinel.container, .volumes, .appVolumeMounts,
.selectorLabels, .podAnnotations) take a context with only `.Values` and `.Release`, so that a
parent chart can include them in its own pod spec:

  {{ include "codex-sentinel.container" . }}          the parent has codex-sentinel as a
                                                      dependency (its values under `codex-sentinel`)
  {{ include "codex-sentinel.container" (dict "Values" .Values.sentinel "Release" .Release) }}
                                                      the dependency has an alias (`sentinel`)

Internal helpers take `$c` = (dict "v" <this chart's values> "release" <.Release>), built by
codex-sentinel.ctx. Names never use `.Chart` so they come out the same from either chart.
*/}}

{{/* The appVersion of Chart.yaml (a test keeps them equal): the image tag by default. */}}
{{- define "codex-sentinel.appVersion" -}}0.1.0{{- end }}

{{/*
The chart's values in either calling context, as JSON (templates return strings; callers use
`include "codex-sentinel.valuesJson" . | fromJson`).
*/}}
{{- define "codex-sentinel.valuesJson" -}}
{{- if hasKey .Values "codex-sentinel" -}}
{{- index .Values "codex-sentinel" | toJson -}}
{{- else -}}
{{- .Values | toJson -}}
{{- end -}}
{{- end }}

{{- define "codex-sentinel.name" -}}
{{- default "codex-sentinel" .v.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects; `$c` context. */}}
{{- define "codex-sentinel.fullname" -}}
{{- if .v.fullnameOverride }}
{{- .v.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "codex-sentinel.name" . }}
{{- if contains $name .release.Name }}
{{- .release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Builds the `$c` context from a root-like context (`.Values`, `.Release`). */}}
{{- define "codex-sentinel.ctxJson" -}}
{{- /* A parent chart may pass only Values and Release: the cluster version is then unknown (""). */}}
{{- $kubeVersion := "" }}
{{- with .Capabilities }}{{ $kubeVersion = .KubeVersion.Version }}{{ end }}
{{- dict "v" (include "codex-sentinel.valuesJson" . | fromJson) "release" (dict "Name" .Release.Name "Namespace" .Release.Namespace "Service" .Release.Service) "kubeVersion" $kubeVersion | toJson }}
{{- end }}

{{/*
The one label that ties pods, Service and monitors together. Not app.kubernetes.io/name: in your
own pod those labels describe your application, and a second value for the key would clash.
*/}}
{{- define "codex-sentinel.selectorLabelsC" -}}
codex-sentinel/instance: {{ include "codex-sentinel.fullname" . }}
{{- end }}

{{/* Labels for the pod template that the Service and PodMonitor select. Public. */}}
{{- define "codex-sentinel.selectorLabels" -}}
{{- include "codex-sentinel.selectorLabelsC" (include "codex-sentinel.ctxJson" . | fromJson) }}
{{- end }}

{{/* Labels of this chart's own objects (root context of this chart). */}}
{{- define "codex-sentinel.labels" -}}
{{- $c := include "codex-sentinel.ctxJson" . | fromJson -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "codex-sentinel.name" $c }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "codex-sentinel.selectorLabelsC" $c }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: codex-monitoring
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "codex-sentinel.configMapName" -}}
{{- include "codex-sentinel.fullname" . }}-config
{{- end }}

{{- define "codex-sentinel.secretName" -}}
{{- if .v.existingSecret }}{{ .v.existingSecret }}{{ else }}{{ include "codex-sentinel.fullname" . }}{{ end }}
{{- end }}

{{/*
Secret values → environment variables. One table: the Secret's keys, the container's env and
the README list come from it.
*/}}
{{- define "codex-sentinel.secretVars" -}}
{{- toJson (list
  (list "alertWebhookUrl" "CODEX_ALERT_WEBHOOK_URL")
  (list "smtpPassword" "CODEX_ALERT_SMTP_PASS")
  (list "alertmanagerUrl" "CODEX_ALERTMANAGER_URL")
  (list "alertMaintenanceToken" "CODEX_ALERT_MAINTENANCE_TOKEN")
  (list "alertWebhookHeaders" "CODEX_ALERT_WEBHOOK_HEADERS")
  (list "newRelicLicenseKey" "NEW_RELIC_LICENSE_KEY")) }}
{{- end }}

{{/* True ("true") when the chart creates a Secret: some value given and no existingSecret. */}}
{{- define "codex-sentinel.createSecret" -}}
{{- $any := false }}
{{- range $pair := include "codex-sentinel.secretVars" . | fromJsonArray }}
{{- if index $.v.secrets (index $pair 0) }}{{ $any = true }}{{ end }}
{{- end }}
{{- if and $any (not .v.existingSecret) }}true{{ end }}
{{- end }}

{{/* Checks across values that the schema cannot phrase clearly. */}}
{{- define "codex-sentinel.validate" -}}
{{- $v := .v -}}
{{- if $v.existingSecret }}
{{- range $pair := include "codex-sentinel.secretVars" . | fromJsonArray }}
{{- if index $v.secrets (index $pair 0) }}
{{- fail (printf "codex-sentinel: secrets.%s is set together with existingSecret %q: put %s into that Secret instead" (index $pair 0) $v.existingSecret (index $pair 1)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (hasPrefix "newrelic" $v.export.preset) (not $v.secrets.newRelicLicenseKey) (not $v.existingSecret) }}
{{- fail (printf "codex-sentinel: export.preset=%s needs the license key: set secrets.newRelicLicenseKey or existingSecret (key NEW_RELIC_LICENSE_KEY)" $v.export.preset) }}
{{- end }}
{{- if and $v.agent.nativeSidecar .kubeVersion (not (semverCompare ">=1.29.0-0" (.kubeVersion | default "0.0.0"))) }}
{{- fail (printf "codex-sentinel: agent.nativeSidecar needs Kubernetes 1.29 or later (native sidecars: init containers with restartPolicy Always); this cluster is %s. Set agent.nativeSidecar=false" .kubeVersion) }}
{{- end }}
{{- if and $v.codexHome.enabled (eq $v.codexHome.volume.type "existingClaim") (not $v.codexHome.volume.existingClaim) }}
{{- fail "codex-sentinel: codexHome.volume.type=existingClaim needs codexHome.volume.existingClaim (the claim's name)" }}
{{- end }}
{{- if and $v.webConfig.tls.enabled (not $v.webConfig.tls.secretName) }}
{{- fail "codex-sentinel: webConfig.tls.enabled needs webConfig.tls.secretName (a kubernetes.io/tls Secret with tls.crt and tls.key)" }}
{{- end }}
{{- if and $v.networkPolicy.enabled (not $v.deployment.enabled) }}
{{- fail "codex-sentinel: networkPolicy.enabled needs deployment.enabled (in your own pod spec, the pod's labels and ports are yours: write the policy there)" }}
{{- end }}
{{- if and $v.serviceMonitor.enabled $v.podMonitor.enabled }}
{{- fail "codex-sentinel: enable serviceMonitor or podMonitor, not both (the agent would be scraped twice)" }}
{{- end }}
{{- if and $v.serviceMonitor.enabled (not $v.service.enabled) }}
{{- fail "codex-sentinel: serviceMonitor.enabled needs service.enabled (a ServiceMonitor scrapes through the Service)" }}
{{- end }}
{{- if and (eq $v.operationsLog.volume.type "existingClaim") (not $v.operationsLog.volume.existingClaim) }}
{{- fail "codex-sentinel: operationsLog.volume.type=existingClaim needs operationsLog.volume.existingClaim (the claim's name)" }}
{{- end }}
{{- if and (eq $v.operationsLog.volume.type "existingVolume") $v.deployment.enabled }}
{{- $found := false }}
{{- range $v.extraVolumes }}{{ if eq .name $v.operationsLog.volume.name }}{{ $found = true }}{{ end }}{{ end }}
{{- if not $found }}
{{- fail (printf "codex-sentinel: operationsLog.volume.type=existingVolume needs a volume named %q in extraVolumes (the Deployment defines no other volumes)" $v.operationsLog.volume.name) }}
{{- end }}
{{- end }}
{{- /* Secret values belong in the Secret: a ConfigMap is readable by anyone who can read the namespace's configuration. */}}
{{- $cfg := default dict $v.config }}
{{- range $secret := list
  (list "alerting" "webhook" "url" "alertWebhookUrl")
  (list "alerting" "email" "smtpPass" "smtpPassword")
  (list "alerting" "alertmanager" "url" "alertmanagerUrl")
  (list "alerting" "maintenance" "token" "alertMaintenanceToken")
  (list "alerting" "webhook" "headers" "alertWebhookHeaders")
  (list "export" "otlp" "apiKey" "newRelicLicenseKey") }}
{{- $section := index $cfg (index $secret 0) | default dict }}
{{- $sub := index $section (index $secret 1) | default dict }}
{{- if index $sub (index $secret 2) }}
{{- fail (printf "codex-sentinel: config.%s.%s.%s is a secret and would land in a ConfigMap: set secrets.%s (or existingSecret) instead" (index $secret 0) (index $secret 1) (index $secret 2) (index $secret 3)) }}
{{- end }}
{{- end }}
{{- if and $v.codexBinary.copyFrom.enabled $v.codexBinary.fromApplication.enabled }}
{{- fail "codex-sentinel: enable codexBinary.fromApplication or codexBinary.copyFrom, not both (fromApplication runs the application's Codex without a copy)" }}
{{- end }}
{{- if and $v.codexBinary.copyFrom.enabled (not $v.codexBinary.copyFrom.image.repository) (not $v.deployment.enabled) }}
{{- fail "codex-sentinel: codexBinary.copyFrom.image.repository is needed when deployment.enabled is false (there is no app image to copy from)" }}
{{- end }}
{{- end }}

{{/*
monitoring.json: the user's `config` with the keys the chart must own laid over it (they must
agree with the container's ports, probes and volumes).
*/}}
{{- define "codex-sentinel.monitoringConfig" -}}
{{- $v := .v -}}
{{- /* The disk-usage check judges each log directory against its volume's sizeLimit: statvfs
       on an emptyDir reports the node's disk, so the chart passes the limits in. */ -}}
{{- $oplog := dict "dir" $v.operationsLog.agentMountPath -}}
{{- if eq $v.operationsLog.volume.type "emptyDir" }}
{{- $_ := set $oplog "sizeLimit" (toString $v.operationsLog.volume.sizeLimit) }}
{{- end }}
{{- $managed := dict
  "healthMonitoring" (dict "endpoints" (dict "enabled" true "host" $v.agent.listenHost "port" (int $v.agent.port)))
  "stateDir" $v.agent.stateDir.mountPath
  "operationsLog" $oplog
  "logging" (dict "format" $v.agent.logFormat) -}}
{{- if include "codex-sentinel.webConfigOn" $v }}
{{- $_ := set $managed.healthMonitoring.endpoints "webConfigFile" (include "codex-sentinel.webConfigPath" .) }}
{{- end }}
{{- $audit := (default dict $v.config).auditLog | default dict }}
{{- $stateDir := printf "%s/" (trimSuffix "/" $v.agent.stateDir.mountPath) }}
{{- if and $audit.enabled $audit.dir (not $audit.sizeLimit) (hasPrefix $stateDir (printf "%s/" (trimSuffix "/" $audit.dir))) }}
{{- $_ := set $managed "auditLog" (dict "sizeLimit" (toString $v.agent.stateDir.sizeLimit)) }}
{{- end }}
{{- if $v.codexBinary.copyFrom.enabled }}
{{- $_ := set $managed "codex" (dict "executable" (printf "%s/codex" (trimSuffix "/" $v.codexBinary.mountPath)) "executableIn" "agent") }}
{{- else if $v.codexBinary.fromApplication.enabled }}
{{- $_ := set $managed "codex" (dict "executable" $v.codexBinary.fromApplication.path "executableIn" "application") }}
{{- end }}
{{- $p := $v.export.preset -}}
{{- if eq $p "collector" }}
{{- $_ := set $managed "export" (dict "otlp" (dict "enabled" true "preset" "collector" "endpoint" $v.export.collector.endpoint "protocol" $v.export.collector.protocol)) }}
{{- else if hasPrefix "newrelic" $p }}
{{- $_ := set $managed "export" (dict "otlp" (dict "enabled" true "preset" $p)) }}
{{- else if eq $p "datadog" }}
{{- $dd := $v.export.datadog }}
{{- $statsd := dict "enabled" (eq $dd.mode "dogstatsd") }}
{{- if and (eq $dd.mode "dogstatsd") (eq $dd.dogstatsdTransport "socket") }}
{{- $_ := set $statsd "url" (printf "unix://%s" $dd.socketPath) }}
{{- else if eq $dd.mode "dogstatsd" }}
{{- $_ := set $statsd "port" (int $dd.dogstatsdPort) }}
{{- end }}
{{- if eq $dd.mode "dogstatsd" }}
{{- range $k := list "env" "service" "version" }}
{{- if index $dd $k }}{{ $_ := set $statsd $k (index $dd $k) }}{{ end }}
{{- end }}
{{- end }}
{{- $otlp := dict "enabled" (eq $dd.mode "otlp") }}
{{- if eq $dd.mode "otlp" }}
{{- $_ := set $otlp "preset" "datadog" }}
{{- $_ := set $otlp "protocol" "grpc" }}
{{- end }}
{{- $_ := set $managed "export" (dict "otlp" $otlp "statsd" $statsd) }}
{{- end }}
{{- mustMergeOverwrite (deepCopy (default dict $v.config)) $managed | toPrettyJson }}
{{- end }}

{{/* Environment of the agent container; `$c` context. */}}
{{- define "codex-sentinel.env" -}}
{{- $v := .v -}}
# Downward API: resource attributes of the exported metrics (k8s.pod.name, …).
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: K8S_CONTAINER_NAME
  value: {{ $v.agent.containerName | quote }}
{{- if $v.codexHome.enabled }}
# The application's Codex home, read-only: deeper probes run with the application's login.
- name: CODEX_HOME
  value: {{ $v.codexHome.agentMountPath | quote }}
{{- end }}
# Datadog's origin detection: the pod UID as the entity id.
- name: DD_ENTITY_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
{{- if eq $v.export.preset "datadog" }}
{{- if and $v.deployment.enabled (eq $v.export.datadog.mode "dogstatsd") }}
# Unified service tagging: from the pod's tags.datadoghq.com/* labels (the chart's Deployment).
{{- range $k := list "env" "service" "version" }}
{{- if index $v.export.datadog $k }}
- name: DD_{{ upper $k }}
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['tags.datadoghq.com/{{ $k }}']
{{- end }}
{{- end }}
{{- end }}
{{- if not (and (eq $v.export.datadog.mode "dogstatsd") (eq $v.export.datadog.dogstatsdTransport "socket")) }}
# The Datadog agent runs on every node (DaemonSet with host ports): reach it on the node's IP.
- name: DD_AGENT_HOST
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
{{- end }}
{{- if eq $v.export.datadog.mode "otlp" }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ printf "http://$(DD_AGENT_HOST):%d" (int $v.export.datadog.otlpPort) | quote }}
{{- end }}
{{- end }}
{{- $secretName := include "codex-sentinel.secretName" . }}
{{- range $pair := include "codex-sentinel.secretVars" . | fromJsonArray }}
{{- if or $v.existingSecret (index $v.secrets (index $pair 0)) }}
- name: {{ index $pair 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ index $pair 1 }}
      {{- if $v.existingSecret }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- with $v.agent.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* "true" when the agent runs as the application's user and group; `.v` values. codexHome:
auth.json is 0600, only that user reads it. codexBinary.fromApplication: only that user may enter
an application process's /proc/<pid>/root without CAP_SYS_PTRACE. */}}
{{- define "codex-sentinel.agentIsApp" -}}
{{- if or .codexHome.enabled .codexBinary.fromApplication.enabled }}true{{ end }}
{{- end }}

{{/* "true" when DogStatsD goes to the node agent's Unix socket; `.v` values. */}}
{{- define "codex-sentinel.dsdSocket" -}}
{{- $dd := .export.datadog }}
{{- if and (eq .export.preset "datadog") (eq $dd.mode "dogstatsd") (eq $dd.dogstatsdTransport "socket") }}true{{ end }}
{{- end }}

{{- define "codex-sentinel.configPath" -}}/etc/codex-sentinel/monitoring.json{{- end }}

{{/* "true" when the web config file is rendered (TLS or credentials); `.v` values. */}}
{{- define "codex-sentinel.webConfigOn" -}}
{{- if or .webConfig.tls.enabled .webConfig.basicAuthUsers .webConfig.bearerTokens }}true{{ end }}
{{- end }}
{{- define "codex-sentinel.webConfigPath" -}}/etc/codex-sentinel-web/web.yml{{- end }}
{{- define "codex-sentinel.tlsDir" -}}/etc/codex-sentinel-tls{{- end }}
{{- define "codex-sentinel.webConfigSecretName" -}}{{ include "codex-sentinel.fullname" . }}-web-config{{- end }}

{{/* The web config file (exporter toolkit format); `$c` context. */}}
{{- define "codex-sentinel.webConfigFile" -}}
{{- $w := .v.webConfig -}}
{{- $file := dict }}
{{- if $w.tls.enabled }}
{{- $dir := include "codex-sentinel.tlsDir" . }}
{{- $_ := set $file "tls_server_config" (dict "cert_file" (printf "%s/tls.crt" $dir) "key_file" (printf "%s/tls.key" $dir)) }}
{{- end }}
{{- with $w.basicAuthUsers }}{{ $_ := set $file "basic_auth_users" . }}{{ end }}
{{- with $w.bearerTokens }}{{ $_ := set $file "bearer_tokens" . }}{{ end }}
{{- toYaml $file }}
{{- end }}

{{/* repository[:tag] of an image value (repository, tag). */}}
{{- define "codex-sentinel.imageRef" -}}
{{- if .tag }}{{ printf "%s:%s" .repository .tag }}{{ else }}{{ .repository }}{{ end }}
{{- end }}

{{- define "codex-sentinel.image" -}}
{{- $img := .v.image -}}
{{- $tag := default (include "codex-sentinel.appVersion" .) $img.tag -}}
{{- if $img.digest }}{{ printf "%s@%s" $img.repository $img.digest }}{{ else }}{{ printf "%s:%s" $img.repository $tag }}{{ end }}
{{- end }}

{{/*
The agent container, for a pod spec's `containers:` list. Public; include it with nindent:

  containers:
    - name: my-app
      …
    {{- include "codex-sentinel.container" . | nindent 4 }}
*/}}
{{- define "codex-sentinel.container" -}}
{{- $c := include "codex-sentinel.ctxJson" . | fromJson -}}
{{- include "codex-sentinel.validate" $c -}}
{{- if not $c.v.agent.nativeSidecar }}
{{- include "codex-sentinel.agentContainer" $c }}
{{- end }}
{{- end }}

{{/* The agent's container spec; `$c` context. */}}
{{- define "codex-sentinel.agentContainer" -}}
{{- $c := . -}}
{{- $v := $c.v -}}
- name: {{ $v.agent.containerName }}
  image: {{ include "codex-sentinel.image" $c | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: ["--config", {{ include "codex-sentinel.configPath" $c | quote }}]
  ports:
    - name: http-metrics
      containerPort: {{ int $v.agent.port }}
      protocol: TCP
  env:
    {{- include "codex-sentinel.env" $c | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /livez
      port: http-metrics
      {{- if $v.webConfig.tls.enabled }}
      scheme: HTTPS
      {{- end }}
    {{- toYaml $v.agent.livenessProbe | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: http-metrics
      {{- if $v.webConfig.tls.enabled }}
      scheme: HTTPS
      {{- end }}
    {{- toYaml $v.agent.readinessProbe | nindent 4 }}
  resources:
    {{- toYaml $v.agent.resources | nindent 4 }}
  securityContext:
    {{- $sc := deepCopy $v.agent.securityContext }}
    {{- if include "codex-sentinel.agentIsApp" $v }}
    {{- with $v.app.securityContext.runAsUser }}{{ $_ := set $sc "runAsUser" . }}{{ end }}
    {{- with $v.app.securityContext.runAsGroup }}{{ $_ := set $sc "runAsGroup" . }}{{ end }}
    {{- end }}
    {{- toYaml $sc | nindent 4 }}
  volumeMounts:
    - name: codex-sentinel-config
      mountPath: /etc/codex-sentinel
      readOnly: true
    - name: codex-sentinel-state
      mountPath: {{ $v.agent.stateDir.mountPath }}
    - name: codex-sentinel-tmp
      mountPath: /tmp
    - name: {{ $v.operationsLog.volume.name }}
      mountPath: {{ $v.operationsLog.agentMountPath }}
      readOnly: true
    {{- if $v.codexBinary.copyFrom.enabled }}
    - name: codex-sentinel-codex-bin
      mountPath: {{ $v.codexBinary.mountPath }}
      readOnly: true
    {{- end }}
    {{- if include "codex-sentinel.dsdSocket" $v }}
    - name: codex-sentinel-dsd-socket
      mountPath: {{ dir $v.export.datadog.socketPath }}
      readOnly: true
    {{- end }}
    {{- if $v.codexHome.enabled }}
    - name: {{ $v.codexHome.volume.name }}
      mountPath: {{ $v.codexHome.agentMountPath }}
      readOnly: true
    {{- end }}
    {{- if include "codex-sentinel.webConfigOn" $v }}
    - name: codex-sentinel-web-config
      mountPath: {{ dir (include "codex-sentinel.webConfigPath" $c) }}
      readOnly: true
    {{- end }}
    {{- if $v.webConfig.tls.enabled }}
    - name: codex-sentinel-tls
      mountPath: {{ include "codex-sentinel.tlsDir" $c }}
      readOnly: true
    {{- end }}
    {{- with $v.agent.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
The init container that copies the static Codex binary for the probes (codexBinary.copyFrom),
for a pod spec's `initContainers:` list; renders nothing when that is off. Public.
`appImage` is the application image to copy from when codexBinary.copyFrom.image is empty.
*/}}
{{- define "codex-sentinel.initContainers" -}}
{{- $c := include "codex-sentinel.ctxJson" . | fromJson -}}
{{- $v := $c.v -}}
{{- $cp := $v.codexBinary.copyFrom -}}
{{- if $cp.enabled }}
{{- $image := include "codex-sentinel.imageRef" (ternary $cp.image $v.app.image (not (empty $cp.image.repository))) }}
- name: codex-sentinel-copy-codex
  image: {{ $image | quote }}
  imagePullPolicy: {{ $cp.image.pullPolicy }}
  command: ["cp", {{ $cp.path | quote }}, "/codex-bin/codex"]
  resources:
    {{- toYaml $cp.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.agent.securityContext | nindent 4 }}
  volumeMounts:
    - name: codex-sentinel-codex-bin
      mountPath: /codex-bin
{{- end }}
{{- if $v.agent.nativeSidecar }}
{{- /* After the copy: the agent's probes find Codex from their first run. */}}
{{ include "codex-sentinel.agentContainer" $c }}
  restartPolicy: Always
{{- end }}
{{- end }}

{{/*
The volumes the agent needs, for a pod spec's `volumes:` list. Public. The operations-log volume
is left out when operationsLog.volume.type is existingVolume (your pod already defines it).
*/}}
{{- define "codex-sentinel.volumes" -}}
{{- $c := include "codex-sentinel.ctxJson" . | fromJson -}}
{{- $v := $c.v -}}
- name: codex-sentinel-config
  configMap:
    name: {{ include "codex-sentinel.configMapName" $c }}
- name: codex-sentinel-state
  emptyDir:
    sizeLimit: {{ $v.agent.stateDir.sizeLimit }}
- name: codex-sentinel-tmp
  emptyDir:
    sizeLimit: 16Mi
{{- $ol := $v.operationsLog.volume }}
{{- if eq $ol.type "emptyDir" }}
- name: {{ $ol.name }}
  emptyDir:
    sizeLimit: {{ $ol.sizeLimit }}
{{- else if eq $ol.type "existingClaim" }}
- name: {{ $ol.name }}
  persistentVolumeClaim:
    claimName: {{ $ol.existingClaim }}
{{- end }}
{{- if $v.codexBinary.copyFrom.enabled }}
- name: codex-sentinel-codex-bin
  emptyDir:
    sizeLimit: 512Mi
{{- end }}
{{- if include "codex-sentinel.dsdSocket" $v }}
# The node's DogStatsD socket directory (hostPath: needs a Pod Security exception).
- name: codex-sentinel-dsd-socket
  hostPath:
    path: {{ dir $v.export.datadog.socketPath }}
    type: Directory
{{- end }}
{{- $ch := $v.codexHome }}
{{- if and $ch.enabled (eq $ch.volume.type "emptyDir") }}
- name: {{ $ch.volume.name }}
  emptyDir:
    sizeLimit: {{ $ch.volume.sizeLimit }}
{{- else if and $ch.enabled (eq $ch.volume.type "existingClaim") }}
- name: {{ $ch.volume.name }}
  persistentVolumeClaim:
    claimName: {{ $ch.volume.existingClaim }}
{{- end }}
{{- if include "codex-sentinel.webConfigOn" $v }}
- name: codex-sentinel-web-config
  secret:
    secretName: {{ include "codex-sentinel.webConfigSecretName" $c }}
    defaultMode: 0440
{{- end }}
{{- if $v.webConfig.tls.enabled }}
- name: codex-sentinel-tls
  secret:
    secretName: {{ $v.webConfig.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/* The application container's mounts: the shared operations-log directory, and its Codex
home when codexHome is on. Public. */}}
{{- define "codex-sentinel.appVolumeMounts" -}}
{{- $c := include "codex-sentinel.ctxJson" . | fromJson -}}
- name: {{ $c.v.operationsLog.volume.name }}
  mountPath: {{ $c.v.operationsLog.appMountPath }}
{{- if $c.v.codexHome.enabled }}
- name: {{ $c.v.codexHome.volume.name }}
  mountPath: {{ $c.v.codexHome.appMountPath }}
{{- end }}
{{- end }}

{{/* Pod annotations: roll the pod when monitoring.json changes. Public. */}}
{{- define "codex-sentinel.podAnnotations" -}}
{{- $c := include "codex-sentinel.ctxJson" . | fromJson -}}
checksum/codex-sentinel-config: {{ include "codex-sentinel.monitoringConfig" $c | sha256sum }}
{{- if include "codex-sentinel.webConfigOn" $c.v }}
checksum/codex-sentinel-web-config: {{ include "codex-sentinel.webConfigFile" $c | sha256sum }}
{{- end }}
{{- end }}
