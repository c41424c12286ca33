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

output "redis_host" {
  description = "Memorystore's address."
  value       = google_redis_instance.this.host
}

output "redis_port" {
  description = "Memorystore's port (6378 with in-transit encryption)."
  value       = google_redis_instance.this.port
}

output "kafka_bootstrap" {
  description = "Managed Kafka's bootstrap address (SASL_SSL, OAUTHBEARER with Workload Identity)."
  value       = "bootstrap.${google_managed_kafka_cluster.this.cluster_id}.${var.region}.managedkafka.${var.project_id}.cloud.goog:9092"
}

output "prometheus_query_url" {
  description = "Google Managed Prometheus' query API for this project (KEDA's prometheus triggers)."
  value       = "https://monitoring.googleapis.com/v1/projects/${var.project_id}/location/global/prometheus"
}

output "service_accounts" {
  description = "The Google service account of each workload (the services and prescaler) and of the External Secrets store (external-secrets)."
  value = merge(
    { for name, sa in google_service_account.workload : name => sa.email },
    { "external-secrets" = google_service_account.operator["external-secrets"].email },
  )
}

output "service_account_names" {
  description = "The Kubernetes ServiceAccount each Google service account is bound to, by workload: the chart's services.<name>.serviceAccount.name."
  value       = local.service_account_names
}

output "network_cidrs" {
  description = "Ranges the chart's NetworkPolicies allow egress to."
  value = {
    nodes            = var.nodes_cidr
    private_services = var.private_services_cidr
    control_plane    = var.master_ipv4_cidr_block
  }
}

output "remote_secrets" {
  description = "The Secret Manager secret of each Kubernetes Secret: a service's, payment-processor (the operator fills it), postgres-admin (the migrations' bootstrap), pgbouncer (userlist.txt)."
  value       = { for name, secret in google_secret_manager_secret.this : name => secret.secret_id }
}

output "nat_addresses" {
  description = "The static addresses the cluster reaches the internet from: give them to the payment processor's allowlist."
  value       = google_compute_address.nat[*].address
}

output "cluster_endpoint" {
  description = "The control plane's address (for the helm provider)."
  value       = google_container_cluster.this.endpoint
}

output "cluster_ca_certificate" {
  description = "The control plane's CA, base64 (for the helm provider)."
  value       = google_container_cluster.this.master_auth[0].cluster_ca_certificate
}

output "attestor" {
  description = "The Binary Authorization attestor and its key version: the release pipeline attests each promoted digest with them."
  value = {
    attestor    = google_binary_authorization_attestor.release.id
    key_version = "${google_kms_crypto_key.attestor.id}/cryptoKeyVersions/${data.google_kms_crypto_key_version.attestor.version}"
  }
}

output "github_release" {
  description = "The release environment's variables for Google Cloud (.github/workflows/release.yml): GCP_REGISTRY, GCP_WIF_PROVIDER, GCP_RELEASE_SA."
  value = {
    GCP_REGISTRY     = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.this.repository_id}"
    GCP_WIF_PROVIDER = google_iam_workload_identity_pool_provider.github.name
    GCP_RELEASE_SA   = google_service_account.release.email
  }
}
