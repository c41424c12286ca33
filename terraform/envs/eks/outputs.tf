output "update_kubeconfig" {
  description = "Points kubectl at the cluster."
  value       = module.platform.update_kubeconfig
}

output "registry" {
  description = "skaffold --default-repo, and the chart's image.registry."
  value       = module.platform.registry
}

output "postgres_address" {
  description = "RDS endpoint."
  value       = module.platform.postgres_address
}

output "postgres_proxy_endpoint" {
  description = "RDS Proxy's endpoint: the services' pooled-database-url (the migration Jobs use postgres_address)."
  value       = module.platform.postgres_proxy_endpoint
}

output "postgres_password_secret_arn" {
  description = "Where RDS keeps the master password."
  value       = module.platform.postgres_password_secret_arn
}

output "redis_address" {
  description = "ElastiCache primary endpoint."
  value       = module.platform.redis_address
}

output "kafka_bootstrap_brokers" {
  description = "MSK bootstrap brokers, IAM over TLS (port 9098): the workloads sign in with their IAM roles."
  value       = module.platform.kafka_bootstrap_brokers_sasl_iam
}

output "service_role_arns" {
  description = "Each workload's IAM role (the services and prescaler)."
  value       = module.platform.service_role_arns
}

locals {
  # Each workload's ServiceAccount: the name its IAM role trusts, and that role.
  service_accounts = { for name, arn in module.platform.service_role_arns : name => {
    name        = module.platform.service_account_names[name]
    annotations = { "eks.amazonaws.com/role-arn" = arn }
  } }
}

# The part of the Helm values that only this environment knows. Install with both files:
#   terraform output -raw helm_values > values-eks.generated.yaml
#   helm upgrade --install ticketing charts/ticketing -n ticketing \
#     -f charts/ticketing/values-eks.yaml -f values-eks.generated.yaml
output "helm_values" {
  description = "Helm values overriding the placeholders of charts/ticketing/values-eks.yaml."
  value = yamlencode({
    image = {
      registry = module.platform.registry
    }
    config = {
      kafka = {
        brokers = module.platform.kafka_bootstrap_brokers_sasl_iam
      }
    }
    services = {
      for name, sa in local.service_accounts : name => { enabled = true, serviceAccount = sa } if name != "prescaler"
    }
    prescaler = {
      serviceAccount = local.service_accounts["prescaler"]
    }
    # Every service's Secret, and the migration Jobs' admin Secret, synced from Secrets
    # Manager by the External Secrets Operator (the module installs it).
    externalSecrets = module.platform.external_secrets
    migrations = {
      bootstrap = { existingSecret = module.platform.bootstrap_secret_name }
    }
    networkPolicy = {
      gatewayHttp = {
        peers = [{ ipBlock = { cidr = module.platform.vpc_cidr } }]
        ports = [8080, 51050]
      }
      kubeApiServer = {
        peers = [for c in module.platform.private_subnet_cidrs : { ipBlock = { cidr = c } }]
        ports = [443]
      }
      postgres = {
        peers = [for c in module.platform.private_subnet_cidrs : { ipBlock = { cidr = c } }]
        ports = [5432]
      }
      redis = {
        peers = [for c in module.platform.private_subnet_cidrs : { ipBlock = { cidr = c } }]
        ports = [6379]
      }
      kafka = {
        peers = [for c in module.platform.private_subnet_cidrs : { ipBlock = { cidr = c } }]
        ports = [9098]
      }
      # The STS interface endpoint (private DNS) the Kafka clients exchange their IRSA
      # token at, for the credentials that sign their MSK IAM tokens.
      awsSts = [{
        peers = [for c in module.platform.private_subnet_cidrs : { ipBlock = { cidr = c } }]
        ports = [443]
      }]
    }
  })
}

output "postgres_service_secret_arns" {
  description = "Each service's Secrets Manager secret with its own Postgres role's username and password."
  value       = module.platform.postgres_service_secret_arns
}

output "service_account_names" {
  description = "The ServiceAccount names the IAM roles trust (the chart's services.<svc>.serviceAccount.name)."
  value       = module.platform.service_account_names
}

output "service_secret_names" {
  description = "Each service's Secrets Manager secret (synced into its Kubernetes Secret)."
  value       = module.platform.service_secret_names
}

output "payment_processor_secret_name" {
  description = "Where the operator puts the payment processor's keys."
  value       = module.platform.payment_processor_secret_name
}

output "alarm_topic_arn" {
  description = "The SNS topic of the RDS, ElastiCache and MSK alarms."
  value       = module.platform.alarm_topic_arn
}

# gh variable set --env release for each: the release workflow promotes and signs with them
# (no access key is involved).
output "github_release_variables" {
  description = "Variables of the GitHub repository's `release` environment for AWS."
  value       = module.platform.github_release
}
