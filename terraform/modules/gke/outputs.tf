output "cluster_name" {
  description = "The GKE cluster."
  value       = google_container_cluster.this.name
}

output "cluster_location" {
  description = "The cluster's region."
  value       = google_container_cluster.this.location
}

output "get_credentials" {
  description = "The command that points kubectl at the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.this.name} --region ${var.region} --project ${var.project_id}"
}

output "registry" {
  description = "The image registry: images are <registry>/<service>, the chart oci://<registry>/charts/ticketing."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.this.repository_id}"
}

output "postgres_host" {
  description = "Cloud SQL's private IP address."
  value       = google_sql_database_instance.postgres.private_ip_address
}

output "postgres_user" {
  description = "The admin user `<service> bootstrap` connects as (migrations.bootstrap), never a service."
  value       = google_sql_user.app.name
}

output "postgres_password" {
  description = "Its password (kept in the state: protect the state bucket)."
  value       = random_password.postgres.result
  sensitive   = true
}

output "postgres_service_passwords" {
  description = "The password of each service's own role, ticketing_<service> (kept in the state)."
  value       = { for name, password in random_password.postgres_service : name => password.result }
  sensitive   = true
}

output "redis_host" {
  description = "Memorystore's address."
  value       = google_redis_instance.this.host
}

output "redis_port" {
  description = "Memorystore's port (6378 with in-transit encryption)."
  value       = google_redis_instance.this.port
}

output "redis_auth_string" {
  description = "Memorystore's AUTH string, shared by the Redis services: Memorystore for Redis has no ACL users."
  value       = google_redis_instance.this.auth_string
  sensitive   = true
}

output "redis_ca_certificate" {
  description = "The CA that signs Memorystore's server certificate."
  value       = try(google_redis_instance.this.server_ca_certs[0].cert, "")
}

output "kafka_bootstrap" {
  description = "Managed Kafka's bootstrap address (SASL_SSL)."
  value       = "bootstrap.${google_managed_kafka_cluster.this.cluster_id}.${var.region}.managedkafka.${var.project_id}.cloud.goog:9092"
}

output "service_accounts" {
  description = "The Google service account of each service."
  value       = { for name, sa in google_service_account.service : name => sa.email }
}

output "network_cidrs" {
  description = "Ranges the chart's NetworkPolicies allow egress to."
  value = {
    nodes            = var.nodes_cidr
    private_services = var.private_services_cidr
    control_plane    = var.master_ipv4_cidr_block
  }
}

output "signing_kek_secrets" {
  description = "The Secret Manager secret of each signing service's KEK (the signing-kek key of its Secret)."
  value       = { for name, s in google_secret_manager_secret.signing_kek : name => s.secret_id }
}
