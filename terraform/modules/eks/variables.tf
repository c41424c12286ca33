variable "name" {
  description = "Prefix of every resource's name."
  type        = string
}

variable "tags" {
  description = "Tags put on every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "services" {
  description = "The platform's services, each with the dependencies it uses."
  type = map(object({
    database = bool
    kafka    = bool
  }))
}

variable "namespace" {
  description = "The Kubernetes namespace of the Helm release (IRSA trusts its ServiceAccounts)."
  type        = string
}

variable "release_name" {
  description = "The Helm release name; the chart names ServiceAccounts <release>-<service> (ticketing-<service> for release ticketing)."
  type        = string
}

variable "vpc_cidr" {
  description = "The VPC's range; split into three public and three private subnets."
  type        = string
}

variable "availability_zones" {
  description = "Exactly three availability zones of the region."
  type        = list(string)
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper) instead of one per zone (zone-redundant)."
  type        = bool
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
}

variable "endpoint_public_access" {
  description = "Expose the API server's public endpoint (restricted to public_access_cidrs)."
  type        = bool
}

variable "public_access_cidrs" {
  description = "CIDR ranges allowed to reach the public API endpoint."
  type        = list(string)
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
}

variable "node_min_size" {
  description = "Least nodes."
  type        = number
}

variable "node_max_size" {
  description = "Most nodes."
  type        = number
}

variable "node_desired_size" {
  description = "Nodes at creation (Terraform ignores later changes to it)."
  type        = number
}

variable "node_ami_version" {
  description = "The EKS-optimised AL2023 AMI release Karpenter's nodes run (al2023@<this>); bumping it rolls the nodes through drift."
  type        = string
}

variable "karpenter_cpu_limit" {
  description = "The most vCPUs Karpenter's nodes may add up to (the on-sale ceiling)."
  type        = number
}

variable "postgres_instance_class" {
  description = "RDS instance class."
  type        = string
}

variable "postgres_engine_version" {
  description = "RDS for PostgreSQL major version (minor versions upgrade automatically)."
  type        = string

  validation {
    condition     = can(regex("^(15|16|17)$", var.postgres_engine_version))
    error_message = "postgres_engine_version must be a major version: 15, 16 or 17."
  }
}

variable "postgres_max_connections" {
  description = "The instance's max_connections (RDS: LEAST(DBInstanceClassMemory/9531392, 5000)); the connections alarm fires at 90% of it."
  type        = number
}

variable "alarm_emails" {
  description = "Addresses subscribed to the alarm topic (each confirms by email)."
  type        = list(string)
  default     = []
}

variable "github_repository" {
  description = "The GitHub repository (<owner>/<repo>) whose release workflow, in its `release` environment, pushes images to ECR."
  type        = string
}

variable "github_oidc_provider_arn" {
  description = "The account's existing IAM OIDC provider for token.actions.githubusercontent.com; null creates it."
  type        = string
  default     = null
}

variable "alarm_topic_arn" {
  description = "An existing SNS topic (on-call tooling, Chatbot) that also receives every alarm; null for none."
  type        = string
  default     = null
}

variable "postgres_proxy_max_connections_percent" {
  description = "The share of the instance's max_connections RDS Proxy may open (the chart's database.connectionBudget)."
  type        = number

  validation {
    condition     = var.postgres_proxy_max_connections_percent >= 10 && var.postgres_proxy_max_connections_percent <= 100
    error_message = "postgres_proxy_max_connections_percent must be between 10 and 100."
  }
}

variable "postgres_storage_gb" {
  description = "RDS allocated storage in GiB."
  type        = number
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
}

variable "kafka_version" {
  description = "Amazon MSK Kafka version."
  type        = string
}

variable "kafka_topic_namespace" {
  description = "The chart's config.kafka.topicNamespace, which the services' MSK IAM policies name topics and groups with."
  type        = string
  default     = ""
}

variable "kafka_instance_type" {
  description = "MSK broker instance type."
  type        = string
}

variable "kafka_storage_gb" {
  description = "EBS storage per MSK broker in GiB."
  type        = number
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention."
  type        = number
}

variable "deletion_protection" {
  description = "Protect the database from deletion."
  type        = bool
}
