# The platform on Google Cloud: a VPC, a regional GKE cluster with Workload Identity and
# Dataplane V2 (which enforces the chart's NetworkPolicies), Cloud SQL for PostgreSQL on a
# private IP, Memorystore for Redis with AUTH and TLS, Managed Service for Apache Kafka,
# an Artifact Registry repository for the images and the chart, and one Google service
# account per workload, bound to its Kubernetes ServiceAccount by Workload Identity.
# secrets.tf puts every secret the workloads read in Secret Manager and installs the
# External Secrets Operator and Reloader; binauthz.tf admits only attested images;
# alerts.tf watches the managed services.

locals {
  labels      = merge(var.labels, { "app" = "ticketing", "managed-by" = "terraform" })
  db_services = toset([for name, s in var.services : name if s.database])
  # Every workload with a Google identity of its own: the services, and the pre-scaler,
  # which reads catalog.events (ADR 0024) and nothing else.
  workloads   = merge(var.services, { prescaler = { database = false, kafka = true, redis = false } })
  kafka_users = toset([for name, w in local.workloads : name if w.kafka])
  # The Kubernetes ServiceAccount of each workload, and of the External Secrets store: the
  # chart is given these names (helm_values), so the bindings below cannot drift from it.
  service_account_names = { for w in concat(keys(local.workloads), ["external-secrets"]) : w => "${var.release_name}-${w}" }
  apis = toset([
    "artifactregistry.googleapis.com",
    "binaryauthorization.googleapis.com",
    "cloudkms.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "containeranalysis.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "managedkafka.googleapis.com",
    "monitoring.googleapis.com",
    "redis.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "sts.googleapis.com",
  ])
  private_services_address = split("/", var.private_services_cidr)[0]
  private_services_prefix  = tonumber(split("/", var.private_services_cidr)[1])
}

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "apis" {
  for_each = local.apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# --- encryption ---------------------------------------------------------------------

resource "google_kms_key_ring" "this" {
  project  = var.project_id
  name     = var.name
  location = var.region

  depends_on = [google_project_service.apis]
}

# Encrypts the cluster's Secrets in etcd (application-layer secrets encryption).
resource "google_kms_crypto_key" "gke_secrets" {
  name            = "${var.name}-gke-secrets"
  key_ring        = google_kms_key_ring.this.id
  rotation_period = "7776000s"
  labels          = local.labels

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "gke_secrets" {
  crypto_key_id = google_kms_crypto_key.gke_secrets.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.this.number}@container-engine-robot.iam.gserviceaccount.com"
}

# Encrypts Secret Manager's secrets (secrets.tf).
resource "google_kms_crypto_key" "secrets" {
  name            = "${var.name}-secrets"
  key_ring        = google_kms_key_ring.this.id
  rotation_period = "7776000s"
  labels          = local.labels

  lifecycle {
    prevent_destroy = true
  }
}

# Secret Manager's service agent exists once the API has been used in the project; on a
# fresh project create it first (envs/gke/README.md).
resource "google_kms_crypto_key_iam_member" "secrets" {
  crypto_key_id = google_kms_crypto_key.secrets.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-secretmanager.iam.gserviceaccount.com"
}

# --- network ------------------------------------------------------------------------

resource "google_compute_network" "this" {
  project                 = var.project_id
  name                    = var.name
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.apis]
}

resource "google_compute_subnetwork" "nodes" {
  project                  = var.project_id
  name                     = "${var.name}-nodes"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.nodes_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Nothing reaches the VPC unless a rule allows it: GKE and its load balancers add their own
# allow rules at higher priority.
resource "google_compute_firewall" "deny_ingress" {
  project   = var.project_id
  name      = "${var.name}-deny-ingress"
  network   = google_compute_network.this.id
  direction = "INGRESS"
  priority  = 65534

  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Private nodes reach the internet (payment processor, mail) through Cloud NAT, from
# addresses of our own: a payment processor allowlists them (output nat_addresses), and
# they stay the same when NAT or the cluster is rebuilt.
resource "google_compute_address" "nat" {
  count = var.nat_address_count

  project      = var.project_id
  name         = "${var.name}-nat-${count.index}"
  region       = var.region
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"
  labels       = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_compute_router" "this" {
  project = var.project_id
  name    = var.name
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "this" {
  project                            = var.project_id
  name                               = var.name
  router                             = google_compute_router.this.name
  region                             = var.region
  nat_ip_allocate_option             = "MANUAL_ONLY"
  nat_ips                            = google_compute_address.nat[*].self_link
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  # Ports follow demand: at an on-sale every payment pod talks to one processor endpoint,
  # which a fixed 64 ports per node would exhaust. Each address carries 64,512 ports, so
  # var.nat_address_count x 64,512 / max_ports_per_vm nodes can peak at once.
  enable_dynamic_port_allocation      = true
  enable_endpoint_independent_mapping = false
  min_ports_per_vm                    = 64
  max_ports_per_vm                    = 4096

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Private services access: Cloud SQL and Memorystore get addresses in this range.
resource "google_compute_global_address" "private_services" {
  project       = var.project_id
  name          = "${var.name}-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  address       = local.private_services_address
  prefix_length = local.private_services_prefix
  network       = google_compute_network.this.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.this.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
}

# --- GKE ----------------------------------------------------------------------------

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.name}-nodes"
  display_name = "GKE nodes of ${var.name}"
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

# Google's health checkers probe the gateway's readiness (/readyz on its admin port 51050,
# the chart's HealthCheckPolicy), not the port the load balancer serves, which is the one
# GKE derives its own allow rules from: open that port to them, and only on the nodes.
resource "google_compute_firewall" "lb_health_checks" {
  project   = var.project_id
  name      = "${var.name}-lb-health-checks"
  network   = google_compute_network.this.id
  direction = "INGRESS"
  priority  = 1000

  source_ranges           = ["35.191.0.0/16", "130.211.0.0/22"]
  target_service_accounts = [google_service_account.nodes.email]

  allow {
    protocol = "tcp"
    ports    = ["51050"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_container_cluster" "this" {
  #checkov:skip=CKV_GCP_69:the default node pool is removed at creation; the managed pool below sets workload_metadata_config GKE_METADATA
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC needs a Workspace group gke-security-groups@<domain>; set var.rbac_security_group to turn it on
  project  = var.project_id
  name     = var.name
  location = var.region

  network         = google_compute_network.this.id
  subnetwork      = google_compute_subnetwork.nodes.id
  networking_mode = "VPC_NATIVE"
  # Dataplane V2 (eBPF) enforces NetworkPolicy without a separate add-on.
  datapath_provider = "ADVANCED_DATAPATH"

  # With Dataplane V2 the Calico add-on stays off; NetworkPolicy is enforced all the same.
  network_policy {
    enabled = false
  }

  dynamic "authenticator_groups_config" {
    for_each = var.rbac_security_group == null ? [] : [var.rbac_security_group]
    content {
      security_group = authenticator_groups_config.value
    }
  }

  # Node pools are managed below; the default one is removed at creation.
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = var.deletion_protection
  resource_labels          = local.labels

  release_channel {
    channel = var.release_channel
  }

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = var.private_endpoint
    master_ipv4_cidr_block  = var.master_ipv4_cidr_block

    master_global_access_config {
      enabled = true
    }
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  database_encryption {
    state    = "ENCRYPTED"
    key_name = google_kms_crypto_key.gke_secrets.id
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  enable_shielded_nodes       = true
  enable_intranode_visibility = true
  enable_legacy_abac          = false

  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  # The chart's HTTPRoute attaches to a GKE Gateway.
  gateway_api_config {
    channel = "CHANNEL_STANDARD"
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  # GKE's managed kube-state-metrics packages (HPA, POD, DEPLOYMENT) feed the chart's
  # Kubernetes alerts (HPA at its maximum, pending pods) through Managed Prometheus, which
  # scrapes the chart's PodMonitorings and evaluates its Rules.
  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS", "HPA", "POD", "DEPLOYMENT"]

    managed_prometheus {
      enabled = true
    }
  }

  maintenance_policy {
    recurring_window {
      start_time = "2025-01-01T02:00:00Z"
      end_time   = "2025-01-01T06:00:00Z"
      recurrence = "FREQ=WEEKLY;BYDAY=TU,WE,TH"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gke_secrets]
}

resource "google_container_node_pool" "default" {
  project  = var.project_id
  name     = "default"
  cluster  = google_container_cluster.this.id
  location = var.region

  autoscaling {
    min_node_count  = var.node_min_count
    max_node_count  = var.node_max_count
    location_policy = "BALANCED"
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = var.node_machine_type
    image_type      = "COS_CONTAINERD"
    disk_type       = "pd-balanced"
    disk_size_gb    = 100
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = local.labels

    metadata = {
      disable-legacy-endpoints = "true"
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }
}

# --- Artifact Registry --------------------------------------------------------------

# Images (<registry>/<service>) and the chart (oci://<registry>/charts) share one repository.
resource "google_artifact_registry_repository" "this" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption; CMEK needs the Artifact Registry service agent provisioned first, an organisation-level choice
  project       = var.project_id
  location      = var.region
  repository_id = var.name
  description   = "Images and Helm chart of the ticketing platform"
  format        = "DOCKER"
  labels        = local.labels

  docker_config {
    immutable_tags = true
  }

  depends_on = [google_project_service.apis]
}

resource "google_artifact_registry_repository_iam_member" "nodes" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.this.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.nodes.email}"
}

# --- Cloud SQL ----------------------------------------------------------------------

resource "google_sql_database_instance" "postgres" {
  #checkov:skip=CKV2_GCP_13:log_duration writes a line for every statement, thousands a second during an on-sale; Query Insights keeps statement timings without the log volume
  #checkov:skip=CKV_GCP_108:log_hostname makes Postgres resolve every client address (a reverse DNS lookup per connection) at on-sale connection rates; the logs carry the address, which names the pod
  #checkov:skip=CKV_GCP_6:ssl_mode ENCRYPTED_ONLY refuses every unencrypted connection; the services authenticate with passwords, not client certificates
  #checkov:skip=CKV_GCP_79:the services are tested against PostgreSQL 15 and 16; move to a newer major version after testing it
  project             = var.project_id
  name                = "${var.name}-postgres"
  region              = var.region
  database_version    = var.postgres_version
  deletion_protection = var.deletion_protection

  settings {
    tier              = var.postgres_tier
    edition           = "ENTERPRISE"
    availability_type = "REGIONAL"
    disk_type         = "PD_SSD"
    disk_autoresize   = true
    user_labels       = local.labels

    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.this.id
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "03:00"
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = 14
      }
    }

    maintenance_window {
      day  = 2
      hour = 3
    }

    insights_config {
      query_insights_enabled = true
    }

    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    # log_duration and log_hostname stay off: the first writes a line for every statement
    # (thousands a second during an on-sale, paid for in Cloud Logging and in latency),
    # the second a reverse DNS lookup for every connection.
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    # Slow statements are found with Query Insights (above), which keeps their timings
    # without writing their parameters (emails, names) to the logs.
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    # Set rather than derived from the tier, so the chart's connection budget and the
    # connections alert (alerts.tf) count against the same number.
    database_flags {
      name  = "max_connections"
      value = tostring(var.postgres_max_connections)
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

# One database per service (the bootstrap hands it to the service's role).
resource "google_sql_database" "service" {
  for_each = local.db_services

  project  = var.project_id
  name     = "ticketing_${each.key}"
  instance = google_sql_database_instance.postgres.name
}

resource "random_password" "postgres" {
  length  = 32
  special = false
}

# The admin `<service> bootstrap` connects as (the chart's migrations.bootstrap), never a
# service: an API-made user is a member of cloudsqlsuperuser (CREATEROLE, CREATEDB).
resource "google_sql_user" "app" {
  project  = var.project_id
  name     = "ticketing"
  instance = google_sql_database_instance.postgres.name
  password = random_password.postgres.result
}

# Each service's own role, ticketing_<service>, owning its database and reaching no other
# (docs/adr/0031). Made by the bootstrap's SQL, not as google_sql_user: API users are
# members of cloudsqlsuperuser, which reaches every role. Terraform makes the passwords.
resource "random_password" "postgres_service" {
  for_each = local.db_services

  length  = 40
  special = false
}

# --- Memorystore --------------------------------------------------------------------

resource "google_redis_instance" "this" {
  project                 = var.project_id
  name                    = var.name
  region                  = var.region
  tier                    = "STANDARD_HA"
  memory_size_gb          = var.redis_memory_gb
  redis_version           = "REDIS_7_2"
  authorized_network      = google_compute_network.this.id
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  labels                  = local.labels

  # inventory's holds must never be evicted.
  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }

  persistence_config {
    persistence_mode    = "RDB"
    rdb_snapshot_period = "ONE_HOUR"
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = "TUESDAY"
      start_time {
        hours   = 3
        minutes = 0
      }
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

# --- Managed Service for Apache Kafka ------------------------------------------------

resource "google_managed_kafka_cluster" "this" {
  project    = var.project_id
  cluster_id = var.name
  location   = var.region
  labels     = local.labels

  capacity_config {
    vcpu_count   = var.kafka_vcpus
    memory_bytes = var.kafka_memory_gib * 1024 * 1024 * 1024
  }

  gcp_config {
    access_config {
      network_configs {
        subnet = google_compute_subnetwork.nodes.id
      }
    }
  }

  rebalance_config {
    mode = "AUTO_REBALANCE_ON_SCALE_UP"
  }

  depends_on = [google_project_service.apis]
}

# --- one identity per workload ---------------------------------------------------------

resource "google_service_account" "workload" {
  for_each = local.workloads

  project      = var.project_id
  account_id   = "${var.name}-${each.key}"
  display_name = "ticketing ${each.key} (Workload Identity)"
}

moved {
  from = google_service_account.service
  to   = google_service_account.workload
}

# Each workload's Kubernetes ServiceAccount acts as its Google service account.
resource "google_service_account_iam_member" "workload_identity" {
  for_each = local.workloads

  service_account_id = google_service_account.workload[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.namespace}/${local.service_account_names[each.key]}]"

  depends_on = [google_container_cluster.this]
}

# Producers and consumers of Managed Kafka authenticate as their service account with
# SASL/OAUTHBEARER, the token coming from the GKE metadata server (Workload Identity): no
# key exists to leak, expire or be refused by the organisation's key-creation policy.
resource "google_project_iam_member" "kafka_client" {
  for_each = local.kafka_users

  project = var.project_id
  role    = "roles/managedkafka.client"
  member  = "serviceAccount:${google_service_account.workload[each.key].email}"
}

# Per-topic Kafka ACLs (ADR 0032): a topic is written only by the service that owns it, and
# each consumer group reads only its service's topics (modules/kafka-access holds the table).
# Managed Kafka names an OAUTHBEARER client User:<service account email>;
# roles/managedkafka.client above only lets it connect, the ACLs decide what it may do.
module "kafka_access" {
  source = "../kafka-access"

  topic_namespace = var.kafka_topic_namespace
  principals      = { for name in local.kafka_users : name => "User:${google_service_account.workload[name].email}" }
}

locals {
  kafka_acl_types = { Topic = "topic", Group = "consumerGroup" }
}

resource "google_managed_kafka_acl" "service" {
  for_each = module.kafka_access.by_resource

  project  = var.project_id
  location = var.region
  cluster  = google_managed_kafka_cluster.this.cluster_id
  acl_id   = startswith(each.key, "Cluster/") ? "cluster" : "${local.kafka_acl_types[split("/", each.key)[0]]}/${trimprefix(each.key, "${split("/", each.key)[0]}/")}"

  dynamic "acl_entries" {
    for_each = each.value
    content {
      principal       = acl_entries.value.principal
      permission_type = "ALLOW"
      # IdempotentWrite -> IDEMPOTENT_WRITE
      operation = upper(replace(acl_entries.value.operation, "/([a-z])([A-Z])/", "$1_$2"))
      host      = "*"
    }
  }
}

# A topic or group with no ACL at all is open to every client when the cluster allows
# everyone if no ACL is found: a wildcard ACL makes every resource have one, so what is
# not granted above is refused.
resource "google_managed_kafka_acl" "closed_by_default" {
  for_each = toset(["allTopics", "allConsumerGroups"])

  project  = var.project_id
  location = var.region
  cluster  = google_managed_kafka_cluster.this.cluster_id
  acl_id   = each.value

  dynamic "acl_entries" {
    for_each = local.kafka_users
    content {
      principal       = "User:${google_service_account.workload[acl_entries.value].email}"
      permission_type = "ALLOW"
      operation       = "DESCRIBE"
      host            = "*"
    }
  }
}

# Trace export to Cloud Trace through an in-cluster OpenTelemetry Collector, if any.
resource "google_project_iam_member" "trace_agent" {
  for_each = var.services

  project = var.project_id
  role    = "roles/cloudtrace.agent"
  member  = "serviceAccount:${google_service_account.workload[each.key].email}"
}
