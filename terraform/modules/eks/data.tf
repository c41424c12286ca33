# --- RDS for PostgreSQL -----------------------------------------------------------------

resource "aws_security_group" "postgres" {
  name        = "${var.name}-postgres"
  description = "RDS for PostgreSQL: from the EKS cluster only"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags

  ingress {
    description     = "Postgres from the cluster's pods and nodes"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = [aws_eks_cluster.this.vpc_config[0].cluster_security_group_id]
  }
}

resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = aws_subnet.private[*].id
  tags       = local.tags
}

resource "aws_db_parameter_group" "postgres" {
  name_prefix = "${var.name}-postgres-"
  family      = "postgres${var.postgres_engine_version}"
  description = "ticketing: TLS only, connection and statement logging"
  tags        = local.tags

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }
  parameter {
    name  = "log_disconnections"
    value = "1"
  }
  parameter {
    name  = "log_lock_waits"
    value = "1"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name = "${var.name}-rds-monitoring"
  tags = local.tags

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${data.aws_partition.this.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "postgres" {
  identifier = "${var.name}-postgres"
  engine     = "postgres"
  # The major version only: AWS applies minor releases in the maintenance window
  # (auto_minor_version_upgrade below) and the plan stays clean, since the provider
  # compares the running version's prefix. A major upgrade is a reviewed change here.
  engine_version = var.postgres_engine_version
  instance_class = var.postgres_instance_class

  allocated_storage     = var.postgres_storage_gb
  max_allocated_storage = var.postgres_storage_gb * 4
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.this.arn

  username = "ticketing"
  # RDS keeps the password in Secrets Manager, encrypted with our key; it never enters
  # the Terraform state.
  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.this.arn

  db_subnet_group_name                = aws_db_subnet_group.this.name
  vpc_security_group_ids              = [aws_security_group.postgres.id]
  parameter_group_name                = aws_db_parameter_group.postgres.name
  publicly_accessible                 = false
  multi_az                            = true
  iam_database_authentication_enabled = true
  ca_cert_identifier                  = "rds-ca-rsa2048-g1"

  backup_retention_period   = 14
  backup_window             = "02:00-03:00"
  maintenance_window        = "tue:03:30-tue:04:30"
  copy_tags_to_snapshot     = true
  delete_automated_backups  = false
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.name}-postgres-final"

  auto_minor_version_upgrade            = true
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.this.arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn

  tags = local.tags
}

# --- RDS Proxy ------------------------------------------------------------------------
# The services reach Postgres through RDS Proxy (the chart's database.pooler: external,
# their Secrets' pooled-database-url): it holds at most max_connections_percent of the
# instance's max_connections, whatever the number of pods, and keeps client connections
# across a Multi-AZ failover. The migration Jobs connect to the instance itself (sqlx's
# migrator takes a session advisory lock, which would pin a proxied session anyway).

resource "aws_security_group" "postgres_proxy" {
  name        = "${var.name}-postgres-proxy"
  description = "RDS Proxy: from the EKS cluster, to the RDS instance"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags

  ingress {
    description     = "Postgres from the cluster's pods and nodes"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = [aws_eks_cluster.this.vpc_config[0].cluster_security_group_id]
  }
}

resource "aws_vpc_security_group_egress_rule" "postgres_proxy_to_postgres" {
  security_group_id            = aws_security_group.postgres_proxy.id
  description                  = "Postgres to the RDS instance"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.postgres.id
}

resource "aws_vpc_security_group_ingress_rule" "postgres_from_proxy" {
  security_group_id            = aws_security_group.postgres.id
  description                  = "Postgres from RDS Proxy"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.postgres_proxy.id
}

# --- Each service's own Postgres role (docs/adr/0031) ----------------------------------
# RDS has no API for database users: `<service> bootstrap` (the chart's
# migrations.bootstrap, as the master user) makes each role, owning its database and
# reaching no other. Terraform makes their passwords: in ${name}/<service>-postgres for RDS
# Proxy, which logs in to the instance as each service's role, and in the service's own
# secret (secrets.tf) as its database URLs.

resource "random_password" "postgres_service" {
  for_each = local.db_services

  length  = 40
  special = false
}

resource "aws_secretsmanager_secret" "postgres_service" {
  #checkov:skip=CKV2_AWS_57:rotating means running the bootstrap with the new password; Terraform replaces it on demand
  for_each = local.db_services

  name                    = "${var.name}/${each.key}-postgres"
  description             = "The Postgres role ticketing_${each.key}: username and password"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "postgres_service" {
  for_each = local.db_services

  secret_id = aws_secretsmanager_secret.postgres_service[each.key].id
  secret_string = jsonencode({
    username = "ticketing_${each.key}"
    password = random_password.postgres_service[each.key].result
  })
}

# The proxy logs in as each service's role, with the secrets above.
resource "aws_iam_role" "postgres_proxy" {
  name = "${var.name}-postgres-proxy"
  tags = local.tags

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "postgres_proxy" {
  name = "read-service-role-secrets"
  role = aws_iam_role.postgres_proxy.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
        Resource = [for secret in aws_secretsmanager_secret.postgres_service : secret.arn]
      },
      {
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [aws_kms_key.this.arn]
        Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${data.aws_region.this.name}.amazonaws.com" } }
      },
    ]
  })
}

resource "aws_db_proxy" "postgres" {
  name                   = "${var.name}-postgres"
  engine_family          = "POSTGRESQL"
  role_arn               = aws_iam_role.postgres_proxy.arn
  vpc_subnet_ids         = aws_subnet.private[*].id
  vpc_security_group_ids = [aws_security_group.postgres_proxy.id]
  require_tls            = true
  # Longer than the services' pools keep an idle connection (sqlx: 10 minutes).
  idle_client_timeout = 1800
  debug_logging       = false
  tags                = local.tags

  dynamic "auth" {
    for_each = aws_secretsmanager_secret.postgres_service
    content {
      description               = "The role ticketing_${auth.key}"
      auth_scheme               = "SECRETS"
      secret_arn                = auth.value.arn
      iam_auth                  = "DISABLED"
      client_password_auth_type = "POSTGRES_SCRAM_SHA_256"
    }
  }

  depends_on = [aws_iam_role_policy.postgres_proxy]
}

resource "aws_db_proxy_default_target_group" "postgres" {
  db_proxy_name = aws_db_proxy.postgres.name

  connection_pool_config {
    # The chart's database.connectionBudget is this share of the instance's max_connections.
    max_connections_percent      = var.postgres_proxy_max_connections_percent
    max_idle_connections_percent = floor(var.postgres_proxy_max_connections_percent / 2)
    # Seconds a client waits for a connection before the proxy fails it, like PgBouncer's
    # query_wait_timeout in the chart.
    connection_borrow_timeout = 5
  }
}

resource "aws_db_proxy_target" "postgres" {
  db_proxy_name          = aws_db_proxy.postgres.name
  target_group_name      = aws_db_proxy_default_target_group.postgres.name
  db_instance_identifier = aws_db_instance.postgres.identifier
}

# --- ElastiCache for Redis ---------------------------------------------------------------

resource "aws_security_group" "redis" {
  name        = "${var.name}-redis"
  description = "ElastiCache for Redis: from the EKS cluster only"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags

  ingress {
    description     = "Redis (TLS) from the cluster's pods and nodes"
    from_port       = 6379
    to_port         = 6379
    protocol        = "tcp"
    security_groups = [aws_eks_cluster.this.vpc_config[0].cluster_security_group_id]
  }
}

resource "aws_elasticache_subnet_group" "this" {
  name       = var.name
  subnet_ids = aws_subnet.private[*].id
  tags       = local.tags
}

# inventory's holds must never be evicted.
resource "aws_elasticache_parameter_group" "redis" {
  name   = "${var.name}-redis7"
  family = "redis7"
  tags   = local.tags

  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }
}

# One ACL user per service that keeps state in Redis, reaching its own keys only (docs/adr/0031).
# ElastiCache refuses ACL SETUSER, so the access strings are here: what crates/platform's
# access::redis_access_string renders for the key prefix "ticketing:" (the chart's
# config.redis.keyPrefix), and a test there fails when the two differ.
locals {
  redis_access_strings = {
    gateway   = "on ~ticketing:ratelimit:* ~ticketing:waiting-room:* +@all -@dangerous +info -scan -randomkey -script|flush -script|kill"
    identity  = "on ~ticketing:rt:* ~ticketing:login:* +@all -@dangerous +info -scan -randomkey -script|flush -script|kill"
    inventory = "on ~ticketing:{evt:* ~ticketing:inventory:* +@all -@dangerous +info -scan -randomkey -script|flush -script|kill +scan"
  }
}

resource "random_password" "redis_service" {
  for_each = local.redis_access_strings

  length  = 64
  special = false
}

resource "aws_elasticache_user" "service" {
  for_each = local.redis_access_strings

  user_id       = "${var.name}-${each.key}"
  user_name     = "ticketing_${each.key}"
  engine        = "REDIS"
  access_string = each.value
  passwords     = [random_password.redis_service[each.key].result]
  tags          = local.tags
}

# Every user group needs a user named default; this one may do nothing.
resource "random_password" "redis" {
  length  = 64
  special = false
}

resource "aws_elasticache_user" "default" {
  user_id       = "${var.name}-default"
  user_name     = "default"
  engine        = "REDIS"
  access_string = "off -@all"
  passwords     = [random_password.redis.result]
  tags          = local.tags
}

resource "aws_elasticache_user_group" "this" {
  engine        = "REDIS"
  user_group_id = var.name
  user_ids      = concat([aws_elasticache_user.default.user_id], [for user in aws_elasticache_user.service : user.user_id])
  tags          = local.tags
}

resource "aws_cloudwatch_log_group" "redis" {
  name              = "/aws/elasticache/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_elasticache_replication_group" "redis" {
  replication_group_id = var.name
  description          = "ticketing: rate limits, waiting room, holds, refresh tokens"
  engine               = "redis"
  engine_version       = "7.1"
  node_type            = var.redis_node_type
  port                 = 6379
  parameter_group_name = aws_elasticache_parameter_group.redis.name
  subnet_group_name    = aws_elasticache_subnet_group.this.name
  security_group_ids   = [aws_security_group.redis.id]

  num_cache_clusters         = 2
  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.this.arn
  transit_encryption_enabled = true
  user_group_ids             = [aws_elasticache_user_group.this.user_group_id]

  snapshot_retention_limit   = 7
  snapshot_window            = "01:00-02:00"
  maintenance_window         = "tue:04:30-tue:05:30"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.redis.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }

  tags = local.tags
}

# --- Amazon MSK ---------------------------------------------------------------------------

# Its description predates ADR 0047 (IAM only): a security group's description cannot
# change in place, and replacing the group would replace the brokers.
resource "aws_security_group" "kafka" {
  name        = "${var.name}-kafka"
  description = "Amazon MSK: SASL/SCRAM and IAM over TLS from the EKS cluster only"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags

  ingress {
    description     = "Kafka IAM over TLS from the cluster"
    from_port       = 9098
    to_port         = 9098
    protocol        = "tcp"
    security_groups = [aws_eks_cluster.this.vpc_config[0].cluster_security_group_id]
  }
}

resource "aws_cloudwatch_log_group" "kafka" {
  name              = "/aws/msk/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

# catalog's EventPublished lists every seat of a stadium: up to 16 MiB. Clients authenticate
# with IAM only, which MSK authorizes with IAM policies (eks.tf): Kafka ACLs and
# allow.everyone.if.no.acl.found do not apply to them. The setting stays for any other
# authentication turned on later, which then gets nothing that no ACL grants.
resource "aws_msk_configuration" "this" {
  name           = var.name
  kafka_versions = [var.kafka_version]

  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=3
    min.insync.replicas=2
    num.partitions=6
    message.max.bytes=16777216
    replica.fetch.max.bytes=16777216
    unclean.leader.election.enable=false
    allow.everyone.if.no.acl.found=false
  PROPERTIES
}

resource "aws_msk_cluster" "this" {
  cluster_name           = var.name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = 3
  tags                   = local.tags

  broker_node_group_info {
    instance_type   = var.kafka_instance_type
    client_subnets  = aws_subnet.private[*].id
    security_groups = [aws_security_group.kafka.id]

    storage_info {
      ebs_storage_info {
        volume_size = var.kafka_storage_gb
      }
    }

    connectivity_info {
      public_access {
        type = "DISABLED"
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  # IAM only (ADR 0047): each workload signs in as its IRSA role, no Kafka password exists.
  client_authentication {
    unauthenticated = false

    sasl {
      iam = true
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = aws_kms_key.this.arn

    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.kafka.name
      }
    }
  }
}

# Who may do what on which topic (ADR 0032): a topic is written only by the service that
# owns it, and each consumer group reads only its service's topics. The services' IAM
# policies (eks.tf) are made from this table, as GKE's Managed Kafka ACLs are.
module "kafka_access" {
  source = "../kafka-access"

  topic_namespace = var.kafka_topic_namespace
  principals      = { for name in local.kafka_users : name => aws_iam_role.service[name].arn }
}

# --- the signing keys' KEKs ---------------------------------------------------------------
# identity and notification seal their signing keys in Postgres with a key-encryption key
# (ADR 0032), each its own. It reaches the service as the signing-kek key of its secret
# (secrets.tf). Never replace this resource: the keys it sealed would no longer open.
resource "random_bytes" "signing_kek" {
  for_each = local.signing_services

  length = 32
}

# --- ECR ----------------------------------------------------------------------------------

# <registry>/ticketing/<image> for the services' and the pre-scaler's images, <registry>/ticketing/charts/ticketing for the chart.
resource "aws_ecr_repository" "this" {
  for_each = toset(concat(keys(local.workloads), ["charts/ticketing"]))

  name                 = "${var.name}/${each.value}"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = false
  tags                 = local.tags

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.this.arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each = aws_ecr_repository.this

  repository = each.value.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Expire untagged images after 14 days"
      selection = {
        tagStatus   = "untagged"
        countType   = "sinceImagePushed"
        countUnit   = "days"
        countNumber = 14
      }
      action = { type = "expire" }
    }]
  })
}
