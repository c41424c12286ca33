output "cluster_name" {
  description = "The EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "The API server's URL (the helm provider's host)."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "The cluster CA, base64-encoded."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "update_kubeconfig" {
  description = "The command that points kubectl at the cluster."
  value       = "aws eks update-kubeconfig --name ${aws_eks_cluster.this.name} --region ${data.aws_region.this.name}"
}

output "registry" {
  description = "The image registry: images are <registry>/<service>, the chart oci://<registry>/charts/ticketing."
  value       = "${data.aws_caller_identity.this.account_id}.dkr.ecr.${data.aws_region.this.name}.amazonaws.com/${var.name}"
}

output "vpc_cidr" {
  description = "The VPC's range (the control plane's ENIs, the data stores and the ALB live in it)."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_cidrs" {
  description = "The private subnets (nodes, pods, data stores)."
  value       = aws_subnet.private[*].cidr_block
}

output "postgres_address" {
  description = "RDS endpoint host name."
  value       = aws_db_instance.postgres.address
}

output "postgres_proxy_endpoint" {
  description = "RDS Proxy's endpoint host name (the services' pooled-database-url)."
  value       = aws_db_proxy.postgres.endpoint
}

output "postgres_user" {
  description = "RDS master user name: the admin `<service> bootstrap` connects as (migrations.bootstrap), never a service."
  value       = aws_db_instance.postgres.username
}

output "postgres_password_secret_arn" {
  description = "The Secrets Manager secret RDS keeps the master password in."
  value       = aws_db_instance.postgres.master_user_secret[0].secret_arn
}

output "postgres_service_secret_arns" {
  description = "Each service's Secrets Manager secret with its own role's username and password."
  value       = { for name, secret in aws_secretsmanager_secret.postgres_service : name => secret.arn }
}

output "redis_address" {
  description = "ElastiCache primary endpoint."
  value       = aws_elasticache_replication_group.redis.primary_endpoint_address
}

output "kafka_bootstrap_brokers_sasl_iam" {
  description = "MSK bootstrap brokers for IAM over TLS (port 9098), the only listener: the chart's config.kafka.brokers."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_iam
}

output "service_role_arns" {
  description = "The IAM role of each workload: every service's and the pre-scaler's (prescaler) (IRSA)."
  value       = { for name, r in aws_iam_role.service : name => r.arn }
}

output "service_account_names" {
  description = "The Kubernetes ServiceAccount each IAM role trusts: every service's, the pre-scaler's (prescaler) and the External Secrets store's (external-secrets)."
  value       = local.service_account_names
}

output "service_secret_names" {
  description = "Each service's Secrets Manager secret, synced into its Kubernetes Secret."
  value       = { for name, s in aws_secretsmanager_secret.service : name => s.name }
}

output "payment_processor_secret_name" {
  description = "Where the operator puts the payment processor's keys (aws secretsmanager put-secret-value)."
  value       = one(aws_secretsmanager_secret.payment_processor[*].name)
}

output "external_secrets" {
  description = "The chart's externalSecrets values for AWS Secrets Manager (contract of docs/adr/0033)."
  value = {
    enabled         = true
    provider        = "aws"
    aws             = { region = data.aws_region.this.name }
    refreshInterval = "1h"
    serviceAccount = {
      name        = local.service_account_names["external-secrets"]
      annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.controller["external-secrets"].arn }
    }
    remoteNames = local.external_secret_remote_names
    bootstrap = {
      # The RDS-managed master secret (username, password; rotated by RDS), which only the
      # migration Jobs' bootstrap container reads. ESO evaluates the template, not Helm.
      remoteName               = aws_db_instance.postgres.master_user_secret[0].secret_arn
      secretName               = local.bootstrap_secret_name
      postgresAdminUrlTemplate = "postgres://{{ .username }}:{{ .password | urlquery }}@${aws_db_instance.postgres.address}:5432/postgres?sslmode=require"
    }
  }
}

output "bootstrap_secret_name" {
  description = "The Kubernetes Secret the bootstrap ExternalSecret writes (the chart's migrations.bootstrap.existingSecret)."
  value       = local.bootstrap_secret_name
}

output "alarm_topic_arn" {
  description = "The SNS topic every CloudWatch alarm notifies."
  value       = aws_sns_topic.alarms.arn
}

output "github_release" {
  description = "The release environment's variables for AWS (.github/workflows/release.yml): ECR_REGISTRY, AWS_RELEASE_ROLE."
  value = {
    ECR_REGISTRY     = "${data.aws_caller_identity.this.account_id}.dkr.ecr.${data.aws_region.this.name}.amazonaws.com/${var.name}"
    AWS_RELEASE_ROLE = aws_iam_role.release.arn
  }
}
