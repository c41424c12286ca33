# --- CloudWatch alarms on the data stores ------------------------------------------------
# What the in-cluster Prometheus rules cannot see: the managed services' own CPU, memory,
# storage, connections and replication. Every alarm (and its recovery) goes to one topic.

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  # The nodes each check watches: a label -> the metric's dimensions. ElastiCache names a
  # replication group's nodes <group>-001, -002; MSK numbers brokers from 1.
  alarm_targets = {
    postgres = { instance = { DBInstanceIdentifier = aws_db_instance.postgres.identifier } }
    redis    = { for i in range(1, 3) : format("%03d", i) => { CacheClusterId = format("%s-%03d", var.name, i) } }
    broker   = { for i in range(1, 4) : "broker-${i}" => { "Cluster Name" = aws_msk_cluster.this.cluster_name, "Broker ID" = tostring(i) } }
    kafka    = { cluster = { "Cluster Name" = aws_msk_cluster.this.cluster_name } }
  }

  # One check per row: the metric over `minutes` one-minute periods against the threshold.
  # The Multi-AZ instance's standby is synchronous and serves no reads: RDS has no replica
  # lag to watch.
  alarm_checks = {
    postgres-cpu = {
      targets     = "postgres", namespace = "AWS/RDS", metric = "CPUUtilization", statistic = "Average"
      operator    = "GreaterThanThreshold", threshold = 80, minutes = 10
      description = "RDS CPU above 80% for 10 minutes: scale the instance class up"
    }
    postgres-connections = {
      targets     = "postgres", namespace = "AWS/RDS", metric = "DatabaseConnections", statistic = "Maximum"
      operator    = "GreaterThanThreshold", threshold = floor(var.postgres_max_connections * 0.9), minutes = 5
      description = "RDS connections above 90% of max_connections: something bypasses RDS Proxy or the budget is too high"
    }
    postgres-free-storage = {
      targets     = "postgres", namespace = "AWS/RDS", metric = "FreeStorageSpace", statistic = "Minimum"
      operator    = "LessThanThreshold", threshold = var.postgres_storage_gb * pow(1024, 3) / 20, minutes = 5
      description = "RDS free storage below 5% of the allocation: storage autoscaling failed or reached its maximum"
    }
    redis-engine-cpu = {
      targets     = "redis", namespace = "AWS/ElastiCache", metric = "EngineCPUUtilization", statistic = "Average"
      operator    = "GreaterThanThreshold", threshold = 80, minutes = 10
      description = "Redis's engine thread above 80% for 10 minutes: commands queue behind it"
    }
    redis-cpu = {
      targets     = "redis", namespace = "AWS/ElastiCache", metric = "CPUUtilization", statistic = "Average"
      operator    = "GreaterThanThreshold", threshold = 90, minutes = 10
      description = "ElastiCache host CPU above 90% for 10 minutes (TLS, replication, snapshots)"
    }
    redis-memory = {
      targets     = "redis", namespace = "AWS/ElastiCache", metric = "DatabaseMemoryUsagePercentage", statistic = "Maximum"
      operator    = "GreaterThanThreshold", threshold = 80, minutes = 5
      description = "Redis memory above 80%: with noeviction, writes (holds, rate limits) fail when it is full"
    }
    redis-evictions = {
      targets     = "redis", namespace = "AWS/ElastiCache", metric = "Evictions", statistic = "Sum"
      operator    = "GreaterThanThreshold", threshold = 0, minutes = 1
      description = "Redis evicted keys although maxmemory-policy is noeviction: check the parameter group"
    }
    redis-replication-lag = {
      targets     = "redis", namespace = "AWS/ElastiCache", metric = "ReplicationLag", statistic = "Maximum"
      operator    = "GreaterThanThreshold", threshold = 5, minutes = 5
      description = "Redis replica more than 5 seconds behind: a failover would lose those writes"
    }
    kafka-cpu = {
      targets     = "broker", namespace = "AWS/Kafka", metric = "CpuUser", statistic = "Average"
      operator    = "GreaterThanThreshold", threshold = 60, minutes = 15
      description = "MSK broker user CPU above 60% for 15 minutes: MSK advises headroom for a broker's failure"
    }
    kafka-disk = {
      targets     = "broker", namespace = "AWS/Kafka", metric = "KafkaDataLogsDiskUsed", statistic = "Maximum"
      operator    = "GreaterThanThreshold", threshold = 80, minutes = 5
      description = "MSK broker data disk above 80%: grow kafka_storage_gb or shorten retention"
    }
    kafka-under-replicated = {
      targets     = "broker", namespace = "AWS/Kafka", metric = "UnderReplicatedPartitions", statistic = "Maximum"
      operator    = "GreaterThanThreshold", threshold = 0, minutes = 10
      description = "MSK partitions under-replicated for 10 minutes: a broker is down or cannot keep up"
    }
    kafka-offline-partitions = {
      targets     = "kafka", namespace = "AWS/Kafka", metric = "OfflinePartitionsCount", statistic = "Maximum"
      operator    = "GreaterThanThreshold", threshold = 0, minutes = 1
      description = "MSK partitions without a leader: producers and consumers of them are stopped"
    }
  }

  alarms = merge([for check, c in local.alarm_checks : {
    for target, dimensions in local.alarm_targets[c.targets] : "${check}-${target}" => merge(c, { dimensions = dimensions })
  }]...)
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 60
  evaluation_periods  = each.value.minutes
  comparison_operator = each.value.operator
  threshold           = each.value.threshold
  # A replica that is primary now reports no lag; a missing metric is not an incident.
  treat_missing_data = "notBreaching"
  alarm_actions      = compact([aws_sns_topic.alarms.arn, var.alarm_topic_arn])
  ok_actions         = compact([aws_sns_topic.alarms.arn, var.alarm_topic_arn])
  tags               = local.tags
}
