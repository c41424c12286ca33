provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    environment = var.environment
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

  services = {
    gateway      = { database = false, kafka = false }
    identity     = { database = true, kafka = true }
    catalog      = { database = true, kafka = true }
    inventory    = { database = true, kafka = true }
    booking      = { database = true, kafka = true }
    payment      = { database = true, kafka = true }
    notification = { database = true, kafka = true }
  }

  nodes_cidr                 = var.nodes_cidr
  pods_cidr                  = var.pods_cidr
  services_cidr              = var.services_cidr
  master_ipv4_cidr_block     = var.master_ipv4_cidr_block
  private_services_cidr      = var.private_services_cidr
  private_endpoint           = var.private_endpoint
  master_authorized_networks = var.master_authorized_networks
  release_channel            = var.release_channel

  node_machine_type = var.node_machine_type
  node_min_count    = var.node_min_count
  node_max_count    = var.node_max_count

  postgres_tier    = var.postgres_tier
  postgres_version = var.postgres_version
  redis_memory_gb  = var.redis_memory_gb
  kafka_vcpus      = var.kafka_vcpus
  kafka_memory_gib = var.kafka_memory_gib

  kafka_topic_namespace = var.kafka_topic_namespace

  deletion_protection = var.deletion_protection
}
