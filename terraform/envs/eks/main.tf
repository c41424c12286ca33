provider "aws" {
  region = var.region

  default_tags {
    tags = {
      environment = var.environment
      project     = "ticketing"
    }
  }
}

# The module installs Karpenter, the AWS Load Balancer Controller, External Secrets and
# Reloader with Helm, as whoever runs Terraform (an access entry: the cluster's creator is
# admin). A token per run, so no kubeconfig or long-lived credential is involved.
provider "helm" {
  kubernetes = {
    host                   = module.platform.cluster_endpoint
    cluster_ca_certificate = base64decode(module.platform.cluster_certificate_authority_data)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.platform.cluster_name, "--region", var.region]
    }
  }
}

module "platform" {
  source = "../../modules/eks"

  name         = var.name
  tags         = { environment = var.environment }
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

  vpc_cidr           = var.vpc_cidr
  availability_zones = var.availability_zones
  single_nat_gateway = var.single_nat_gateway

  kubernetes_version     = var.kubernetes_version
  endpoint_public_access = var.endpoint_public_access
  public_access_cidrs    = var.public_access_cidrs
  node_instance_types    = var.node_instance_types
  node_min_size          = var.node_min_size
  node_max_size          = var.node_max_size
  node_desired_size      = var.node_desired_size
  node_ami_version       = var.node_ami_version
  karpenter_cpu_limit    = var.karpenter_cpu_limit

  postgres_instance_class                = var.postgres_instance_class
  postgres_engine_version                = var.postgres_engine_version
  postgres_storage_gb                    = var.postgres_storage_gb
  postgres_max_connections               = var.postgres_max_connections
  postgres_proxy_max_connections_percent = var.postgres_proxy_max_connections_percent
  redis_node_type                        = var.redis_node_type
  kafka_version                          = var.kafka_version
  kafka_instance_type                    = var.kafka_instance_type
  kafka_storage_gb                       = var.kafka_storage_gb
  kafka_topic_namespace                  = var.kafka_topic_namespace

  log_retention_days  = var.log_retention_days
  deletion_protection = var.deletion_protection
  alarm_emails        = var.alarm_emails
  alarm_topic_arn     = var.alarm_topic_arn

  github_repository        = var.github_repository
  github_oidc_provider_arn = var.github_oidc_provider_arn
}
