{{/*
ticketing.service renders every object of one service. Args (dict):
  root       the chart's root context ($)
  name       the service, e.g. "identity"
  svc        its values: defaults merged with services.<name>
  facts      its entry in "ticketing.topology" (ports, database, redis, kafka, peers)
  topology   the whole topology, for the peers' ports
  enabled    the names of the enabled services
  discovery  whether it watches its peers' EndpointSlices
*/}}
{{- define "ticketing.service" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $svc := .svc }}
{{- $facts := .facts }}
{{- $fullname := include "ticketing.component" . }}
{{- $serviceAccount := include "ticketing.serviceAccountName" . }}
{{- $ns := $root.Release.Namespace }}
{{- $sd := $svc.shutdown }}
{{- if ge (int $sd.drainDelaySeconds) (int $sd.graceSeconds) }}
{{- fail (printf "services.%s.shutdown (or defaults.shutdown): drainDelaySeconds %v must be shorter than graceSeconds %v (the binary refuses it otherwise)" $name $sd.drainDelaySeconds $sd.graceSeconds) }}
{{- end }}
{{- include "ticketing.payment.check" . }}
{{- include "ticketing.gateway.check" . }}
{{- if and $facts.consumes $svc.autoscaling.enabled (gt (int $svc.autoscaling.maxReplicas) (int $root.Values.config.kafka.topicPartitions)) }}
{{- fail (printf "services.%s.autoscaling.maxReplicas (%v) is above config.kafka.topicPartitions (%v): each replica is a member of %s's consumer groups, and members beyond the partitions get none, so they would scale for nothing. Raise topicPartitions (existing topics need kafka-topics --alter) or lower maxReplicas." $name $svc.autoscaling.maxReplicas $root.Values.config.kafka.topicPartitions $name) }}
{{- end }}
{{- $skips := list "CKV_K8S_35=the binaries read configuration from TICKETING_* environment variables only; the Secret is referenced key by key, never copied into the manifest" }}
{{- if .discovery }}
{{- $skips = append $skips "CKV_K8S_38=the gRPC clients watch their peers' EndpointSlices with this token; its Role grants only list/watch on endpointslices in this namespace" }}
{{- end }}
{{- $skips = concat $skips (include "ticketing.imageSkips" . | fromYamlArray) }}
{{- $priorityClass := $svc.priorityClassName }}
{{- if and (not $priorityClass) $facts.hotPath $root.Values.priorityClass.enabled }}
{{- $priorityClass = include "ticketing.priorityClassName" $root }}
{{- end }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $serviceAccount }}
  namespace: {{ $ns }}
  labels:
    {{- include "ticketing.labels" . | nindent 4 }}
  {{- with $svc.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
# Mounted only into the pods that watch EndpointSlices (automountServiceAccountToken below).
automountServiceAccountToken: false
{{- if .discovery }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $fullname }}-endpointslices
  namespace: {{ $ns }}
  labels:
    {{- include "ticketing.labels" . | nindent 4 }}
rules:
  # Pod discovery for per-request gRPC balancing: exactly list and watch.
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $fullname }}-endpointslices
  namespace: {{ $ns }}
  labels:
    {{- include "ticketing.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $fullname }}-endpointslices
subjects:
  - kind: ServiceAccount
    name: {{ $serviceAccount }}
    namespace: {{ $ns }}
{{- end }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $fullname }}
  namespace: {{ $ns }}
  labels:
    {{- include "ticketing.labels" . | nindent 4 }}
data:
  {{- include "ticketing.service.config" . | nindent 2 }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  namespace: {{ $ns }}
  labels:
    {{- include "ticketing.labels" . | nindent 4 }}
  annotations:
    {{- include "ticketing.checkovSkips" $skips | nindent 4 }}
    {{- with include "ticketing.reloadAnnotation" . }}
    {{- . | nindent 4 }}
    {{- end }}
spec:
  {{- if not $svc.autoscaling.enabled }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "ticketing.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "ticketing.labels" . | nindent 8 }}
        {{- with $svc.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "ticketing.service.config" . | sha256sum }}
        {{- with $svc.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $serviceAccount }}
      automountServiceAccountToken: {{ .discovery }}
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ add $sd.preStopSleepSeconds $sd.graceSeconds 5 }}
      securityContext:
        {{- include "ticketing.podSecurityContext" $root | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $priorityClass }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $svc.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $svc.topologySpread.enabled }}
      topologySpreadConstraints:
        {{- range $key, $when := dict "topology.kubernetes.io/zone" $svc.topologySpread.zone "kubernetes.io/hostname" $svc.topologySpread.node }}
        - maxSkew: 1
          topologyKey: {{ $key }}
          whenUnsatisfiable: {{ $when }}
          labelSelector:
            matchLabels:
              {{- include "ticketing.selectorLabels" $ | nindent 14 }}
          matchLabelKeys: [pod-template-hash]
        {{- end }}
      {{- end }}
      containers:
        - name: {{ $name }}
          image: {{ include "ticketing.image" . }}
          imagePullPolicy: {{ include "ticketing.imagePullPolicy" . }}
          command: [/usr/local/bin/{{ $name }}]
          args: [serve]
          ports:
            - name: grpc
              containerPort: {{ $facts.grpcPort }}
              protocol: TCP
            - name: admin
              containerPort: {{ $facts.adminPort }}
              protocol: TCP
            {{- if $facts.httpPort }}
            - name: http
              containerPort: {{ $facts.httpPort }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ $fullname }}
          {{- include "ticketing.service.secretEnv" . | nindent 10 }}
          startupProbe:
            httpGet:
              path: /healthz
              port: {{ $facts.adminPort }}
            periodSeconds: {{ $root.Values.probes.startup.periodSeconds }}
            failureThreshold: {{ $root.Values.probes.startup.failureThreshold }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: {{ $facts.adminPort }}
            periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ $root.Values.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
          readinessProbe:
            {{- if eq $root.Values.probes.readinessMode "grpc" }}
            grpc:
              port: {{ $facts.grpcPort }}
            {{- else }}
            httpGet:
              path: /readyz
              port: {{ $facts.adminPort }}
            {{- end }}
            periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ $root.Values.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
          {{- if gt (int $sd.preStopSleepSeconds) 0 }}
          lifecycle:
            # The image has no shell, so the kubelet sleeps (Kubernetes 1.30+; on 1.29 the
            # PodLifecycleSleepAction gate must be on, or the drain delay alone covers it).
            preStop:
              sleep:
                seconds: {{ $sd.preStopSleepSeconds }}
          {{- end }}
          resources:
            {{- if $facts.hotPath }}
            {{- include "ticketing.hotPathResources" $svc.resources | nindent 12 }}
            {{- else }}
            {{- toYaml $svc.resources | nindent 12 }}
            {{- end }}
          securityContext:
            {{- include "ticketing.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if and $facts.redis $root.Values.config.redis.caFromSecret }}
            - name: redis-ca
              mountPath: /etc/ticketing/redis-ca
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 16Mi
        {{- if and $facts.redis $root.Values.config.redis.caFromSecret }}
        # The Redis server's CA (Memorystore's is private), from the Secret's redis-ca.pem.
        - name: redis-ca
          secret:
            secretName: {{ include "ticketing.secretName" . }}
            items:
              - key: redis-ca.pem
                path: ca.pem
        {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  namespace: {{ $ns }}
  labels:
    {{- include "ticketing.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "ticketing.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $facts.grpcPort }}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
    - name: admin
      port: {{ $facts.adminPort }}
      targetPort: admin
      protocol: TCP
      appProtocol: http
    {{- if $facts.httpPort }}
    - name: http
      port: {{ $facts.httpPort }}
      targetPort: http
      protocol: TCP
      appProtocol: http
    {{- end }}
{{- if and $svc.autoscaling.enabled (eq (default "hpa" $svc.autoscaling.mode) "keda") }}
---
{{ include "ticketing.scaledObject" . }}
{{- else if $svc.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $fullname }}
  namespace: {{ $ns }}
  labels:
    {{- include "ticketing.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullname }}
  minReplicas: {{ $svc.autoscaling.minReplicas }}
  maxReplicas: {{ $svc.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $svc.autoscaling.targetCPUUtilizationPercentage }}
  behavior:
    {{- toYaml $svc.autoscaling.behavior | nindent 4 }}
{{- end }}
{{- if $svc.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}
  namespace: {{ $ns }}
  labels:
    {{- include "ticketing.labels" . | nindent 4 }}
spec:
  {{- if hasKey $svc.podDisruptionBudget "minAvailable" }}
  minAvailable: {{ $svc.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $svc.podDisruptionBudget.maxUnavailable }}
  {{- end }}
  # A crash-looping pod must not block node drains.
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "ticketing.selectorLabels" . | nindent 6 }}
{{- end }}
{{- if $root.Values.serviceMonitor.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ $fullname }}
  namespace: {{ $ns }}
  labels:
    {{- include "ticketing.labels" . | nindent 4 }}
    {{- with $root.Values.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "ticketing.selectorLabels" . | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ $ns }}]
  endpoints:
    - port: admin
      path: /metrics
      # Every metric carries service="<service>" (docs/observability.md); without this the
      # target's own `service` label (the Kubernetes Service, <release>-<service>) would win
      # and rename it exported_service, and the rules and dashboards would match nothing.
      honorLabels: true
      interval: {{ $root.Values.serviceMonitor.interval }}
      scrapeTimeout: {{ $root.Values.serviceMonitor.scrapeTimeout }}
{{- end }}
{{- if $root.Values.gmp.podMonitoring.enabled }}
---
# Google Cloud Managed Service for Prometheus scrapes pods, not Services: the server pods'
# admin port. Its job label is this object's name, <release>-<service>, as the
# ServiceMonitor's is the Service's; `service` is no GMP target label, so the metrics' own
# `service` label survives without honorLabels.
apiVersion: monitoring.googleapis.com/v1
kind: PodMonitoring
metadata:
  name: {{ $fullname }}
  namespace: {{ $ns }}
  labels:
    {{- include "ticketing.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- include "ticketing.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: admin
      path: /metrics
      interval: {{ $root.Values.gmp.podMonitoring.interval }}
      timeout: {{ $root.Values.gmp.podMonitoring.timeout }}
{{- end }}
{{- if $root.Values.networkPolicy.enabled }}
---
{{ include "ticketing.service.networkPolicy" . }}
{{- end }}
{{- end }}

{{/*
The ConfigMap's data: the non-secret TICKETING_* variables of one service, or of a
controller (facts.controller: no tokens to verify, so no auth section).
*/}}
{{- define "ticketing.service.config" -}}
{{- $root := .root }}
{{- $c := $root.Values.config }}
{{- $sd := .svc.shutdown }}
{{- $facts := .facts }}
TICKETING_SERVER__GRPC_ADDR: "0.0.0.0:{{ $facts.grpcPort }}"
TICKETING_SERVER__ADMIN_ADDR: "0.0.0.0:{{ $facts.adminPort }}"
TICKETING_SERVER__DRAIN_DELAY: "{{ $sd.drainDelaySeconds }}s"
TICKETING_SERVER__SHUTDOWN_GRACE: "{{ $sd.graceSeconds }}s"
TICKETING_SERVER__ENVIRONMENT: {{ $c.environment | quote }}
TICKETING_TELEMETRY__LOG_JSON: {{ $c.telemetry.logJson | quote }}
TICKETING_TELEMETRY__LOG_FILTER: {{ $c.telemetry.logFilter | quote }}
TICKETING_TELEMETRY__TRACE_SAMPLE_RATIO: {{ $c.telemetry.traceSampleRatio | quote }}
{{- with $c.telemetry.otlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
OTEL_SERVICE_NAME: {{ $.name | quote }}
{{- end }}
{{- if not $facts.controller }}
TICKETING_AUTH__JWKS_URL: {{ include "ticketing.jwksUrl" $root | quote }}
TICKETING_AUTH__IDENTITY_URL: {{ printf "http://%s.%s.svc:%v" (include "ticketing.component" (dict "root" $root "name" "identity")) $root.Release.Namespace .topology.identity.grpcPort | quote }}
{{- if eq .name "booking" }}
TICKETING_BOOKING__INVENTORY_URL: {{ printf "http://%s.%s.svc:%v" (include "ticketing.component" (dict "root" $root "name" "inventory")) $root.Release.Namespace .topology.inventory.grpcPort | quote }}
TICKETING_BOOKING__CATALOG_URL: {{ printf "http://%s.%s.svc:%v" (include "ticketing.component" (dict "root" $root "name" "catalog")) $root.Release.Namespace .topology.catalog.grpcPort | quote }}
TICKETING_BOOKING__NOTIFICATION_URL: {{ printf "http://%s.%s.svc:%v" (include "ticketing.component" (dict "root" $root "name" "notification")) $root.Release.Namespace .topology.notification.grpcPort | quote }}
TICKETING_BOOKING__PAYMENT_URL: {{ printf "http://%s.%s.svc:%v" (include "ticketing.component" (dict "root" $root "name" "payment")) $root.Release.Namespace .topology.payment.grpcPort | quote }}
{{- end }}
{{- if .discovery }}
# Balance gRPC calls over the peers' ready pods (their EndpointSlices, in this namespace).
TICKETING_DISCOVERY__ENABLED: "true"
{{- end }}
TICKETING_AUTH__ISSUER: {{ $c.auth.issuer | quote }}
TICKETING_AUTH__AUDIENCE: {{ $c.auth.audience | quote }}
{{- end }}
{{- if $facts.database }}
TICKETING_DATABASE__MIGRATE_ON_START: "false"
TICKETING_DATABASE__MAX_CONNECTIONS: {{ .svc.database.poolSize | quote }}
TICKETING_DATABASE__ACQUIRE_TIMEOUT: {{ $c.database.acquireTimeout | quote }}
{{- end }}
{{- if $facts.redis }}
TICKETING_REDIS__KEY_PREFIX: {{ $c.redis.keyPrefix | quote }}
{{- if $c.redis.caFromSecret }}
TICKETING_REDIS__CA_FILE: /etc/ticketing/redis-ca/ca.pem
{{- end }}
{{- end }}
{{- if $facts.kafka }}
TICKETING_KAFKA__BROKERS: {{ $c.kafka.brokers | quote }}
TICKETING_KAFKA__TOPIC_NAMESPACE: {{ $c.kafka.topicNamespace | quote }}
TICKETING_KAFKA__CREATE_TOPICS: {{ $c.kafka.createTopics | quote }}
TICKETING_KAFKA__TOPIC_PARTITIONS: {{ $c.kafka.topicPartitions | quote }}
TICKETING_KAFKA__TOPIC_REPLICATION: {{ $c.kafka.topicReplication | quote }}
{{- with $c.kafka.oauthbearer }}
# SASL/OAUTHBEARER with the pod's own cloud identity: no password in any Secret.
TICKETING_KAFKA__OAUTHBEARER: {{ . | quote }}
{{- end }}
{{- range $key, $value := $c.kafka.properties }}
TICKETING_KAFKA__PROPERTIES__{{ $key | upper }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- if eq .name "payment" }}
TICKETING_PAYMENT__PROVIDER: {{ .svc.provider | quote }}
{{- if eq .svc.provider "processor" }}
TICKETING_PAYMENT__PROCESSOR__BASE_URL: {{ .svc.processor.baseUrl | quote }}
{{- end }}
{{- end }}
{{- if eq .name "gateway" }}
{{- $expose := $root.Values.expose }}
TICKETING_GATEWAY__RATE_LIMITS__TRUSTED_PROXY_HOPS: {{ $expose.trustedProxyHops | quote }}
{{- with include "ticketing.gateway.frontEnd" $root }}
# The load balancer in front: production refuses 0 trusted hops behind it.
TICKETING_GATEWAY__FRONT_END: {{ . | quote }}
{{- end }}
{{- end }}
{{- if and (eq .name "notification") .svc.verifyEmailUrl }}
TICKETING_NOTIFICATION__VERIFY_EMAIL_URL: {{ .svc.verifyEmailUrl | quote }}
{{- end }}
{{- if and (eq .name "notification") .svc.resetPasswordUrl }}
TICKETING_NOTIFICATION__RESET_PASSWORD_URL: {{ .svc.resetPasswordUrl | quote }}
{{- end }}
{{- if and (eq .name "identity") .svc.bootstrapAdminEmail }}
TICKETING_IDENTITY__BOOTSTRAP_ADMIN_EMAIL: {{ .svc.bootstrapAdminEmail | quote }}
{{- end }}
{{- if eq .name "identity" }}
{{- range $name, $provider := .svc.oidcProviders }}
{{- $prefix := printf "TICKETING_IDENTITY__OIDC__PROVIDERS__%s__" (upper $name) }}
{{ $prefix }}ISSUER: {{ $provider.issuer | quote }}
{{ $prefix }}CLIENT_ID: {{ $provider.clientId | quote }}
{{ $prefix }}REDIRECT_URI: {{ $provider.redirectUri | quote }}
{{- end }}
{{- end }}
{{- range $key, $value := .svc.env }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* The env entries read from the service's Secret, key by key. */}}
{{- define "ticketing.service.secretEnv" -}}
{{- $secret := include "ticketing.secretName" . }}
{{- $facts := .facts }}
{{- $kafkaSecret := and $facts.kafka (not .root.Values.config.kafka.oauthbearer) }}
{{- $groupInstance := and $facts.consumes .root.Values.config.kafka.staticMembership }}
{{- if or $facts.database $facts.redis $kafkaSecret $groupInstance (eq .name "identity") (eq .name "payment") }}
env:
  {{- if $facts.database }}
  # Through the pooler when there is one (database.pooler); the migration Job reads
  # database-url, straight to Postgres.
  - name: TICKETING_DATABASE__URL
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: {{ include "ticketing.databaseUrlKey" . }}
  {{- end }}
  {{- if $facts.redis }}
  - name: TICKETING_REDIS__URL
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: redis-url
  {{- end }}
  {{- if $groupInstance }}
  # Static membership: a restarted container (same pod) takes its member's place and
  # partitions back at once, without a rebalance.
  - name: TICKETING_KAFKA__GROUP_INSTANCE_ID
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  {{- end }}
  {{- if $kafkaSecret }}
  - name: TICKETING_KAFKA__PROPERTIES__SASL_USERNAME
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: kafka-sasl-username
        optional: true
  - name: TICKETING_KAFKA__PROPERTIES__SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: kafka-sasl-password
        optional: true
  {{- end }}
  {{- if eq .name "gateway" }}
  # The key every replica signs and checks the waiting room's admission passes with.
  - name: TICKETING_GATEWAY__WAITING_ROOM__PASS_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: pass-secret
  {{- end }}
  {{- if or (eq .name "identity") (eq .name "notification") }}
  # The key-encryption key that seals the service's signing keys in Postgres (ADR 0032),
  # and during a KEK rotation the earlier ones, which only open what they sealed.
  - name: TICKETING_SEALING__KEK
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: signing-kek
  - name: TICKETING_SEALING__PREVIOUS_KEKS
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: signing-kek-previous
        optional: true
  {{- end }}
  {{- if or (eq .name "booking") (eq .name "gateway") }}
  # The workload's client credentials at identity, for its service tokens: booking's saga
  # acts with them; the gateway's vouch for the client addresses it hands identity.
  - name: TICKETING_AUTH__CLIENT_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: client-secret
  {{- end }}
  {{- if and (eq .name "payment") (eq .svc.provider "processor") }}
  {{- $processor := .svc.processor }}
  {{- $processorSecret := default $secret $processor.existingSecret }}
  # The processor's credentials (I9: never in the ConfigMap).
  - name: TICKETING_PAYMENT__PROCESSOR__API_KEY
    valueFrom:
      secretKeyRef:
        name: {{ $processorSecret }}
        key: {{ $processor.apiKeyKey }}
  - name: TICKETING_PAYMENT__PROCESSOR__WEBHOOK_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ $processorSecret }}
        key: {{ $processor.webhookSecretKey }}
  {{- end }}
  {{- if eq .name "identity" }}
  - name: TICKETING_IDENTITY__SERVICE_CLIENTS__BOOKING
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: service-client-booking
  - name: TICKETING_IDENTITY__SERVICE_CLIENTS__GATEWAY
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: service-client-gateway
  - name: TICKETING_IDENTITY__BOOTSTRAP_ADMIN_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: bootstrap-admin-password
        optional: true
  {{- range $name, $provider := .svc.oidcProviders }}
  - name: TICKETING_IDENTITY__OIDC__PROVIDERS__{{ upper $name }}__CLIENT_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: oidc-{{ $name }}-client-secret
  {{- end }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
ticketing.payment.check fails the render that would break I9 (money is real in
production): the simulated provider in production, a non-https processor in production,
or the provider and the processor's settings in a service's env, which lands in its
ConfigMap (for the secrets) or overrides the chart's own variables (for the rest).
*/}}
{{- define "ticketing.payment.check" -}}
{{- $production := eq .root.Values.config.environment "production" }}
{{- range $key := list "TICKETING_PAYMENT__PROVIDER" "TICKETING_PAYMENT__PROCESSOR__BASE_URL" "TICKETING_PAYMENT__PROCESSOR__API_KEY" "TICKETING_PAYMENT__PROCESSOR__WEBHOOK_SECRET" }}
{{- if hasKey $.svc.env $key }}
{{- fail (printf "services.%s.env (or defaults.env) sets %s: set the payment provider and processor through services.payment.provider and services.payment.processor (baseUrl; existingSecret, apiKeyKey and webhookSecretKey name the Secret and its keys). env lands in a ConfigMap, where the processor's secrets must never be, and would bypass the production check (I9)." $.name $key) }}
{{- end }}
{{- end }}
{{- if eq .name "payment" }}
{{- if and $production (ne .svc.provider "processor") }}
{{- fail (printf "services.payment.provider is %q with config.environment production: the simulated provider takes no real money and is refused in production (I9). Set services.payment.provider: processor, services.payment.processor.baseUrl and a Secret with the processor's keys (docs/deploy.md)." .svc.provider) }}
{{- end }}
{{- if and $production (eq .svc.provider "processor") .svc.processor.baseUrl (not (hasPrefix "https://" .svc.processor.baseUrl)) }}
{{- fail (printf "services.payment.processor.baseUrl %q must be https with config.environment production." .svc.processor.baseUrl) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
ticketing.gateway.frontEnd names what is in front of the gateway's HTTP port (mode, and
the ingress class); empty when nothing is (expose.mode none or the gateway is off).
*/}}
{{- define "ticketing.gateway.frontEnd" -}}
{{- $expose := .Values.expose }}
{{- if and .Values.services.gateway.enabled (ne $expose.mode "none") }}
{{- $expose.mode }}{{ if and (eq $expose.mode "ingress") $expose.ingress.className }} {{ $expose.ingress.className }}{{ end }}
{{- end }}
{{- end }}

{{/*
ticketing.gateway.check fails the render that would key every buyer's rate limits on the
load balancer's address: a production gateway behind an Ingress or HTTPRoute with no
trusted X-Forwarded-For hop (the binary refuses it too), or the hop count and front end
set in env, which would bypass this check.
*/}}
{{- define "ticketing.gateway.check" -}}
{{- range $key := list "TICKETING_GATEWAY__RATE_LIMITS__TRUSTED_PROXY_HOPS" "TICKETING_GATEWAY__FRONT_END" }}
{{- if hasKey $.svc.env $key }}
{{- fail (printf "services.%s.env (or defaults.env) sets %s: set expose.trustedProxyHops (and expose.mode) instead, which the chart checks against the load balancer in front." $.name $key) }}
{{- end }}
{{- end }}
{{- if eq .name "gateway" }}
{{- $frontEnd := include "ticketing.gateway.frontEnd" .root }}
{{- if and (eq .root.Values.config.environment "production") $frontEnd (eq (int .root.Values.expose.trustedProxyHops) 0) }}
{{- fail (printf "expose.trustedProxyHops is 0 with the gateway behind %q in production: every buyer would share the load balancer's rate limit. Set it to the X-Forwarded-For entries the load balancer writes: 2 for GKE's Application Load Balancer, 1 for the ALB (docs/deploy.md)." $frontEnd) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
ticketing.egressRule: one egress rule to `peers` on `ports` (TCP). No peers: any
destination on those ports (documented in values.yaml).
*/}}
{{- define "ticketing.egressRule" -}}
- ports:
    {{- range .ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
  {{- with .peers }}
  to:
    {{- include "ticketing.peers" . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
ticketing.kafkaTokenEgress: where a Kafka client gets what its OAUTHBEARER tokens need:
with config.kafka.oauthbearer gcp, the GKE metadata server (its Workload Identity token);
with aws, STS (the IRSA credentials that sign its MSK IAM token). Args: the root context.
*/}}
{{- define "ticketing.kafkaTokenEgress" -}}
{{- $oauth := .Values.config.kafka.oauthbearer }}
{{- if eq $oauth "gcp" -}}
# The GKE metadata server: OAUTHBEARER tokens for Kafka.
{{- range .Values.networkPolicy.gkeMetadataServer }}
{{ include "ticketing.egressRule" . }}
{{- end }}
{{- else if eq $oauth "aws" -}}
# STS: the credentials that sign Kafka's OAUTHBEARER (MSK IAM) tokens.
{{- range .Values.networkPolicy.awsSts }}
{{ include "ticketing.egressRule" . }}
{{- end }}
{{- end }}
{{- end }}

{{/* The NetworkPolicy of one service's server pods: only the architecture's edges. */}}
{{- define "ticketing.service.networkPolicy" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $facts := .facts }}
{{- $np := $root.Values.networkPolicy }}
{{- $clients := list }}
{{- range $other := .enabled }}
{{- if has $name (index $.topology $other).peers }}
{{- $clients = append $clients $other }}
{{- end }}
{{- end }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "ticketing.component" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "ticketing.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "ticketing.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- if $clients }}
    # gRPC from the services that call this one.
    - ports:
        - protocol: TCP
          port: {{ $facts.grpcPort }}
      from:
        {{- range $clients }}
        - podSelector:
            matchLabels:
              {{- include "ticketing.selectorLabels" (dict "root" $root "name" .) | nindent 14 }}
        {{- end }}
    {{- end }}
    {{- if eq $name "identity" }}
    # The JWKS on identity's admin port, for every service that verifies tokens.
    - ports:
        - protocol: TCP
          port: {{ $facts.adminPort }}
      from:
        {{- range .enabled }}
        {{- if ne . "identity" }}
        - podSelector:
            matchLabels:
              {{- include "ticketing.selectorLabels" (dict "root" $root "name" .) | nindent 14 }}
        {{- end }}
        {{- end }}
    {{- end }}
    {{- with $np.prometheus.peers }}
    # Prometheus scrapes /metrics on the admin port.
    - ports:
        - protocol: TCP
          port: {{ $facts.adminPort }}
      from:
        {{- include "ticketing.peers" . | nindent 8 }}
    {{- end }}
    {{- if $facts.httpPort }}
    # The public REST API (and any health-check port), from the ingress controller or
    # load balancer.
    - ports:
        {{- range $np.gatewayHttp.ports }}
        - protocol: TCP
          port: {{ . }}
        {{- end }}
      {{- with $np.gatewayHttp.peers }}
      from:
        {{- include "ticketing.peers" . | nindent 8 }}
      {{- end }}
    {{- end }}
  egress:
    # DNS.
    - ports:
        {{- range $np.dns.ports }}
        - protocol: UDP
          port: {{ . }}
        - protocol: TCP
          port: {{ . }}
        {{- end }}
      {{- with $np.dns.peers }}
      to:
        {{- include "ticketing.peers" . | nindent 8 }}
      {{- end }}
    {{- range $peer := $facts.peers }}
    {{- if has $peer $.enabled }}
    # gRPC to {{ $peer }}.
    - ports:
        - protocol: TCP
          port: {{ (index $.topology $peer).grpcPort }}
      to:
        - podSelector:
            matchLabels:
              {{- include "ticketing.selectorLabels" (dict "root" $root "name" $peer) | nindent 14 }}
    {{- end }}
    {{- end }}
    {{- if and (ne $name "identity") (has "identity" .enabled) }}
    # The JWKS on identity's admin port.
    - ports:
        - protocol: TCP
          port: {{ $.topology.identity.adminPort }}
      to:
        - podSelector:
            matchLabels:
              {{- include "ticketing.selectorLabels" (dict "root" $root "name" "identity") | nindent 14 }}
    {{- end }}
    {{- if .discovery }}
    # The Kubernetes API, to watch the peers' EndpointSlices.
    {{- include "ticketing.egressRule" $np.kubeApiServer | nindent 4 }}
    {{- end }}
    {{- if and $facts.database (eq $root.Values.database.pooler "pgbouncer") }}
    # Postgres, through PgBouncer.
    - ports:
        - protocol: TCP
          port: 5432
      to:
        - podSelector:
            matchLabels:
              {{- include "ticketing.pgbouncerSelectorLabels" $root | nindent 14 }}
    {{- else if $facts.database }}
    # Postgres (or the managed pooler in front of it).
    {{- include "ticketing.egressRule" $np.postgres | nindent 4 }}
    {{- end }}
    {{- if $facts.redis }}
    # Redis.
    {{- include "ticketing.egressRule" $np.redis | nindent 4 }}
    {{- end }}
    {{- if $facts.kafka }}
    # Kafka.
    {{- include "ticketing.egressRule" $np.kafka | nindent 4 }}
    {{- with include "ticketing.kafkaTokenEgress" $root }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- end }}
    {{- if $root.Values.config.telemetry.otlpEndpoint }}
    # The OTLP collector.
    {{- include "ticketing.egressRule" $np.otlp | nindent 4 }}
    {{- end }}
    {{- if eq $name "notification" }}
    # Mail.
    {{- include "ticketing.egressRule" $np.smtp | nindent 4 }}
    {{- end }}
    {{- if eq $name "payment" }}
    # The payment processor.
    {{- include "ticketing.egressRule" $np.paymentProcessor | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
ticketing.scaledObject: a KEDA ScaledObject (autoscaling.mode keda) in place of the plain
HPA. CPU stays a trigger; autoscaling.keda.triggers add the leading signals: prometheus
(a query over the service's metrics: request rate, waiting-room depth) and kafka (a
consumer group's lag). KEDA makes the HPA, under the service's own name.
*/}}
{{/* The TriggerAuthentication of the prometheus triggers (keda.prometheus.podIdentity). */}}
{{- define "ticketing.keda.prometheusAuthName" -}}
{{ include "ticketing.fullname" . }}-prometheus
{{- end }}

{{- define "ticketing.scaledObject" -}}
{{- $root := .root }}
{{- $svc := .svc }}
{{- $a := $svc.autoscaling }}
{{- $keda := $root.Values.keda }}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "ticketing.component" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "ticketing.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "ticketing.component" . }}
  minReplicaCount: {{ $a.minReplicas }}
  maxReplicaCount: {{ $a.maxReplicas }}
  pollingInterval: {{ $keda.pollingInterval }}
  cooldownPeriod: {{ $keda.cooldownPeriod }}
  advanced:
    horizontalPodAutoscalerConfig:
      name: {{ include "ticketing.component" . }}
      behavior:
        {{- toYaml $a.behavior | nindent 8 }}
  triggers:
    - type: cpu
      metricType: Utilization
      metadata:
        value: {{ $a.targetCPUUtilizationPercentage | quote }}
    {{- range $a.keda.triggers }}
    {{- if eq .type "prometheus" }}
    - type: prometheus
      name: {{ .name }}
      metadata:
        serverAddress: {{ default $keda.prometheus.serverAddress .serverAddress | quote }}
        query: {{ tpl .query $root | quote }}
        threshold: {{ .threshold | quote }}
      {{- if $keda.prometheus.podIdentity }}
      authenticationRef:
        name: {{ include "ticketing.keda.prometheusAuthName" $root }}
      {{- end }}
    {{- else if eq .type "kafka" }}
    {{- if $root.Values.config.kafka.oauthbearer }}
    {{- fail (printf "%s: KEDA's kafka scaler cannot authenticate with config.kafka.oauthbearer %s; use a prometheus trigger on kafka_consumer_lag_messages (docs/deploy.md)" .name $root.Values.config.kafka.oauthbearer) }}
    {{- end }}
    - type: kafka
      name: {{ .name }}
      metadata:
        bootstrapServers: {{ $root.Values.config.kafka.brokers | quote }}
        consumerGroup: {{ .consumerGroup | quote }}
        topic: {{ .topic | quote }}
        lagThreshold: {{ .lagThreshold | quote }}
        offsetResetPolicy: earliest
      {{- with $keda.kafka.authenticationRef }}
      authenticationRef:
        name: {{ . }}
      {{- end }}
    {{- end }}
    {{- end }}
{{- end }}
