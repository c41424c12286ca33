output "get_credentials" {
  description = "Points kubectl at the cluster."
  value       = module.platform.get_credentials
}

output "registry" {
  description = "skaffold --default-repo, and the chart's image.registry."
  value       = module.platform.registry
}

output "postgres_host" {
  description = "Cloud SQL's private address."
  value       = module.platform.postgres_host
}

output "redis_host" {
  description = "Memorystore's address."
  value       = module.platform.redis_host
}

output "redis_ca_certificate" {
  description = "Memorystore's server CA, for the Secrets' redis-ca.pem (the chart sets config.redis.caFromSecret on GKE)."
  value       = module.platform.redis_ca_certificate
}

output "kafka_bootstrap" {
  description = "Managed Kafka's bootstrap address."
  value       = module.platform.kafka_bootstrap
}

output "signing_kek_secrets" {
  description = "identity's and notification's KEKs in Secret Manager: the signing-kek key of their Secrets."
  value       = module.platform.signing_kek_secrets
}

output "service_accounts" {
  description = "Each service's Google service account."
  value       = module.platform.service_accounts
}

# The part of the Helm values that only this environment knows. Install with both files:
#   terraform output -raw helm_values > values-gke.generated.yaml
#   helm upgrade --install ticketing charts/ticketing -n ticketing \
#     -f charts/ticketing/values-gke.yaml -f values-gke.generated.yaml
output "helm_values" {
  description = "Helm values overriding the placeholders of charts/ticketing/values-gke.yaml."
  value = yamlencode({
    image = {
      registry = module.platform.registry
    }
    config = {
      kafka = {
        brokers = module.platform.kafka_bootstrap
      }
    }
    # PgBouncer in the cluster pools the services' connections to Cloud SQL (ADR 0025).
    database = {
      pgbouncer = {
        postgres = { host = module.platform.postgres_host }
      }
    }
    services = {
      for name, email in module.platform.service_accounts : name => {
        enabled = true
        serviceAccount = {
          annotations = { "iam.gke.io/gcp-service-account" = email }
        }
      }
    }
    networkPolicy = {
      kubeApiServer = {
        peers = [{ ipBlock = { cidr = module.platform.network_cidrs.control_plane } }]
        ports = [443]
      }
      postgres = {
        peers = [{ ipBlock = { cidr = module.platform.network_cidrs.private_services } }]
        ports = [5432]
      }
      redis = {
        peers = [{ ipBlock = { cidr = module.platform.network_cidrs.private_services } }]
        ports = [6378, 6379]
      }
      kafka = {
        peers = [{ ipBlock = { cidr = module.platform.network_cidrs.nodes } }]
        ports = [9092]
      }
    }
  })
}

# The connection URLs for the ticketing-<service> Secrets (docs/deploy.md). Sensitive:
#   terraform output -json secret_urls
output "secret_urls" {
  description = "database-url, pooled-database-url and redis-url of each service, for its Secret, PgBouncer's userlist.txt and the bootstrap's admin URL."
  sensitive   = true
  value = {
    # Each service as its own role (docs/adr/0031).
    database = {
      for name, password in module.platform.postgres_service_passwords :
      name => "postgres://ticketing_${name}:${password}@${module.platform.postgres_host}:5432/ticketing_${name}?sslmode=require"
    }
    # Through the chart's PgBouncer (plain TCP inside the cluster, SCRAM authentication;
    # PgBouncer reaches Cloud SQL over TLS). The migration Jobs keep `database`.
    pooled_database = {
      for name, password in module.platform.postgres_service_passwords :
      name => "postgres://ticketing_${name}:${password}@${var.release_name}-pgbouncer.${var.namespace}.svc:5432/ticketing_${name}?sslmode=disable"
    }
    # PgBouncer's userlist.txt (the ticketing-pgbouncer Secret): one line per service role.
    pgbouncer_userlist = join("", [for name, password in module.platform.postgres_service_passwords : "\"ticketing_${name}\" \"${password}\"\n"])
    # The admin, for the migration Jobs' bootstrap only (the ticketing-bootstrap Secret).
    postgres_admin = "postgres://${module.platform.postgres_user}:${module.platform.postgres_password}@${module.platform.postgres_host}:5432/postgres?sslmode=require"
    redis          = "rediss://:${module.platform.redis_auth_string}@${module.platform.redis_host}:${module.platform.redis_port}"
  }
}
