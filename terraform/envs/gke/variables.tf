variable "project_id" {
  description = "The Google Cloud project."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "The region, e.g. europe-west1."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1."
  }
}

variable "environment" {
  description = "Environment label (e.g. production, staging)."
  type        = string
  default     = "production"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.environment))
    error_message = "environment must be a lowercase label value."
  }
}

variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "ticketing"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,16}$", var.name))
    error_message = "name must be 3-17 lowercase letters, digits or hyphens, starting with a letter (service account IDs, at most 30 characters, append -notification)."
  }
}

variable "namespace" {
  description = "The Kubernetes namespace of the Helm release."
  type        = string
  default     = "ticketing"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS label."
  }
}

variable "release_name" {
  description = "The Helm release name: Workload Identity binds the ServiceAccounts <release>-<workload>, which helm_values hands the chart."
  type        = string
  default     = "ticketing"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$", var.release_name))
    error_message = "release_name must be a short DNS label."
  }
}

variable "nodes_cidr" {
  description = "The nodes' subnet."
  type        = string
  default     = "10.10.0.0/20"

  validation {
    condition     = can(cidrhost(var.nodes_cidr, 0))
    error_message = "nodes_cidr must be a CIDR range."
  }
}

variable "pods_cidr" {
  description = "The pods' secondary range."
  type        = string
  default     = "10.20.0.0/14"

  validation {
    condition     = can(cidrhost(var.pods_cidr, 0))
    error_message = "pods_cidr must be a CIDR range."
  }
}

variable "services_cidr" {
  description = "The Services' secondary range."
  type        = string
  default     = "10.24.0.0/20"

  validation {
    condition     = can(cidrhost(var.services_cidr, 0))
    error_message = "services_cidr must be a CIDR range."
  }
}

variable "master_ipv4_cidr_block" {
  description = "The private control plane's /28."
  type        = string
  default     = "172.16.0.0/28"

  validation {
    condition     = can(cidrhost(var.master_ipv4_cidr_block, 0)) && endswith(var.master_ipv4_cidr_block, "/28")
    error_message = "master_ipv4_cidr_block must be a /28."
  }
}

variable "private_services_cidr" {
  description = "The range reserved for Cloud SQL and Memorystore (private services access)."
  type        = string
  default     = "10.64.0.0/16"

  validation {
    condition     = can(cidrhost(var.private_services_cidr, 0)) && tonumber(split("/", var.private_services_cidr)[1]) <= 24
    error_message = "private_services_cidr must be a CIDR range of /24 or larger."
  }
}

variable "private_endpoint" {
  description = "Serve the control plane on its private address only."
  type        = bool
  default     = false
}

variable "master_authorized_networks" {
  description = "CIDR ranges allowed to reach the control plane (your office, CI runners, a bastion)."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []

  validation {
    condition     = alltrue([for n in var.master_authorized_networks : can(cidrhost(n.cidr_block, 0)) && n.cidr_block != "0.0.0.0/0"])
    error_message = "master_authorized_networks must be CIDR ranges, and not 0.0.0.0/0."
  }
}

variable "release_channel" {
  description = "GKE release channel."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "node_machine_type" {
  description = "Machine type of the nodes."
  type        = string
  default     = "e2-standard-4"
}

variable "node_min_count" {
  description = "Least nodes per zone."
  type        = number
  default     = 1

  validation {
    condition     = var.node_min_count >= 0 && var.node_min_count <= 100
    error_message = "node_min_count must be between 0 and 100."
  }
}

variable "node_max_count" {
  description = "Most nodes per zone (the on-sale ceiling)."
  type        = number
  default     = 10

  validation {
    condition     = var.node_max_count >= 1 && var.node_max_count <= 1000
    error_message = "node_max_count must be between 1 and 1000."
  }
}

variable "postgres_tier" {
  description = "Cloud SQL tier."
  type        = string
  default     = "db-custom-4-16384"

  validation {
    condition     = can(regex("^db-", var.postgres_tier))
    error_message = "postgres_tier must be a Cloud SQL tier such as db-custom-4-16384."
  }
}

variable "postgres_version" {
  description = "Cloud SQL PostgreSQL version."
  type        = string
  default     = "POSTGRES_16"

  validation {
    condition     = contains(["POSTGRES_15", "POSTGRES_16", "POSTGRES_17"], var.postgres_version)
    error_message = "postgres_version must be POSTGRES_15, POSTGRES_16 or POSTGRES_17."
  }
}

variable "redis_memory_gb" {
  description = "Memorystore capacity in GiB."
  type        = number
  default     = 5

  validation {
    condition     = var.redis_memory_gb >= 5 && var.redis_memory_gb <= 300
    error_message = "redis_memory_gb must be between 5 (the STANDARD_HA minimum for read replicas) and 300."
  }
}

variable "kafka_vcpus" {
  description = "Managed Kafka vCPUs."
  type        = number
  default     = 3

  validation {
    condition     = var.kafka_vcpus >= 3
    error_message = "kafka_vcpus must be at least 3."
  }
}

variable "kafka_memory_gib" {
  description = "Managed Kafka memory in GiB (1 to 8 GiB per vCPU)."
  type        = number
  default     = 12

  validation {
    condition     = var.kafka_memory_gib >= 3
    error_message = "kafka_memory_gib must be at least 3."
  }
}

variable "deletion_protection" {
  description = "Protect the cluster and the database from destroy."
  type        = bool
  default     = true
}

variable "kafka_topic_namespace" {
  description = "The chart's config.kafka.topicNamespace (empty: none); the Kafka ACLs name topics and groups with it."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]*$", var.kafka_topic_namespace))
    error_message = "kafka_topic_namespace may hold only [A-Za-z0-9._-]."
  }
}

variable "nat_address_count" {
  description = "Static egress addresses of Cloud NAT (each carries 64,512 ports; a node takes up to 4,096 at peak)."
  type        = number
  default     = 2

  validation {
    condition     = var.nat_address_count >= 1 && var.nat_address_count <= 16 && floor(var.nat_address_count) == var.nat_address_count
    error_message = "nat_address_count must be a whole number from 1 to 16."
  }
}

variable "postgres_max_connections" {
  description = "Cloud SQL's max_connections (charts/ticketing/values-gke.yaml's connectionBudget leaves room under it)."
  type        = number
  default     = 500

  validation {
    condition     = var.postgres_max_connections >= 100 && var.postgres_max_connections <= 10000
    error_message = "postgres_max_connections must be between 100 and 10000."
  }
}

variable "alert_emails" {
  description = "Who the Cloud SQL, Memorystore and Managed Kafka alerts are mailed to."
  type        = list(string)

  validation {
    condition     = length(var.alert_emails) > 0 && alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alert_emails must list at least one e-mail address."
  }
}

variable "kafka_lag_alert_threshold" {
  description = "Messages a consumer group may lag for 15 minutes before it alerts."
  type        = number
  default     = 10000

  validation {
    condition     = var.kafka_lag_alert_threshold > 0
    error_message = "kafka_lag_alert_threshold must be positive."
  }
}

variable "github_repository" {
  description = "The GitHub repository (<owner>/<repo>) whose release workflow, run in its `release` environment, pushes images to Artifact Registry and attests them for Binary Authorization."
  type        = string

  validation {
    # GitHub's rules: an owner of alphanumerics and single inner hyphens (at most 39), a
    # repository name of [A-Za-z0-9._-] (at most 100, not . or ..).
    condition = (
      can(regex("^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}/[A-Za-z0-9._-]{1,100}$", var.github_repository))
      && !contains([".", ".."], try(split("/", var.github_repository)[1], ""))
    )
    error_message = "github_repository must be <owner>/<repo> as GitHub spells it, e.g. example-org/ticketing."
  }
}

variable "attestation_signers" {
  description = "IAM members allowed to attest images by hand for Binary Authorization, besides the release workflow's service account (github_repository), which always may: e.g. serviceAccount:<name>@<project>.iam.gserviceaccount.com."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.attestation_signers : can(regex("^(serviceAccount:|principal://|principalSet://)", m))])
    error_message = "attestation_signers must be service accounts or Workload Identity Federation principals."
  }
}

variable "binauthz_allowlist" {
  description = "Images admitted without an attestation: the operators the platform runs from their publishers' registries (External Secrets, Reloader, PgBouncer, KEDA). Mirror them into Artifact Registry and attest them to empty this."
  type        = list(string)
  default = [
    "ghcr.io/external-secrets/external-secrets*",
    "ghcr.io/stakater/reloader*",
    "docker.io/edoburu/pgbouncer*",
    "ghcr.io/kedacore/*",
  ]

  validation {
    condition     = alltrue([for p in var.binauthz_allowlist : can(regex("^[a-z0-9.-]+(:[0-9]+)?/[^*]+\\*{0,2}$", p))])
    error_message = "binauthz_allowlist entries must be registry/path patterns, with a wildcard only at the end."
  }
}
