variable "region" {
  description = "The AWS region, e.g. eu-west-1."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as eu-west-1."
  }
}

variable "availability_zones" {
  description = "Three availability zones of the region."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]

  validation {
    condition     = length(var.availability_zones) == 3 && length(distinct(var.availability_zones)) == 3
    error_message = "availability_zones must name exactly three different zones."
  }
}

variable "environment" {
  description = "Environment tag (e.g. production, staging)."
  type        = string
  default     = "production"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.environment))
    error_message = "environment must be lowercase letters, digits and hyphens."
  }
}

variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "ticketing"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,20}$", var.name))
    error_message = "name must be 3-21 lowercase letters, digits or hyphens, starting with a letter."
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
  description = "The Helm release name (ServiceAccounts are ticketing-<service> for release ticketing)."
  type        = string
  default     = "ticketing"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$", var.release_name))
    error_message = "release_name must be a short DNS label."
  }
}

variable "vpc_cidr" {
  description = "The VPC's range (a /16 is split into /20 private and /24 public subnets)."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && endswith(var.vpc_cidr, "/16")
    error_message = "vpc_cidr must be a /16."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones instead of one per zone."
  type        = bool
  default     = false
}

# EKS release calendar (docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html;
# endoflife.date/amazon-eks): 1.34's standard support ended on 2 December 2026, 1.35's
# (released 28 January 2026) runs to 27 March 2027. Past it, EKS bills extended support.
variable "kubernetes_version" {
  description = "EKS Kubernetes version, in standard support."
  type        = string
  default     = "1.35"

  validation {
    condition     = contains(["1.35", "1.36"], var.kubernetes_version)
    error_message = "kubernetes_version must be 1.35 or 1.36 (versions in EKS standard support)."
  }
}

variable "node_ami_version" {
  description = "The EKS-optimised AL2023 AMI release of Karpenter's nodes (github.com/awslabs/amazon-eks-ami/releases); bumping it replaces the nodes gradually."
  type        = string
  default     = "v20260818"

  validation {
    condition     = can(regex("^v[0-9]{8}$", var.node_ami_version))
    error_message = "node_ami_version must be an amazon-eks-ami release such as v20260818."
  }
}

variable "karpenter_cpu_limit" {
  description = "The most vCPUs Karpenter may add (about 270 service pods at on-sale peak fit in 200)."
  type        = number
  default     = 400

  validation {
    condition     = var.karpenter_cpu_limit >= 16
    error_message = "karpenter_cpu_limit must be at least 16."
  }
}

variable "endpoint_public_access" {
  description = "Expose the API server's public endpoint, restricted to public_access_cidrs. Off: reach the API through the VPC (VPN, bastion, CI runners inside it)."
  type        = bool
  default     = false
}

variable "public_access_cidrs" {
  description = "CIDR ranges allowed to reach the public API endpoint (your office, CI runners)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "public_access_cidrs must be CIDR ranges, and not 0.0.0.0/0."
  }

  validation {
    condition     = !var.endpoint_public_access || length(var.public_access_cidrs) > 0
    error_message = "public_access_cidrs must name at least one range when endpoint_public_access is on (EKS would otherwise open it to 0.0.0.0/0)."
  }
}

variable "node_instance_types" {
  description = "Instance types of the managed node group: the system pool the controllers run on (Karpenter adds the services' nodes)."
  type        = list(string)
  default     = ["m6i.xlarge"]

  validation {
    condition     = length(var.node_instance_types) > 0
    error_message = "node_instance_types must name at least one instance type."
  }
}

variable "node_min_size" {
  description = "Least nodes."
  type        = number
  default     = 3

  validation {
    condition     = var.node_min_size >= 1
    error_message = "node_min_size must be at least 1."
  }
}

variable "node_max_size" {
  description = "Most nodes of the managed node group (Karpenter's nodes count against karpenter_cpu_limit instead)."
  type        = number
  default     = 30

  validation {
    condition     = var.node_max_size >= 1 && var.node_max_size <= 450
    error_message = "node_max_size must be between 1 and 450."
  }
}

variable "node_desired_size" {
  description = "Nodes at creation."
  type        = number
  default     = 3

  validation {
    condition     = var.node_desired_size >= 1
    error_message = "node_desired_size must be at least 1."
  }
}

variable "postgres_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.r6g.large"

  validation {
    condition     = can(regex("^db\\.", var.postgres_instance_class))
    error_message = "postgres_instance_class must be an RDS class such as db.r6g.large."
  }
}

variable "postgres_proxy_max_connections_percent" {
  description = "The share of RDS's max_connections RDS Proxy may open; charts/ticketing/values-eks.yaml's database.connectionBudget is this share (80% of about 1,700 on db.r6g.large: 1,360)."
  type        = number
  default     = 80
}

variable "postgres_engine_version" {
  description = "RDS for PostgreSQL major version; RDS applies its minor versions in the maintenance window."
  type        = string
  default     = "16"

  validation {
    condition     = contains(["15", "16", "17"], var.postgres_engine_version)
    error_message = "postgres_engine_version must be a major version: 15, 16 or 17."
  }
}

variable "postgres_max_connections" {
  description = "max_connections of postgres_instance_class (RDS: LEAST(DBInstanceClassMemory/9531392, 5000); db.r6g.large: about 1,700). The connections alarm fires at 90%."
  type        = number
  default     = 1700

  validation {
    condition     = var.postgres_max_connections >= 100 && var.postgres_max_connections <= 5000
    error_message = "postgres_max_connections must be between 100 and 5000."
  }
}

variable "postgres_storage_gb" {
  description = "RDS allocated storage in GiB (autoscaling up to four times this)."
  type        = number
  default     = 100

  validation {
    condition     = var.postgres_storage_gb >= 20 && var.postgres_storage_gb <= 16384
    error_message = "postgres_storage_gb must be between 20 and 16384."
  }
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.r7g.large"

  validation {
    condition     = can(regex("^cache\\.", var.redis_node_type))
    error_message = "redis_node_type must be an ElastiCache node type such as cache.r7g.large."
  }
}

variable "kafka_version" {
  description = "Amazon MSK Kafka version."
  type        = string
  default     = "3.6.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+", var.kafka_version))
    error_message = "kafka_version must be an MSK Kafka version such as 3.6.0."
  }
}

variable "kafka_topic_namespace" {
  description = "The chart's config.kafka.topicNamespace (empty: none); the services' MSK IAM policies name topics and groups with it."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]*$", var.kafka_topic_namespace))
    error_message = "kafka_topic_namespace may hold only [A-Za-z0-9._-]."
  }
}

variable "kafka_instance_type" {
  description = "MSK broker instance type."
  type        = string
  default     = "kafka.m7g.large"

  validation {
    condition     = can(regex("^kafka\\.", var.kafka_instance_type))
    error_message = "kafka_instance_type must be an MSK broker type such as kafka.m7g.large."
  }
}

variable "kafka_storage_gb" {
  description = "EBS storage per broker in GiB."
  type        = number
  default     = 500

  validation {
    condition     = var.kafka_storage_gb >= 1 && var.kafka_storage_gb <= 16384
    error_message = "kafka_storage_gb must be between 1 and 16384."
  }
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (e.g. 30, 90, 365)."
  }
}

variable "deletion_protection" {
  description = "Protect the database from deletion."
  type        = bool
  default     = true
}

variable "alarm_emails" {
  description = "Addresses notified of every CloudWatch alarm on RDS, ElastiCache and MSK (each confirms the subscription by email)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alarm_emails must be email addresses."
  }
}

variable "github_repository" {
  description = "The GitHub repository (<owner>/<repo>) whose release workflow, run in its `release` environment, pushes images to ECR."
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

variable "github_oidc_provider_arn" {
  description = "The account's IAM OIDC provider for token.actions.githubusercontent.com, if it has one already (an account holds one per URL); null creates it."
  type        = string
  default     = null

  validation {
    condition     = var.github_oidc_provider_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\\.actions\\.githubusercontent\\.com$", var.github_oidc_provider_arn))
    error_message = "github_oidc_provider_arn must be the ARN of the token.actions.githubusercontent.com OIDC provider."
  }
}

variable "alarm_topic_arn" {
  description = "An existing SNS topic (PagerDuty, Opsgenie, AWS Chatbot) that also receives every alarm; null for none."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$", var.alarm_topic_arn))
    error_message = "alarm_topic_arn must be an SNS topic ARN."
  }
}
