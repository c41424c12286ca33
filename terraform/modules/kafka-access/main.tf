# Who may do what on the platform's Kafka topics: the one table both cloud modules turn
# into grants, Managed Kafka ACLs on GKE and MSK IAM policies on EKS. It has no resources
# of its own.
#
# Built from the services' code: each topic is written only by the service that owns it
# (its outbox relay), but for audit.events, which every service performing privileged actions
# writes; each consumer group belongs to one service and reads only the topics
# that service consumes. A consumer that gives up on a message copies it to `<topic>.dlq`,
# so a DLQ is written by the consumers of its topic (and read by operators, never by a
# service). Services create the topics they touch at start (kafka.create_topics); creating
# an existing topic changes nothing, so Create follows what each service's start-up ensures.

terraform {
  required_version = ">= 1.10.0, < 2.0.0"
}

variable "topic_namespace" {
  description = "The chart's config.kafka.topicNamespace: prefixes every topic and consumer group (empty: none)."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]*$", var.topic_namespace))
    error_message = "topic_namespace may hold only [A-Za-z0-9._-]."
  }
}

variable "principals" {
  description = "Each service's principal (GKE: User:<service account email>, its ACLs' principal; EKS: its IAM role's ARN, whose policy holds the grants); services left out get no access."
  type        = map(string)
}

locals {
  prefix = var.topic_namespace == "" ? "" : "${var.topic_namespace}."

  # Topic -> the service whose outbox relay writes it (services/<service>/src/service.rs TOPIC).
  owners = {
    "identity.events"  = "identity"
    "catalog.events"   = "catalog"
    "inventory.events" = "inventory"
    "booking.events"   = "booking"
    "payment.events"   = "payment"
  }

  # Topics several services write through their outboxes: each service's audit records of
  # privileged actions (ADR 0046), which identity keeps.
  shared = {
    "audit.events" = ["identity", "catalog", "booking", "payment"]
  }
  writes = concat(
    [for topic, service in local.owners : { service = service, topic = topic }],
    flatten([for topic, services in local.shared : [for service in services : { service = service, topic = topic }]]),
  )

  # Consumer group -> its service and the topics it reads (the services' GROUP constants).
  groups = {
    "booking.saga"                = { service = "booking", topics = ["payment.events", "inventory.events", "catalog.events", "booking.events"] }
    "inventory.catalog-events"    = { service = "inventory", topics = ["catalog.events"] }
    "payment.booking-events"      = { service = "payment", topics = ["booking.events"] }
    "notification.records"        = { service = "notification", topics = ["identity.events", "catalog.events", "booking.events"] }
    "notification.booking-emails" = { service = "notification", topics = ["booking.events"] }
    "notification.payment-emails" = { service = "notification", topics = ["payment.events"] }
    "identity.audit"              = { service = "identity", topics = ["audit.events"] }
    # The pre-scaler reads catalog.events from the start each time, committing nothing.
    "prescaler" = { service = "prescaler", topics = ["catalog.events"] }
  }

  # Topics each service reads, and the DLQs its consumers write.
  reads = {
    for service in distinct([for g in values(local.groups) : g.service]) : service => distinct(flatten([
      for g in values(local.groups) : g.topics if g.service == service
    ]))
  }
  dead_letters = {
    for service, topics in local.reads : service => service == "prescaler" ? [] : [for t in topics : "${t}.dlq"]
  }

  writers = distinct(concat([for w in local.writes : w.service], [for service, dlqs in local.dead_letters : service if length(dlqs) > 0]))

  # One binding per (service, resource, operation), names in the namespace.
  bindings = [for b in distinct(concat(
    [for w in local.writes : { service = w.service, type = "Topic", name = w.topic, operation = "Write" }],
    [for w in local.writes : { service = w.service, type = "Topic", name = w.topic, operation = "Create" }],
    # The producers are idempotent (brokers before Kafka 3.0 ask for this on the cluster).
    [for service in local.writers : { service = service, type = "Cluster", name = "kafka-cluster", operation = "IdempotentWrite" }],
    flatten([for service, topics in local.reads : [for t in topics : { service = service, type = "Topic", name = t, operation = "Read" }]]),
    flatten([for service, topics in local.reads : [for t in topics : { service = service, type = "Topic", name = t, operation = "Create" } if service != "prescaler"]]),
    flatten([for service, dlqs in local.dead_letters : [for t in dlqs : { service = service, type = "Topic", name = t, operation = "Write" }]]),
    flatten([for service, dlqs in local.dead_letters : [for t in dlqs : { service = service, type = "Topic", name = t, operation = "Create" }]]),
    [for group, g in local.groups : { service = g.service, type = "Group", name = group, operation = "Read" }],
    )) : merge(b, {
    name      = b.type == "Cluster" ? b.name : "${local.prefix}${b.name}"
    principal = var.principals[b.service]
    }) if contains(keys(var.principals), b.service)
  ]
}

output "bindings" {
  description = "Every grant: service, principal, type (Topic, Group or Cluster), name (namespaced), operation (Kafka ACL operation)."
  value       = { for b in local.bindings : "${b.service}/${b.type}/${b.name}/${b.operation}" => b }
}

output "by_resource" {
  description = "The same grants grouped by resource: \"<type>/<name>\" => list of {principal, operation}."
  value = {
    for key in distinct([for b in local.bindings : "${b.type}/${b.name}"]) : key => [
      for b in local.bindings : { principal = b.principal, operation = b.operation } if "${b.type}/${b.name}" == key
    ]
  }
}

output "topics" {
  description = "Every topic of the platform, namespaced, DLQs included."
  value       = sort(distinct([for b in local.bindings : b.name if b.type == "Topic"]))
}
