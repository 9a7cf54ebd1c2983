{{/*
Chart name, truncated to 63 characters (a DNS label).
*/}}
{{- define "pulsehooks.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release-chart, or the release name when it already contains the chart name.
Component names add "-<service>", so it is truncated to leave room for "-delivery".
*/}}
{{- define "pulsehooks.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of one service's objects. Call with (list $ "delivery").
*/}}
{{- define "pulsehooks.componentName" -}}
{{- printf "%s-%s" (include "pulsehooks.fullname" (index . 0)) (index . 1) }}
{{- end }}

{{- define "pulsehooks.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "pulsehooks.labels" -}}
helm.sh/chart: {{ include "pulsehooks.chart" . }}
app.kubernetes.io/name: {{ include "pulsehooks.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: pulsehooks
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels of one service's objects. Call with (list $ "delivery").
*/}}
{{- define "pulsehooks.componentLabels" -}}
{{ include "pulsehooks.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
Selector labels of one service's pods. Call with (list $ "delivery").
*/}}
{{- define "pulsehooks.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pulsehooks.name" (index . 0) }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "pulsehooks.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pulsehooks.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pulsehooks.secretName" -}}
{{- default (printf "%s-secrets" (include "pulsehooks.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "pulsehooks.configMapName" -}}
{{- printf "%s-env" (include "pulsehooks.fullname" .) }}
{{- end }}

{{/*
Image reference of one service. Call with (list $ "delivery").
*/}}
{{- define "pulsehooks.image" -}}
{{- $root := index . 0 }}
{{- $svc := index $root.Values (index . 1) }}
{{- $tag := $svc.image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion }}
{{- printf "%s:%s" $svc.image.repository $tag }}
{{- end }}

{{/*
Secret keys each service receives, as environment variable → key in the Secret. A service
gets only the secrets its main.go reads (delivery receives endpoint secrets from config over
gRPC, so only config holds the master key).
*/}}
{{- define "pulsehooks.secretEnv" -}}
{{- $root := index . 0 }}
{{- $keys := dict
  "config" (list "PULSEHOOKS_ADMIN_TOKEN=admin-token" "PULSEHOOKS_INTERNAL_TOKEN=internal-token" "PULSEHOOKS_MASTER_KEY=master-key")
  "ingest" (list "PULSEHOOKS_INGEST_TOKEN=operator-token" "PULSEHOOKS_INTERNAL_TOKEN=internal-token")
  "fanout" (list "PULSEHOOKS_INTERNAL_TOKEN=internal-token")
  "delivery" (list "PULSEHOOKS_INTERNAL_TOKEN=internal-token") }}
{{- range $pair := index $keys (index . 1) }}
{{- $kv := splitList "=" $pair }}
- name: {{ index $kv 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "pulsehooks.secretName" $root }}
      key: {{ index $kv 1 }}
{{- end }}
{{- end }}

{{/*
Environment of every service container: the shared ConfigMap comes in through envFrom;
these are per pod. Call with (list $ "delivery").
*/}}
{{- define "pulsehooks.env" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
{{- $svc := index $root.Values $component -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- $listen := dict
  "config" (list "PULSEHOOKS_HTTP_ADDR=:8080" "PULSEHOOKS_GRPC_ADDR=:9090" "PULSEHOOKS_ATTEMPT_LOG_DIR=/var/lib/pulsehooks/attemptlog")
  "ingest" (list "PULSEHOOKS_HTTP_ADDR=:8081" (printf "PULSEHOOKS_DRAIN_PERIOD=%ds" (int $svc.drainSeconds)))
  "fanout" (list "PULSEHOOKS_HEALTH_ADDR=:8082")
  "delivery" (list "PULSEHOOKS_HEALTH_ADDR=:8083") }}
{{- range $pair := index $listen $component }}
{{- $kv := splitList "=" $pair }}
- name: {{ index $kv 0 }}
  value: {{ index $kv 1 | quote }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: pulsehooks-{{ $component }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),k8s.deployment.name=%s%s" (include "pulsehooks.componentName" .) (ternary (printf ",%s" $root.Values.otel.resourceAttributes) "" (ne $root.Values.otel.resourceAttributes "")) | quote }}
{{- with $svc.resources.limits }}
{{- if .memory }}
- name: GOMEMLIMIT
  valueFrom:
    resourceFieldRef:
      resource: limits.memory
{{- end }}
{{- end }}
{{- with $root.Values.nats.urlFromSecret }}
{{- if .name }}
- name: PULSEHOOKS_NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- with $root.Values.redis.urlFromSecret }}
{{- if and .name (or (eq $component "delivery") (eq $component "ingest")) }}
- name: PULSEHOOKS_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- include "pulsehooks.secretEnv" . }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with $svc.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod-level security context, the same for every service (distroless nonroot is uid 65532).
*/}}
{{- define "pulsehooks.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Container security context, the same for every service.
*/}}
{{- define "pulsehooks.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Probes on the service's health port (by name): liveness /healthz, readiness /readyz, and a
startup probe that gives start-up (stream creation, the first config snapshot) a minute.
*/}}
{{- define "pulsehooks.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: {{ . }}
  periodSeconds: 2
  timeoutSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ . }}
  periodSeconds: 10
  timeoutSeconds: 2
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ . }}
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 2
{{- end }}

{{/*
Scheduling of one service's pods: the service's affinity, else preferred anti-affinity
across nodes. Call with (list $ "delivery").
*/}}
{{- define "pulsehooks.scheduling" -}}
{{- $root := index . 0 }}
{{- $svc := index $root.Values (index . 1) -}}
affinity:
{{- if $svc.affinity }}
  {{- toYaml $svc.affinity | nindent 2 }}
{{- else }}
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "pulsehooks.selectorLabels" . | nindent 14 }}
{{- end }}
{{- with $svc.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Pod template metadata annotations of one service: a checksum of the shared settings so a
change rolls the pods. (No checksum of the secrets: a hash of a weak token in a pod annotation
can be brute-forced, and an existingSecret is not visible here; restart after rotating.)
Call with (list $ "delivery").
*/}}
{{- define "pulsehooks.podAnnotations" -}}
{{- $root := index . 0 }}
{{- $svc := index $root.Values (index . 1) -}}
checksum/env: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
{{- with $svc.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod spec fields shared by the four services. Call with (list $ "delivery").
*/}}
{{- define "pulsehooks.podCommon" -}}
{{- $root := index . 0 }}
{{- $svc := index $root.Values (index . 1) -}}
serviceAccountName: {{ include "pulsehooks.serviceAccountName" $root }}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds }}
securityContext:
  {{- include "pulsehooks.podSecurityContext" $root | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{ include "pulsehooks.scheduling" . }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- if and (eq (index . 1) "config") (not $svc.attemptLog.persistence.enabled) }}
  - name: attemptlog
    {{- toYaml $svc.attemptLog.volume | nindent 4 }}
{{- end }}
{{- end }}

{{/*
Container fields shared by the four services. Call with (list $ "delivery").
*/}}
{{- define "pulsehooks.containerCommon" -}}
{{- $root := index . 0 }}
{{- $svc := index $root.Values (index . 1) -}}
image: {{ include "pulsehooks.image" . | quote }}
imagePullPolicy: {{ $root.Values.image.pullPolicy }}
securityContext:
  {{- include "pulsehooks.containerSecurityContext" $root | nindent 2 }}
envFrom:
  - configMapRef:
      name: {{ include "pulsehooks.configMapName" $root }}
env:
  {{- include "pulsehooks.env" . | nindent 2 }}
resources:
  {{- toYaml $svc.resources | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- if eq (index . 1) "config" }}
  - name: attemptlog
    mountPath: /var/lib/pulsehooks/attemptlog
{{- end }}
{{- end }}

{{/*
Checks across values that the schema cannot express; fails the render with a clear message.
*/}}
{{- define "pulsehooks.validate" -}}
{{- if and .Values.delivery.autoscaling.enabled (gt (int .Values.delivery.autoscaling.maxReplicas) (int .Values.partitions)) }}
{{- fail (printf "delivery.autoscaling.maxReplicas (%d) exceeds partitions (%d): the extra workers would hold no partition" (int .Values.delivery.autoscaling.maxReplicas) (int .Values.partitions)) }}
{{- end }}
{{- if and (not .Values.delivery.autoscaling.enabled) (gt (int .Values.delivery.replicas) (int .Values.partitions)) }}
{{- fail (printf "delivery.replicas (%d) exceeds partitions (%d): the extra workers would hold no partition" (int .Values.delivery.replicas) (int .Values.partitions)) }}
{{- end }}
{{- range $c := list "ingest" "fanout" "delivery" }}
{{- $a := (index $.Values $c).autoscaling }}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- fail (printf "%s.autoscaling.minReplicas (%d) exceeds maxReplicas (%d)" $c (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- end }}
{{- end }}
{{- $grace := add (mul 2 (int .Values.ingest.drainSeconds)) 16 }}
{{- if lt (int .Values.ingest.terminationGracePeriodSeconds) (int $grace) }}
{{- fail (printf "ingest.terminationGracePeriodSeconds (%d) is under %d: the preStop sleep and the drain (drainSeconds %d each) and the 15 s shutdown need it" (int .Values.ingest.terminationGracePeriodSeconds) (int $grace) (int .Values.ingest.drainSeconds)) }}
{{- end }}
{{- with .Values.secrets.masterKey }}
{{- if ne (len (b64dec .)) 32 }}
{{- fail "secrets.masterKey must be standard base64 of exactly 32 bytes (openssl rand -base64 32)" }}
{{- end }}
{{- end }}
{{- if and .Values.nats.urlFromSecret.name (not .Values.nats.urlFromSecret.key) }}
{{- fail "nats.urlFromSecret.key is required with nats.urlFromSecret.name" }}
{{- end }}
{{- if and .Values.redis.urlFromSecret.name (not .Values.redis.urlFromSecret.key) }}
{{- fail "redis.urlFromSecret.key is required with redis.urlFromSecret.name" }}
{{- end }}
{{- end }}
