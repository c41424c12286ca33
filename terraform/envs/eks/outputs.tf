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
  description = "MSK SASL/SCRAM bootstrap brokers."
  value       = module.platform.kafka_bootstrap_brokers_sasl_scram
}

output "kafka_scram_secret_arns" {
  description = "Each service's MSK SCRAM credentials."
  value       = module.platform.kafka_scram_secret_arns
}

output "signing_kek_secret_arns" {
  description = "identity's and notification's KEKs in Secrets Manager: the signing-kek key of their Secrets."
  value       = module.platform.signing_kek_secret_arns
}

output "service_role_arns" {
  description = "Each service's IAM role."
  value       = module.platform.service_role_arns
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
        brokers = module.platform.kafka_bootstrap_brokers_sasl_scram
      }
    }
    services = {
      for name, arn in module.platform.service_role_arns : name => {
        enabled = true
        serviceAccount = {
          annotations = { "eks.amazonaws.com/role-arn" = arn }
        }
      }
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
        ports = [9096]
      }
    }
  })
}

# The redis-url of the ticketing-<service> Secrets of gateway, identity and inventory: each
# as its own ElastiCache user (docs/adr/0031).
output "redis_urls" {
  description = "Each Redis service's rediss:// URL, as its own user."
  sensitive   = true
  value       = { for name, u in module.platform.redis_users : name => "rediss://${u.user}:${u.password}@${module.platform.redis_address}:6379" }
}

output "postgres_service_secret_arns" {
  description = "Each service's Secrets Manager secret with its own Postgres role's username and password."
  value       = module.platform.postgres_service_secret_arns
}
