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

output "kafka_bootstrap" {
  description = "Managed Kafka's bootstrap address."
  value       = module.platform.kafka_bootstrap
}

output "service_accounts" {
  description = "Each workload's Google service account."
  value       = module.platform.service_accounts
}

output "service_account_names" {
  description = "The Kubernetes ServiceAccount bound to each Google service account (set in helm_values)."
  value       = module.platform.service_account_names
}

output "remote_secrets" {
  description = "The Secret Manager secrets the External Secrets Operator syncs; payment-processor is the one you fill (README)."
  value       = module.platform.remote_secrets
}

output "nat_addresses" {
  description = "The cluster's static egress addresses, for the payment processor's allowlist."
  value       = module.platform.nat_addresses
}

output "attestor" {
  description = "The Binary Authorization attestor and KMS key version the release pipeline attests promoted digests with."
  value       = module.platform.attestor
}

locals {
  sa_names      = module.platform.service_account_names
  remote        = module.platform.remote_secrets
  bootstrap_sec = "${var.release_name}-postgres-admin"
}

# The part of the Helm values that only this environment knows. Install with both files:
#   terraform output -raw helm_values > values-gke.generated.yaml
#   helm upgrade --install <release> charts/ticketing -n <namespace> \
#     -f charts/ticketing/values-gke.yaml -f values-gke.generated.yaml
output "helm_values" {
  description = "Helm values overriding the placeholders of charts/ticketing/values-gke.yaml."
  value = yamlencode({
    image = {
      registry = module.platform.registry
    }
    keda = {
      prometheus = { serverAddress = module.platform.prometheus_query_url }
    }
    config = {
      kafka = {
        brokers = module.platform.kafka_bootstrap
        # Each workload signs in to Managed Kafka as its Google service account, with
        # tokens from the GKE metadata server (Workload Identity): no key in any Secret.
        oauthbearer = "gcp"
        properties  = { sasl_mechanism = "OAUTHBEARER" }
      }
    }
    # PgBouncer in the cluster pools the services' connections to Cloud SQL (ADR 0025).
    database = {
      pgbouncer = {
        postgres = { host = module.platform.postgres_host }
      }
    }
    services = {
      for name in keys(local.services) : name => merge(
        {
          enabled = true
          serviceAccount = {
            name        = local.sa_names[name]
            annotations = { "iam.gke.io/gcp-service-account" = module.platform.service_accounts[name] }
          }
        },
        # The processor's keys are synced into payment's own Secret (remoteNames below).
        name == "payment" ? { processor = { existingSecret = "" } } : {},
      )
    }
    prescaler = {
      serviceAccount = {
        name        = local.sa_names["prescaler"]
        annotations = { "iam.gke.io/gcp-service-account" = module.platform.service_accounts["prescaler"] }
      }
    }
    externalSecrets = {
      enabled         = true
      provider        = "gcp"
      gcp             = { projectId = var.project_id }
      refreshInterval = "1h"
      serviceAccount = {
        name        = local.sa_names["external-secrets"]
        annotations = { "iam.gke.io/gcp-service-account" = module.platform.service_accounts["external-secrets"] }
      }
      remoteNames = merge(
        { for name in keys(local.services) : name => name == "payment" ? [local.remote[name], local.remote["payment-processor"]] : [local.remote[name]] },
        { pgbouncer = [local.remote["pgbouncer"]] },
      )
      bootstrap = {
        remoteName = local.remote["postgres-admin"]
        secretName = local.bootstrap_sec
      }
    }
    migrations = {
      bootstrap = { existingSecret = local.bootstrap_sec }
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

# gh variable set --env release for each: the release workflow promotes, signs and attests
# with them (no key is involved).
output "github_release_variables" {
  description = "Variables of the GitHub repository's `release` environment for Google Cloud."
  value       = module.platform.github_release
}
