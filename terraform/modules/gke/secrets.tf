# Every secret the workloads read lives in Secret Manager, one JSON object per Kubernetes
# Secret (its keys are the Secret's keys, charts/ticketing/values.yaml), composed here from
# what Terraform generates. The External Secrets Operator copies them into the namespace
# as the chart's ExternalSecrets ask (externalSecrets in the env's helm_values), reading
# them as its own service account; no workload reads Secret Manager, and nobody types a
# secret into kubectl. Reloader restarts a Deployment when its Secret changes.

locals {
  # The chart's fullname (its ticketing.fullname helper), which names PgBouncer's Service.
  chart_fullname = strcontains(var.release_name, "ticketing") ? var.release_name : "${var.release_name}-ticketing"
  pgbouncer_host = "${local.chart_fullname}-pgbouncer.${var.namespace}.svc"
  postgres_host  = google_sql_database_instance.postgres.private_ip_address
  redis_url      = "rediss://:${google_redis_instance.this.auth_string}@${google_redis_instance.this.host}:${google_redis_instance.this.port}"

  # The services whose signing keys are sealed with a KEK (ADR 0032).
  signing_services = toset([for name in ["identity", "notification"] : name if contains(keys(var.services), name)])
  # The workloads with client credentials at identity (service tokens).
  service_clients = toset([for name in ["booking", "gateway"] : name if contains(keys(var.services), name)])

  # Kubernetes Secret keys of each service.
  service_secret_data = {
    for name, s in var.services : name => merge(
      # Each service as its own role (ADR 0031): straight to Cloud SQL for the migration
      # Jobs, through the chart's PgBouncer (plain TCP inside the cluster, SCRAM; PgBouncer
      # reaches Cloud SQL over TLS) for the service (database.pooledUrlKey).
      s.database ? {
        "database-url"        = "postgres://ticketing_${name}:${random_password.postgres_service[name].result}@${local.postgres_host}:5432/ticketing_${name}?sslmode=require"
        "pooled-database-url" = "postgres://ticketing_${name}:${random_password.postgres_service[name].result}@${local.pgbouncer_host}:5432/ticketing_${name}?sslmode=disable"
      } : {},
      # Memorystore for Redis has one AUTH string and no ACL users; its CA is private.
      s.redis ? {
        "redis-url"    = local.redis_url
        "redis-ca.pem" = google_redis_instance.this.server_ca_certs[0].cert
      } : {},
      { for svc, kek in random_bytes.signing_kek : "signing-kek" => "tf1:${kek.base64}" if svc == name },
      { for svc, secret in random_password.service_client : "client-secret" => secret.result if svc == name },
      name == "identity" ? { for svc, secret in random_password.service_client : "service-client-${svc}" => secret.result } : {},
      { for svc, secret in random_password.pass_secret : "pass-secret" => secret.result if svc == name },
    )
  }

  # Remote secret -> its JSON. The payment processor's is not here: the operator writes it.
  secret_data = merge(
    { for name, data in local.service_secret_data : name => jsonencode(data) },
    {
      # The admin, for the migration Jobs' bootstrap init container only.
      "postgres-admin" = jsonencode({
        "postgres-admin-url" = "postgres://${google_sql_user.app.name}:${random_password.postgres.result}@${local.postgres_host}:5432/postgres?sslmode=require"
      })
      # PgBouncer's auth_file: one line per service role (SCRAM against these passwords).
      "pgbouncer" = jsonencode({
        "userlist.txt" = join("", [for name, password in random_password.postgres_service : "\"ticketing_${name}\" \"${password.result}\"\n"])
      })
    },
  )
  # Keys only: for_each may not iterate over the (sensitive) values.
  managed_secrets = toset(concat(keys(var.services), ["postgres-admin", "pgbouncer"]))
  remote_secrets  = setunion(local.managed_secrets, contains(keys(var.services), "payment") ? ["payment-processor"] : [])
}

# The key-encryption key sealing each signing service's keys (ADR 0032): `<id>:<base64>`.
resource "random_bytes" "signing_kek" {
  for_each = local.signing_services

  length = 32
}

# booking's and the gateway's client secrets, known to identity as service-client-<name>.
resource "random_password" "service_client" {
  for_each = local.service_clients

  length  = 48
  special = false
}

# The waiting room's admission-pass key (HS256), shared by every gateway replica.
resource "random_password" "pass_secret" {
  for_each = toset([for name in ["gateway"] : name if contains(keys(var.services), name)])

  length  = 48
  special = false
}

resource "google_secret_manager_secret" "this" {
  for_each = local.remote_secrets

  project   = var.project_id
  secret_id = "${var.name}-${each.key}"
  labels    = local.labels

  replication {
    user_managed {
      replicas {
        location = var.region
        customer_managed_encryption {
          kms_key_name = google_kms_crypto_key.secrets.id
        }
      }
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.secrets]
}

resource "google_secret_manager_secret_version" "managed" {
  for_each = local.managed_secrets

  secret      = google_secret_manager_secret.this[each.key].id
  secret_data = local.secret_data[each.key]
}

# The processor's API key and webhook secret come from its dashboard, not from Terraform:
# it starts as an empty object, and the operator adds a version with both keys
#   gcloud secrets versions add <name>-payment-processor --data-file=processor.json
# (envs/gke/README.md). payment does not start until they are there.
resource "google_secret_manager_secret_version" "payment_processor" {
  for_each = setsubtract(local.remote_secrets, local.managed_secrets)

  secret      = google_secret_manager_secret.this[each.key].id
  secret_data = jsonencode({})

  lifecycle {
    ignore_changes = [secret_data]
  }
}

# --- the store: the External Secrets Operator reads exactly these secrets ---------------

# The in-cluster operators' Google identities, each bound by Workload Identity to the
# Kubernetes ServiceAccount (namespace/name) it runs as.
locals {
  operators = {
    external-secrets = {
      account_id = "${var.name}-eso"
      title      = "External Secrets store"
      ksa        = "${var.namespace}/${local.service_account_names["external-secrets"]}"
    }
    # KEDA scales notification on its consumer lag as Google Managed Prometheus sees it
    # (values-gke.yaml): it may read metrics and nothing else; no Kafka credential is involved.
    keda = {
      account_id = "${var.name}-keda"
      title      = "KEDA operator"
      ksa        = "keda/keda-operator" # what KEDA's chart makes
    }
  }
}

resource "google_service_account" "operator" {
  for_each = local.operators

  project      = var.project_id
  account_id   = each.value.account_id
  display_name = "ticketing ${each.value.title} (Workload Identity)"
}

resource "google_service_account_iam_member" "operator" {
  for_each = local.operators

  service_account_id = google_service_account.operator[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${each.value.ksa}]"

  depends_on = [google_container_cluster.this]
}

moved {
  from = google_service_account.external_secrets
  to   = google_service_account.operator["external-secrets"]
}

moved {
  from = google_service_account_iam_member.external_secrets
  to   = google_service_account_iam_member.operator["external-secrets"]
}

resource "google_secret_manager_secret_iam_member" "external_secrets" {
  for_each = local.remote_secrets

  project   = var.project_id
  secret_id = google_secret_manager_secret.this[each.key].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.operator["external-secrets"].email}"
}

# --- the operators -----------------------------------------------------------------------

resource "helm_release" "external_secrets" {
  name             = "external-secrets"
  repository       = "https://charts.external-secrets.io"
  chart            = "external-secrets"
  version          = var.external_secrets_chart_version
  namespace        = "external-secrets"
  create_namespace = true
  atomic           = true

  values = [yamlencode({
    installCRDs = true
    # From GitHub's registry, which the Binary Authorization allowlist names.
    image          = { repository = "ghcr.io/external-secrets/external-secrets" }
    webhook        = { image = { repository = "ghcr.io/external-secrets/external-secrets" } }
    certController = { image = { repository = "ghcr.io/external-secrets/external-secrets" } }
  })]

  depends_on = [google_container_node_pool.default, google_binary_authorization_policy.this]
}

resource "helm_release" "reloader" {
  name             = "reloader"
  repository       = "https://stakater.github.io/stakater-charts"
  chart            = "reloader"
  version          = var.reloader_chart_version
  namespace        = "reloader"
  create_namespace = true
  atomic           = true

  values = [yamlencode({
    reloader = {
      # It restarts workloads of the release's namespace only.
      namespaceSelector      = "kubernetes.io/metadata.name=${var.namespace}"
      readOnlyRootFileSystem = true
    }
  })]

  depends_on = [google_container_node_pool.default, google_binary_authorization_policy.this]
}

resource "google_project_iam_member" "keda" {
  project = var.project_id
  role    = "roles/monitoring.viewer"
  member  = "serviceAccount:${google_service_account.operator["keda"].email}"
}

resource "helm_release" "keda" {
  name             = "keda"
  repository       = "https://kedacore.github.io/charts"
  chart            = "keda"
  version          = var.keda_chart_version
  namespace        = "keda"
  create_namespace = true
  atomic           = true

  values = [yamlencode({
    podIdentity = { gcp = { enabled = true, gcpIAMServiceAccount = google_service_account.operator["keda"].email } }
  })]

  depends_on = [google_container_node_pool.default, google_binary_authorization_policy.this, google_service_account_iam_member.operator["keda"]]
}
