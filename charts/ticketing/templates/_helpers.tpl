{{/*
Facts about the seven binaries: their ports and what each one talks to. They are not
values: they describe the code (docs/configuration.md "Ports", docs/architecture.md "Services"), so a values
file cannot make the chart disagree with the binaries. The admin port is gRPC + 1000 and
serves /healthz, /readyz and /metrics; identity also serves the JWKS there. `peers` are the
services this one calls over gRPC; `discovery` services watch their peers' EndpointSlices;
`consumes`: it has Kafka consumer groups (one member per replica).
`hotPath` services serve every step of a purchase during an on-sale: their memory request
is their limit (Guaranteed memory, evicted last) and they run at the hot-path priority.
*/}}
{{- define "ticketing.topology" -}}
gateway:
  hotPath: true
  grpcPort: 50050
  adminPort: 51050
  httpPort: 8080
  database: false
  redis: true
  kafka: false
  peers: [identity, catalog, inventory, booking, payment, notification]
identity:
  grpcPort: 50051
  adminPort: 51051
  database: true
  redis: true
  kafka: true
  peers: []
catalog:
  grpcPort: 50052
  adminPort: 51052
  database: true
  redis: false
  kafka: true
  peers: []
inventory:
  hotPath: true
  grpcPort: 50053
  adminPort: 51053
  database: true
  redis: true
  kafka: true
  consumes: true
  peers: []
booking:
  hotPath: true
  grpcPort: 50054
  adminPort: 51054
  database: true
  redis: false
  kafka: true
  consumes: true
  # identity: service tokens (client credentials) for the saga's own calls; notification:
  # revoking a cancelled booking's tickets before its seats go back on sale; payment: the
  # reconciler asking what became of a payment whose event is late.
  peers: [identity, inventory, catalog, notification, payment]
payment:
  grpcPort: 50055
  adminPort: 51055
  database: true
  redis: false
  kafka: true
  consumes: true
  peers: []
notification:
  grpcPort: 50056
  adminPort: 51056
  database: true
  redis: false
  kafka: true
  consumes: true
  peers: []
{{- end }}

{{/* The service names in start order. */}}
{{- define "ticketing.serviceNames" -}}
[gateway, identity, catalog, inventory, booking, payment, notification]
{{- end }}

{{- define "ticketing.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release prefix of every object: "ticketing" for a release named ticketing. */}}
{{- define "ticketing.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* ticketing.component: the object name of one service. Args: (dict "root" $ "name" "identity"). */}}
{{- define "ticketing.component" -}}
{{- printf "%s-%s" (include "ticketing.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ticketing.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object. */}}
{{- define "ticketing.commonLabels" -}}
helm.sh/chart: {{ include "ticketing.chart" . }}
app.kubernetes.io/part-of: ticketing
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one service's server pods. Args: (dict "root" $ "name" "identity"). */}}
{{- define "ticketing.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* commonLabels already carry app.kubernetes.io/instance: the rest of the selector labels. */}}
{{- define "ticketing.labels" -}}
{{ include "ticketing.commonLabels" .root }}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: server
{{- end }}

{{/* The image of one service: <registry>/<service>[:tag][@digest]. Args: (dict "root" $ "name" "identity" "svc" $svc). */}}
{{- define "ticketing.image" -}}
{{- $img := .root.Values.image }}
{{- $repo := .name }}
{{- with $img.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}{{ end }}
{{- $tag := default .root.Chart.AppVersion $img.tag }}
{{- $digest := "" }}
{{- with .svc.image }}
{{- with .repository }}{{ $repo = . }}{{ end }}
{{- with .tag }}{{ $tag = . }}{{ end }}
{{- with .digest }}{{ $digest = . }}{{ end }}
{{- end }}
{{- if $digest }}
{{- printf "%s:%s@%s" $repo $tag $digest }}
{{- else }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}
{{- end }}

{{/* True ("true") when the service's image is pinned by digest. */}}
{{- define "ticketing.imageHasDigest" -}}
{{- if and .svc.image .svc.image.digest }}true{{ end }}
{{- end }}

{{/*
The pull policy of a service's image: IfNotPresent when it cannot change under its name
(pinned by digest, or a tag in a registry with immutable tags), else image.pullPolicy.
*/}}
{{- define "ticketing.imagePullPolicy" -}}
{{- if or (include "ticketing.imageHasDigest" .) .root.Values.image.immutableTags }}IfNotPresent{{ else }}{{ .root.Values.image.pullPolicy }}{{ end }}
{{- end }}

{{/*
The checkov skips for a service's image reference (Deployment and migration Job alike).
Args: (dict "root" $ "name" "identity" "svc" $svc).
*/}}
{{- define "ticketing.imageSkips" -}}
{{- if not (include "ticketing.imageHasDigest" .) }}
- "CKV_K8S_43=images are referenced by release tag until services.<name>.image.digest is set (the release workflow prints the digests)"
{{- if .root.Values.image.immutableTags }}
- "CKV_K8S_15=the registry refuses to move a tag (image.immutableTags, set by terraform/), so IfNotPresent runs the same image Always would"
{{- else if ne .root.Values.image.pullPolicy "Always" }}
- "CKV_K8S_15=images are built into the node's own runtime (minikube/skaffold) and cannot be pulled from a registry"
{{- end }}
{{- end }}
{{- end }}

{{/* The hot-path PriorityClass's name. */}}
{{- define "ticketing.priorityClassName" -}}
{{- printf "%s-hot-path" (include "ticketing.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Resources with the memory request raised to the limit, for the hot path (a Guaranteed
memory reservation: the node never overcommits it, and the pod is evicted last).
*/}}
{{- define "ticketing.hotPathResources" -}}
{{- $r := deepCopy . }}
{{- if and $r.limits $r.limits.memory }}
{{- $_ := set $r "requests" (merge (dict "memory" $r.limits.memory) (omit (default dict $r.requests) "memory")) }}
{{- end }}
{{- toYaml $r }}
{{- end }}

{{/* The PgBouncer component's object name. */}}
{{- define "ticketing.pgbouncerName" -}}
{{- include "ticketing.component" (dict "root" . "name" "pgbouncer") }}
{{- end }}

{{/* Selector labels of the PgBouncer pods. */}}
{{- define "ticketing.pgbouncerSelectorLabels" -}}
app.kubernetes.io/name: pgbouncer
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: pooler
{{- end }}

{{/* Every label of the PgBouncer objects: commonLabels carry the instance already. */}}
{{- define "ticketing.pgbouncerLabels" -}}
{{ include "ticketing.commonLabels" . }}
app.kubernetes.io/name: pgbouncer
app.kubernetes.io/component: pooler
{{- end }}

{{/* The Secret key a service reads its database URL from: the pooler's when there is one. */}}
{{- define "ticketing.databaseUrlKey" -}}
{{- if eq .root.Values.database.pooler "none" }}database-url{{ else }}{{ .root.Values.database.pooledUrlKey }}{{ end }}
{{- end }}

{{/* The Secret a service reads its connection URLs and credentials from. */}}
{{- define "ticketing.secretName" -}}
{{- default (printf .root.Values.secrets.nameFormat .name) .svc.secretName }}
{{- end }}

{{/*
The ServiceAccount of one service or controller: serviceAccount.name when set (Terraform's
helm_values sets it to the name its IRSA role or Workload Identity binding trusts), else
<fullname>-<name>. Args: (dict "root" $ "name" "identity" "svc" $svc).
*/}}
{{- define "ticketing.serviceAccountName" -}}
{{- default (include "ticketing.component" .) (dig "serviceAccount" "name" "" .svc) }}
{{- end }}

{{/* The JWKS URL every service verifies tokens with: identity's admin port, unless set. */}}
{{- define "ticketing.jwksUrl" -}}
{{- if .Values.config.auth.jwksUrl }}
{{- .Values.config.auth.jwksUrl }}
{{- else }}
{{- $topo := include "ticketing.topology" . | fromYaml }}
{{- printf "http://%s.%s.svc:%v/.well-known/jwks.json" (include "ticketing.component" (dict "root" . "name" "identity")) .Release.Namespace $topo.identity.adminPort }}
{{- end }}
{{- end }}

{{/*
ticketing.checkovSkips renders checkov.io/skipN annotations from a list of "ID=reason"
strings. Each reason says why the check does not fit this object.
*/}}
{{- define "ticketing.checkovSkips" -}}
{{- range $i, $skip := . }}
checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end }}
{{- end }}

{{/* The pod security context shared by servers and migration Jobs. */}}
{{- define "ticketing.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.uid }}
runAsGroup: {{ .Values.securityContext.uid }}
fsGroup: {{ .Values.securityContext.uid }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "ticketing.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.uid }}
runAsGroup: {{ .Values.securityContext.uid }}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Network peers as NetworkPolicy `to`/`from` entries. Args: a list of peers from values
(each podSelector/namespaceSelector/ipBlock), rendered as is.
*/}}
{{- define "ticketing.peers" -}}
{{- range . }}
- {{ toYaml . | nindent 2 | trim }}
{{- end }}
{{- end }}

{{/* The ServiceAccount whose cloud identity the SecretStore reads the remote secrets as. */}}
{{- define "ticketing.externalSecrets.serviceAccountName" -}}
{{- default (include "ticketing.component" (dict "root" . "name" "external-secrets")) .Values.externalSecrets.serviceAccount.name }}
{{- end }}

{{/* The Secret externalSecrets writes the migration Jobs' Postgres admin URL to. */}}
{{- define "ticketing.externalSecrets.bootstrapSecretName" -}}
{{- default (include "ticketing.component" (dict "root" . "name" "postgres-admin")) .Values.externalSecrets.bootstrap.secretName }}
{{- end }}

{{/*
The Secret the migration Jobs' init container reads the Postgres admin from:
migrations.bootstrap.existingSecret, else externalSecrets' bootstrap Secret when there is
one; empty: no bootstrap.
*/}}
{{- define "ticketing.bootstrapSecretName" -}}
{{- $es := .Values.externalSecrets }}
{{- if .Values.migrations.bootstrap.existingSecret }}
{{- .Values.migrations.bootstrap.existingSecret }}
{{- else if and $es.enabled $es.bootstrap.remoteName }}
{{- include "ticketing.externalSecrets.bootstrapSecretName" . }}
{{- end }}
{{- end }}

{{/*
ticketing.externalSecrets.targets: remoteNames' keys -> the Secret each ExternalSecret
writes (the one that workload already reads), as YAML; empty when externalSecrets is off.
Fails on values that would leave a workload without its Secret or sync one nobody reads.
*/}}
{{- define "ticketing.externalSecrets.targets" -}}
{{- $es := .Values.externalSecrets }}
{{- if $es.enabled }}
{{- if not $es.provider }}
{{- fail "externalSecrets.enabled needs externalSecrets.provider: aws (Secrets Manager) or gcp (Secret Manager)" }}
{{- end }}
{{- if and (eq $es.provider "aws") (not (dig "aws" "region" "" $es)) }}
{{- fail "externalSecrets.provider aws needs externalSecrets.aws.region (terraform output helm_values sets it)" }}
{{- end }}
{{- if and (eq $es.provider "gcp") (not (dig "gcp" "projectId" "" $es)) }}
{{- fail "externalSecrets.provider gcp needs externalSecrets.gcp.projectId (terraform output helm_values sets it)" }}
{{- end }}
{{- if and $es.bootstrap.postgresAdminUrlTemplate (not $es.bootstrap.remoteName) }}
{{- fail "externalSecrets.bootstrap.postgresAdminUrlTemplate is set without externalSecrets.bootstrap.remoteName, the remote secret it reads" }}
{{- end }}
{{- $bootstrap := .Values.migrations.bootstrap.existingSecret }}
{{- $written := include "ticketing.externalSecrets.bootstrapSecretName" . }}
{{- if and $es.bootstrap.remoteName $bootstrap (ne $bootstrap $written) }}
{{- fail (printf "migrations.bootstrap.existingSecret is %q but externalSecrets.bootstrap writes %q: the migration Jobs would wait for a Secret nobody writes. Set both to the same name, or leave existingSecret empty." $bootstrap $written) }}
{{- end }}
{{- $targets := dict }}
{{- range $key := keys $es.remoteNames | sortAlpha }}
{{- if not (index $es.remoteNames $key) }}
{{- /* null: dropped by a later values file */ -}}
{{- else if eq $key "pgbouncer" }}
{{- if ne $.Values.database.pooler "pgbouncer" }}
{{- fail (printf "externalSecrets.remoteNames.pgbouncer is set but database.pooler is %q: no PgBouncer reads it" $.Values.database.pooler) }}
{{- end }}
{{- $_ := set $targets $key (default (printf $.Values.secrets.nameFormat "pgbouncer") $.Values.database.pgbouncer.existingSecret) }}
{{- else if eq $key "prescaler" }}
{{- if not $.Values.prescaler.enabled }}
{{- fail "externalSecrets.remoteNames.prescaler is set but prescaler.enabled is false: nobody reads it" }}
{{- end }}
{{- $_ := set $targets $key (include "ticketing.secretName" (dict "root" $ "name" $key "svc" $.Values.prescaler)) }}
{{- else if and (hasKey $.Values.services $key) (index $.Values.services $key).enabled }}
{{- $svc := index $.Values.services $key }}
{{- $_ := set $targets $key (include "ticketing.secretName" (dict "root" $ "name" $key "svc" $svc)) }}
{{- if and (eq $key "payment") (dig "processor" "existingSecret" "" $svc) (ne $svc.processor.existingSecret (index $targets $key)) }}
{{- fail (printf "services.payment.processor.existingSecret is %q, but externalSecrets.remoteNames.payment merges the processor's keys into payment's own Secret %q: leave existingSecret empty" $svc.processor.existingSecret (index $targets $key)) }}
{{- end }}
{{- else }}
{{- fail (printf "externalSecrets.remoteNames.%s: %s is not an enabled service, prescaler or pgbouncer, so no workload would read its Secret (a service switched off keeps its remote name: remove it too)" $key $key) }}
{{- end }}
{{- end }}
{{- toYaml $targets }}
{{- end }}
{{- end }}

{{/*
The reloader annotation of a workload whose Secret externalSecrets writes: a changed remote
secret restarts its pods (Stakater Reloader). Args: (dict "root" $ "name" "identity").
*/}}
{{- define "ticketing.reloadAnnotation" -}}
{{- $targets := include "ticketing.externalSecrets.targets" .root | fromYaml }}
{{- with index $targets .name }}
{{- printf "secret.reloader.stakater.com/reload: %s" (quote .) }}
{{- end }}
{{- end }}
