provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    environment = var.environment
  }
}

# The operators (External Secrets, Reloader) are installed with the caller's own Google
# credentials, through the control plane's endpoint: run Terraform from a network in
# master_authorized_networks (or through the bastion when private_endpoint is set).
data "google_client_config" "this" {}

provider "helm" {
  kubernetes = {
    host                   = "https://${module.platform.cluster_endpoint}"
    token                  = data.google_client_config.this.access_token
    cluster_ca_certificate = base64decode(module.platform.cluster_ca_certificate)
  }
}

locals {
  # The chart's services and what each uses: its Secret gets exactly those keys.
  services = {
    gateway      = { database = false, kafka = false, redis = true }
    identity     = { database = true, kafka = true, redis = true }
    catalog      = { database = true, kafka = true, redis = false }
    inventory    = { database = true, kafka = true, redis = true }
    booking      = { database = true, kafka = true, redis = false }
    payment      = { database = true, kafka = true, redis = false }
    notification = { database = true, kafka = true, redis = false }
  }
}

module "platform" {
  source = "../../modules/gke"

  project_id   = var.project_id
  region       = var.region
  name         = var.name
  labels       = { environment = var.environment }
  namespace    = var.namespace
  release_name = var.release_name
  services     = local.services

  nodes_cidr                 = var.nodes_cidr
  pods_cidr                  = var.pods_cidr
  services_cidr              = var.services_cidr
  master_ipv4_cidr_block     = var.master_ipv4_cidr_block
  private_services_cidr      = var.private_services_cidr
  private_endpoint           = var.private_endpoint
  master_authorized_networks = var.master_authorized_networks
  release_channel            = var.release_channel
  nat_address_count          = var.nat_address_count

  node_machine_type = var.node_machine_type
  node_min_count    = var.node_min_count
  node_max_count    = var.node_max_count

  postgres_tier            = var.postgres_tier
  postgres_version         = var.postgres_version
  postgres_max_connections = var.postgres_max_connections
  redis_memory_gb          = var.redis_memory_gb
  kafka_vcpus              = var.kafka_vcpus
  kafka_memory_gib         = var.kafka_memory_gib

  kafka_topic_namespace = var.kafka_topic_namespace

  alert_emails              = var.alert_emails
  kafka_lag_alert_threshold = var.kafka_lag_alert_threshold

  github_repository   = var.github_repository
  attestation_signers = var.attestation_signers
  binauthz_allowlist  = var.binauthz_allowlist

  # Exact: an environment changes what runs in its cluster only in a reviewed commit.
  external_secrets_chart_version = "0.20.4"
  reloader_chart_version         = "2.2.15"
  keda_chart_version             = "2.18.2"

  deletion_protection = var.deletion_protection
}
