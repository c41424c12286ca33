# Cloud-side alerts on the managed services, which the chart's Prometheus rules cannot see
# (docs/adr/0034). One table, one policy per row, each mailed to var.alert_emails.
# Cloud SQL runs REGIONAL (a synchronous standby, no read replica), so it has no
# replication lag to watch; Memorystore's STANDARD_HA replica is watched for lag.

locals {
  sql_resource   = "resource.type = \"cloudsql_database\" AND resource.labels.database_id = \"${var.project_id}:${google_sql_database_instance.postgres.name}\""
  redis_resource = "resource.type = \"redis_instance\" AND resource.labels.instance_id = \"${google_redis_instance.this.id}\""
  kafka_resource = "resource.labels.cluster_id = \"${google_managed_kafka_cluster.this.cluster_id}\""

  # name -> the condition: a metric over a threshold for a duration. aligner turns each
  # series into one value per minute; reducer (optional) folds the series into one.
  alerts = {
    postgres-cpu = {
      title     = "Cloud SQL CPU above 80%"
      filter    = "${local.sql_resource} AND metric.type = \"cloudsql.googleapis.com/database/cpu/utilization\""
      threshold = 0.8
      duration  = "600s"
      aligner   = "ALIGN_MEAN"
      reducer   = null
      severity  = "WARNING"
      doc       = "Sustained CPU on Cloud SQL: queries queue and PgBouncer's wait timeouts follow. Check Query Insights for the costliest statements; raise postgres_tier if the load is legitimate."
    }
    postgres-memory = {
      title     = "Cloud SQL memory above 90%"
      filter    = "${local.sql_resource} AND metric.type = \"cloudsql.googleapis.com/database/memory/utilization\""
      threshold = 0.9
      duration  = "600s"
      aligner   = "ALIGN_MEAN"
      reducer   = null
      severity  = "WARNING"
      doc       = "Cloud SQL is close to its memory; near the limit the server restarts. Raise postgres_tier."
    }
    postgres-connections = {
      title     = "Cloud SQL connections above 90% of max_connections"
      filter    = "${local.sql_resource} AND metric.type = \"cloudsql.googleapis.com/database/postgresql/num_backends\""
      threshold = floor(var.postgres_max_connections * 0.9)
      duration  = "300s"
      aligner   = "ALIGN_MAX"
      reducer   = "REDUCE_SUM"
      severity  = "CRITICAL"
      doc       = "Connections to Cloud SQL (all databases) near max_connections: new connections are refused next. PgBouncer's pools and the migration Jobs should stay within the chart's database.connectionBudget (ADR 0025); look for a client connecting around PgBouncer."
    }
    postgres-disk = {
      title     = "Cloud SQL disk above 85%"
      filter    = "${local.sql_resource} AND metric.type = \"cloudsql.googleapis.com/database/disk/utilization\""
      threshold = 0.85
      duration  = "600s"
      aligner   = "ALIGN_MAX"
      reducer   = null
      severity  = "WARNING"
      doc       = "Cloud SQL's disk grows automatically, but growth this fast means a runaway table, WAL kept for a stuck slot, or temporary files; find it before the automatic increases cost more than the fix."
    }
    redis-memory = {
      title     = "Memorystore memory above 80% of maxmemory"
      filter    = "${local.redis_resource} AND metric.type = \"redis.googleapis.com/stats/memory/usage_ratio\""
      threshold = 0.8
      duration  = "300s"
      aligner   = "ALIGN_MAX"
      reducer   = null
      severity  = "CRITICAL"
      doc       = "Redis runs with maxmemory-policy noeviction (inventory's holds must never be evicted): at maxmemory every write fails. Raise redis_memory_gb before it is reached."
    }
    redis-system-memory = {
      title     = "Memorystore system memory above 80%"
      filter    = "${local.redis_resource} AND metric.type = \"redis.googleapis.com/stats/memory/system_memory_usage_ratio\""
      threshold = 0.8
      duration  = "300s"
      aligner   = "ALIGN_MAX"
      reducer   = null
      severity  = "WARNING"
      doc       = "The instance's system memory (Redis plus snapshot copy-on-write) is high; an RDB snapshot may fail or the instance be restarted. Raise redis_memory_gb."
    }
    redis-cpu = {
      title     = "Memorystore main thread CPU above 90%"
      filter    = "${local.redis_resource} AND metric.type = \"redis.googleapis.com/stats/cpu_utilization_main_thread\""
      threshold = 0.9
      duration  = "300s"
      aligner   = "ALIGN_MEAN"
      reducer   = "REDUCE_MAX"
      severity  = "WARNING"
      doc       = "Redis executes commands on one thread: when it is busy, every command's latency grows (holds, login throttling, the waiting room). Look for expensive commands (SLOWLOG) before scaling."
    }
    redis-replication-lag = {
      title     = "Memorystore replica lagging"
      filter    = "${local.redis_resource} AND metric.type = \"redis.googleapis.com/replication/master/slaves/lag\""
      threshold = 10
      duration  = "300s"
      aligner   = "ALIGN_MAX"
      reducer   = "REDUCE_MAX"
      severity  = "WARNING"
      doc       = "The STANDARD_HA replica is behind its primary: a failover now loses the writes it has not received (holds taken in that window)."
    }
    kafka-consumer-lag = {
      title     = "Managed Kafka consumer group lagging"
      filter    = "${local.kafka_resource} AND metric.type = \"managedkafka.googleapis.com/offset_lag\""
      threshold = var.kafka_lag_alert_threshold
      duration  = "900s"
      aligner   = "ALIGN_MAX"
      reducer   = "REDUCE_MAX"
      severity  = "WARNING"
      doc       = "A consumer group has fallen behind for 15 minutes: the saga, restocking or e-mails are late. The chart's consumer-lag alerts name the group; check the service's pods and its DLQ."
    }
  }
}

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_emails)

  project      = var.project_id
  display_name = "ticketing alerts: ${each.value}"
  type         = "email"
  labels       = { email_address = each.value }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "this" {
  for_each = local.alerts

  project               = var.project_id
  display_name          = "${var.name}: ${each.value.title}"
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = [for channel in google_monitoring_notification_channel.email : channel.name]
  user_labels           = local.labels

  conditions {
    display_name = each.value.title

    condition_threshold {
      filter          = each.value.filter
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = each.value.duration

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = each.value.aligner
        cross_series_reducer = each.value.reducer
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = each.value.doc
    mime_type = "text/markdown"
  }

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_project_service.apis]
}
