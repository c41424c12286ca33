variable "project_id" {
  description = "The Google Cloud project everything is created in."
  type        = string
}

variable "region" {
  description = "The region of the regional cluster, Cloud SQL, Memorystore, Managed Kafka and Artifact Registry."
  type        = string
}

variable "name" {
  description = "Prefix of every resource's name."
  type        = string
}

variable "labels" {
  description = "Labels put on every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "services" {
  description = "The platform's services, each with the dependencies it uses (its Secret gets their keys)."
  type = map(object({
    database = bool
    kafka    = bool
    redis    = bool
  }))
}

variable "kafka_topic_namespace" {
  description = "The chart's config.kafka.topicNamespace, which the Kafka ACLs name topics and groups with."
  type        = string
  default     = ""
}

variable "namespace" {
  description = "The Kubernetes namespace the chart is installed in (Workload Identity binds its ServiceAccounts)."
  type        = string
}

variable "release_name" {
  description = "The Helm release name: the ServiceAccounts bound here are <release>-<workload> (output service_account_names, which helm_values hands the chart)."
  type        = string
}

variable "nodes_cidr" {
  description = "Primary range of the nodes' subnet; Managed Kafka's endpoints are placed in it too."
  type        = string
}

variable "pods_cidr" {
  description = "Secondary range for pods."
  type        = string
}

variable "services_cidr" {
  description = "Secondary range for Kubernetes Services."
  type        = string
}

variable "master_ipv4_cidr_block" {
  description = "The /28 range of the private control plane."
  type        = string
}

variable "private_services_cidr" {
  description = "The range reserved for private services access (Cloud SQL, Memorystore), as address/prefix."
  type        = string
}

variable "private_endpoint" {
  description = "Serve the control plane on its private address only (reach it through a bastion, VPN or Connect Gateway)."
  type        = bool
}

variable "master_authorized_networks" {
  description = "CIDR ranges allowed to reach the control plane."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
}

variable "release_channel" {
  description = "GKE release channel."
  type        = string
}

variable "node_machine_type" {
  description = "Machine type of the node pool."
  type        = string
}

variable "node_min_count" {
  description = "Least nodes per zone."
  type        = number
}

variable "node_max_count" {
  description = "Most nodes per zone."
  type        = number
}

variable "postgres_tier" {
  description = "Cloud SQL machine tier."
  type        = string
}

variable "postgres_version" {
  description = "Cloud SQL database version."
  type        = string
}

variable "redis_memory_gb" {
  description = "Memorystore capacity in GiB."
  type        = number
}

variable "kafka_vcpus" {
  description = "Managed Kafka vCPUs (at least 3)."
  type        = number
}

variable "kafka_memory_gib" {
  description = "Managed Kafka memory in GiB (1 to 8 per vCPU)."
  type        = number
}

variable "deletion_protection" {
  description = "Protect the cluster and the database from terraform destroy."
  type        = bool
}

variable "rbac_security_group" {
  description = "The Google Group gke-security-groups@<domain> for Kubernetes RBAC with Google Groups; null leaves it off."
  type        = string
  default     = null
}

variable "postgres_max_connections" {
  description = "Cloud SQL's max_connections; the chart's database.connectionBudget is counted against it."
  type        = number
}

variable "nat_address_count" {
  description = "Static external addresses Cloud NAT sends from (the payment processor's allowlist)."
  type        = number
}

variable "alert_emails" {
  description = "Addresses the managed services' alerts are mailed to."
  type        = list(string)
}

variable "kafka_lag_alert_threshold" {
  description = "Messages a consumer group may lag behind for 15 minutes before it alerts."
  type        = number
}

variable "attestation_signers" {
  description = "IAM members that sign Binary Authorization attestations besides the release workflow's service account (release.tf), which always does."
  type        = list(string)
}

variable "github_repository" {
  description = "The GitHub repository (<owner>/<repo>) whose release workflow, in its `release` environment, pushes and attests images."
  type        = string
}

variable "binauthz_allowlist" {
  description = "Image name patterns admitted without an attestation (third-party operators), besides Google's system images."
  type        = list(string)
}

variable "external_secrets_chart_version" {
  description = "The external-secrets Helm chart (>= 0.17, which serves external-secrets.io/v1)."
  type        = string
}

variable "reloader_chart_version" {
  description = "Stakater's reloader Helm chart."
  type        = string
}

variable "keda_chart_version" {
  description = "KEDA's Helm chart (>= 2.11, whose prometheus triggers authenticate to Google Managed Prometheus with Workload Identity)."
  type        = string
}
