#!/usr/bin/env python3
"""The Grafana dashboards, and the offline checks of every observability artifact.

  observability.py dashboards   writes charts/ticketing/files/grafana/*.json from the
                                definitions below (the JSON is generated: edit this file)
  observability.py check        the checks scripts/check-observability.sh runs (below)
  observability.py exprs        prints every dashboard query as JSON, Grafana variables
                                replaced, for a check against a live Prometheus

`check`:
  1. the committed dashboards are what `dashboards` generates (no hand edits, no drift);
  2. every dashboard query parses as PromQL: they are written as recording rules into a
     temporary rule file and `promtool check rules` parses it (promtool has no command to
     parse a bare expression);
  3. every metric a dashboard or a rule uses is in the metric contract (docs/observability.md);
  4. every alert has a severity (page or ticket), a summary, a description, a runbook_url
     pointing at docs/runbooks/<alert>.md, and that runbook exists; every runbook belongs to
     an alert; docs/observability.md lists every alert;
  5. the rules file and the chart's rules templates agree: the PrometheusRule and the GMP
     Rules templates read the file with .Files.Get.
promtool check/test rules and amtool check-config run in scripts/check-observability.sh.

Needs PyYAML (scripts/check-observability.sh picks a Python that has it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(ROOT, "charts", "ticketing")
DASHBOARDS_DIR = os.path.join(CHART, "files", "grafana")
RULES = os.path.join(CHART, "files", "prometheus", "ticketing.rules.yml")
# The chart's rules objects: the PrometheusRule and the GMP Rules (or ClusterRules).
RULE_TEMPLATES = [os.path.join(CHART, "templates", t) for t in ("prometheusrule.yaml", "gmprules.yaml")]
CONTRACT = os.path.join(ROOT, "docs", "observability.md")
RUNBOOKS = os.path.join(ROOT, "docs", "runbooks")
RUNBOOK_URL = "https://github.com/ticketing/ticketing/blob/main/docs/runbooks/{}.md"
SEVERITIES = {"page", "ticket"}

SERVICES = "gateway|identity|catalog|inventory|booking|payment|notification"
# gRPC codes that are the server's fault; the rest are the caller's (or not errors).
GRPC_SERVER_ERRORS = "Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss"
HOLD = 'service="gateway",method="POST",route="/v1/events/{id}/holds"'
BOOKINGS = 'service="gateway",route=~"/v1/bookings.*"'
RI = "$__rate_interval"

# --- dashboard definitions ---------------------------------------------------------------

DS = {"type": "prometheus", "uid": "${datasource}"}


def q(expr: str, legend: str = "", instant: bool = False) -> dict:
    """One query of a panel."""
    return {"expr": expr, "legend": legend, "instant": instant}


def ts(title, unit, *queries, desc="", w=12, h=8, stack=False, max_=None):
    """A time series panel."""
    return {"type": "timeseries", "title": title, "unit": unit, "queries": queries, "desc": desc,
            "w": w, "h": h, "stack": stack, "max": max_}


def stat(title, unit, *queries, desc="", w=6, h=4, thresholds=None):
    """A stat panel showing the last value; thresholds: [(value, color)] above the green base."""
    return {"type": "stat", "title": title, "unit": unit, "queries": queries, "desc": desc,
            "w": w, "h": h, "thresholds": thresholds or []}


def bars(title, unit, *queries, desc="", w=12, h=8, max_=None):
    """A bar gauge of the last values (one bar per series)."""
    return {"type": "bargauge", "title": title, "unit": unit, "queries": queries, "desc": desc,
            "w": w, "h": h, "max": max_}


def row(title):
    return {"type": "row", "title": title}


def p99(metric_selector: str, by: str, q_: float = 0.99) -> str:
    by_le = f"{by}, le" if by else "le"
    return f"histogram_quantile({q_}, sum by ({by_le}) (rate({metric_selector}[{RI}])))"


def var_query(name, label, query, all_=True, multi=True):
    return {"name": name, "label": label, "query": query, "all": all_, "multi": multi}


def overview():
    svc = 'service=~"$service"'
    return {
        "uid": "ticketing-overview",
        "title": "Ticketing / Platform overview",
        "description": "Golden signals (traffic, errors, latency, saturation) per service, and the SLOs' burn rates.",
        "vars": [var_query("service", "Service", "label_values(grpc_server_requests_total, service)")],
        "panels": [
            row("SLOs"),
            ts("SLO burn rate (1h)", "x",
               q("slo:sli_error:ratio_rate1h / on (slo) slo:error_budget:ratio", "{{slo}}"),
               desc="Error ratio over the last hour divided by the error budget: 1 spends the 30-day budget in exactly 30 days; "
                    "14.4 pages (with the 5m window). Needs the chart's recording rules."),
            ts("SLO burn rate (6h)", "x",
               q("slo:sli_error:ratio_rate6h / on (slo) slo:error_budget:ratio", "{{slo}}"),
               desc="6 (with the 30m window) pages; 1 over 3d opens a ticket."),
            row("gRPC (every service)"),
            ts("Requests/s", "reqps",
               q(f"sum by (service) (rate(grpc_server_requests_total{{{svc}}}[{RI}]))", "{{service}}"), w=8),
            ts("Server errors", "percentunit",
               q(f'sum by (service) (rate(grpc_server_requests_total{{{svc},code=~"{GRPC_SERVER_ERRORS}"}}[{RI}]))\n'
                 f"  /\nsum by (service) (rate(grpc_server_requests_total{{{svc}}}[{RI}]))", "{{service}}"),
               desc=f"Share of calls answered {GRPC_SERVER_ERRORS.replace('|', ', ')}.", w=8),
            ts("p99 latency", "s",
               q(p99(f"grpc_server_request_duration_seconds_bucket{{{svc}}}", "service"), "{{service}}"), w=8),
            ts("Requests/s by method and code", "reqps",
               q(f"sum by (service, method, code) (rate(grpc_server_requests_total{{{svc}}}[{RI}]))",
                 "{{service}} {{method}} {{code}}")),
            ts("p99 latency by method (slowest 10)", "s",
               q(f"topk(10, {p99(f'grpc_server_request_duration_seconds_bucket{{{svc}}}', 'service, method')})",
                 "{{method}}")),
            row("Public HTTP API (gateway)"),
            ts("Requests/s by route", "reqps",
               q(f'sum by (method, route) (rate(http_server_requests_total{{service="gateway"}}[{RI}]))',
                 "{{method}} {{route}}"), w=8),
            ts("5xx by route", "percentunit",
               # `or 0 * all`: a route without 5xx shows 0, not "no data".
               q(f'(sum by (method, route) (rate(http_server_requests_total{{service="gateway",status=~"5.."}}[{RI}]))\n'
                 f'  or 0 * sum by (method, route) (rate(http_server_requests_total{{service="gateway"}}[{RI}])))\n'
                 f'  /\nsum by (method, route) (rate(http_server_requests_total{{service="gateway"}}[{RI}]))',
                 "{{method}} {{route}}"), w=8),
            ts("p99 latency by route", "s",
               q(p99('http_server_request_duration_seconds_bucket{service="gateway"}', "method, route"),
                 "{{method}} {{route}}"), w=8),
            ts("Requests refused (429, 503)", "reqps",
               q(f'sum by (route, status) (rate(http_server_requests_total{{service="gateway",status=~"429|503"}}[{RI}]))',
                 "{{status}} {{route}}"),
               desc="429: rate limits; 503: load shedding (max_concurrency), an open circuit breaker or a backend down.",
               w=8),
            ts("Circuit breakers", "short",
               q("max by (backend) (gateway_circuit_breaker_state)", "{{backend}}"),
               desc="0 closed, 1 half-open, 2 open (the worst gateway pod).", max_=2, w=8),
            ts("Backend retries and unchecked rate limits", "reqps",
               q(f"sum by (backend) (rate(gateway_backend_retries_total[{RI}]))", "retry {{backend}}"),
               q(f"sum(rate(gateway_rate_limit_unchecked_total[{RI}]))", "rate limit unchecked (Redis slow or down)"),
               w=8),
            row("Saturation and dependencies"),
            ts("Postgres pool in use", "percentunit",
               q(f'sum by (service) (db_pool_connections{{{svc},state="in_use"}})\n  /\n'
                 f"sum by (service) (db_pool_max_connections{{{svc}}})", "{{service}}"), w=8, max_=1),
            ts("Postgres pool acquire p99", "s",
               q(p99(f"db_pool_acquire_duration_seconds_bucket{{{svc}}}", "service"), "{{service}}"), w=8),
            ts("Redis p99 by operation", "s",
               q(p99(f"redis_command_duration_seconds_bucket{{{svc}}}", "service, operation"),
                 "{{service}} {{operation}}"), w=8),
            ts("Dependencies reachable (worst replica)", "short",
               q(f"min by (service, dependency) (platform_dependency_up{{{svc}}})", "{{service}} → {{dependency}}"),
               desc="1 up, 0 down.", max_=1),
            ts("Replicas vs HPA maximum", "short",
               q(f'max by (horizontalpodautoscaler) (kube_horizontalpodautoscaler_status_current_replicas{{horizontalpodautoscaler=~".*-({SERVICES})"}})',
                 "{{horizontalpodautoscaler}}"),
               q(f'max by (horizontalpodautoscaler) (kube_horizontalpodautoscaler_spec_max_replicas{{horizontalpodautoscaler=~".*-({SERVICES})"}})',
                 "{{horizontalpodautoscaler}} max"),
               desc="From kube-state-metrics."),
            ts("Redis memory", "bytes",
               q(f"max by (service) (redis_memory_used_bytes{{{svc}}})", "{{service}} used"),
               q(f"max by (service) (redis_memory_max_bytes{{{svc}}})", "{{service}} maxmemory"),
               desc="INFO memory of the Redis each service uses (maxmemory 0: no limit). With noeviction, "
                    "writes fail at the limit: RedisMemoryNearlyFull pages at 90%."),
            ts("Pending pods", "short",
               q(f'sum by (service) (label_replace(kube_pod_status_phase{{phase="Pending",pod=~".+-({SERVICES})-[a-z0-9]+-[a-z0-9]+"}}, '
                 f'"service", "$1", "pod", ".+-({SERVICES})-[a-z0-9]+-[a-z0-9]+"))', "{{service}}"),
               desc="Pods the scheduler has not placed (kube-state-metrics): a scale-out waiting for nodes."),
            ts("Container restarts (1h)", "short",
               q(f'sum by (container) (increase(kube_pod_container_status_restarts_total{{container=~"{SERVICES}"}}[1h]))',
                 "{{container}}"),
               desc="From kube-state-metrics."),
        ],
    }


def onsale():
    ev = 'event_id=~"$event_id"'
    return {
        "uid": "ticketing-onsale",
        "title": "Ticketing / On-sale live",
        "description": "What buyers get during an on-sale: holds, stock per category, the waiting room, conversion and the hot APIs' latency.",
        "refresh": "5s",
        "time": "now-30m",
        "vars": [var_query("event_id", "Event", "label_values(inventory_category_capacity, event_id)")],
        "panels": [
            stat("Oversold categories", "short",
                 q('count(\n  max by (event_id, category) (inventory_category_seats{state="sold"})\n'
                   "    > on (event_id, category)\n  max by (event_id, category) (inventory_category_capacity)\n) or vector(0)"),
                 desc="Sold (the Postgres ledger) above capacity. Must stay 0: the OversellDetected alert pages on it.",
                 thresholds=[(1, "red")]),
            stat("Holds granted/s", "reqps", q(f'sum(rate(inventory_holds_total{{result="granted"}}[{RI}]))')),
            stat("Hold → paid (15m)", "percentunit",
                 q('sum(rate(booking_transitions_total{to="confirmed"}[15m]))\n  /\n'
                   'sum(rate(inventory_holds_total{result="granted"}[15m]))'),
                 desc="Bookings confirmed per hold granted over the last 15 minutes."),
            stat("Buyers waiting", "short", q(f"sum(max by (event_id) (gateway_waiting_room_length{{{ev}}}))")),
            ts("Holds/s by result", "reqps",
               q(f"sum by (result) (rate(inventory_holds_total[{RI}]))", "{{result}}"), stack=True),
            ts("Hold API p99", "s",
               q(p99(f"http_server_request_duration_seconds_bucket{{{HOLD}}}", ""), "gateway POST /v1/events/{id}/holds"),
               # The gateway sends holds in HoldBatch calls (gateway.inventory_batch_size), other
               # callers in Hold calls: a batch's time is its slowest hold's.
               q(p99('grpc_server_request_duration_seconds_bucket{service="inventory",'
                     'method=~"/ticketing.inventory.v1.Inventory/(Hold|HoldBatch)"}', ""),
                 "inventory Hold and HoldBatch (gRPC)"),
               desc="SLO: p99 under 100 ms."),
            bars("Sold / capacity per category", "percentunit",
                 q(f'max by (event_id, category) (inventory_category_seats{{{ev},state="sold"}})\n'
                   f"  / on (event_id, category)\nmax by (event_id, category) (inventory_category_capacity{{{ev}}})",
                   "{{event_id}} {{category}}", instant=True), max_=1),
            ts("Seats per category", "short",
               q(f"max by (category, state) (inventory_category_seats{{{ev}}})", "{{category}} {{state}}"),
               q(f"max by (category) (inventory_category_capacity{{{ev}}})", "{{category}} capacity"),
               desc="available + held + sold = capacity (invariant I1)."),
            ts("Waiting room", "short",
               q(f"max by (event_id) (gateway_waiting_room_length{{{ev}}})", "{{event_id}} waiting"),
               w=8),
            ts("Waiting room: joins and admissions/s", "reqps",
               q(f"sum by (event_id) (rate(gateway_waiting_room_joined_total{{{ev}}}[{RI}]))", "{{event_id}} joined"),
               q(f"sum by (event_id) (rate(gateway_waiting_room_admitted_total{{{ev}}}[{RI}]))", "{{event_id}} admitted"),
               w=8),
            ts("Waiting room: time to admission", "s",
               q(p99(f"gateway_waiting_room_wait_seconds_bucket{{{ev}}}", "event_id", 0.5), "{{event_id}} p50"),
               q(p99(f"gateway_waiting_room_wait_seconds_bucket{{{ev}}}", "event_id"), "{{event_id}} p99"),
               w=8),
            ts("Tickets sold/min", "short",
               q(f"sum by (event_id) (rate(booking_tickets_sold_total{{{ev}}}[{RI}])) * 60", "{{event_id}}")),
            stat("Revenue in the time range", "short",
                 q(f"sum by (currency) (increase(booking_revenue_total{{{ev}}}[$__range]))", "{{currency}}"),
                 desc="In the currency's major unit.", w=12, h=8),
            ts("Hold outcomes/s", "reqps",
               q(f"sum by (outcome) (rate(inventory_holds_ended_total[{RI}]))", "{{outcome}}"),
               desc="Every hold ends once: confirmed, released or expired (invariant I5)."),
            ts("Bookings/s by state entered", "reqps",
               q(f"sum by (to) (rate(booking_transitions_total[{RI}]))", "{{to}}")),
            ts("Booking API p99 by route", "s",
               q(p99(f"http_server_request_duration_seconds_bucket{{{BOOKINGS}}}", "method, route"),
                 "{{method}} {{route}}")),
            ts("Payment → CONFIRMED p99", "s",
               q(p99("booking_payment_to_confirmed_seconds_bucket", ""), "p99"),
               desc="SLO: p99 under 5 s."),
            ts("Hold batch size (coalescing)", "short",
               q(p99("inventory_hold_batch_size_bucket", "", 0.5), "p50"),
               q(p99("inventory_hold_batch_size_bucket", ""), "p99"),
               desc="Holds per Redis script call: grows with contention."),
        ],
    }


def kafka():
    return {
        "uid": "ticketing-kafka",
        "title": "Ticketing / Kafka and outbox",
        "description": "Outbox relays, consumers, lag and dead letters: whether state changes flow between services.",
        "vars": [],
        "panels": [
            row("Outbox"),
            ts("Relayed/s", "reqps",
               q(f"sum by (service, result) (rate(outbox_relay_messages_total[{RI}]))", "{{service}} {{result}}"), w=8),
            ts("Backlog (unpublished rows)", "short",
               q("max by (service) (outbox_pending_messages)", "{{service}}"), w=8),
            ts("Oldest unpublished row", "s",
               q("max by (service) (outbox_oldest_pending_age_seconds)", "{{service}}"),
               desc="The OutboxBacklogStale alert pages above 60 s for 5 minutes.", w=8),
            row("Consumers"),
            ts("Consumed/s by outcome", "reqps",
               q(f"sum by (group, topic, outcome) (rate(kafka_consumer_messages_total[{RI}]))",
                 "{{group}} ← {{topic}} {{outcome}}")),
            ts("Lag", "short",
               q("sum by (group, topic) (max by (group, topic, partition) (kafka_consumer_lag_messages))",
                 "{{group}} ← {{topic}}")),
            ts("Duplicates skipped", "percentunit",
               q(f'sum by (group, topic) (rate(kafka_consumer_messages_total{{outcome="duplicate"}}[{RI}]))\n  /\n'
                 f"sum by (group, topic) (rate(kafka_consumer_messages_total[{RI}]))", "{{group}} ← {{topic}}"),
               desc="Redeliveries the processed-events table absorbed (at-least-once delivery)."),
            ts("Dead-lettered (1h)", "short",
               q('sum by (group, topic) (increase(kafka_consumer_messages_total{outcome="dead_lettered"}[1h]))',
                 "{{group}} ← {{topic}}")),
            bars("Messages in dead-letter topics", "short",
                 q("max by (topic) (kafka_dlq_messages)", "{{topic}}", instant=True)),
            ts("Kafka reachable (worst replica)", "short",
               q('min by (service) (platform_dependency_up{dependency="kafka"})', "{{service}}"), max_=1),
            row("Group membership"),
            ts("Stalled consumers", "short",
               q("max by (service, group) (kafka_consumer_stalled)", "{{group}}"), max_=1, w=8,
               desc="1 while a partition has kept unconsumed messages with no progress past "
                    "kafka.consumer_stall_timeout on a replica that owns it or owns nothing: that replica is "
                    "unready and rejoins its group. KafkaConsumerStalled pages after 2 minutes."),
            ts("Assigned partitions", "short",
               q("sum by (group) (kafka_consumer_assigned_partitions)", "{{group}}"), w=8,
               desc="Partitions assigned to the group's members, summed over replicas: fewer than the topics' "
                    "partitions while messages wait means some are consumed by no one."),
            ts("Rejoins (1h)", "short",
               q("sum by (group) (increase(kafka_consumer_rejoins_total[1h]))", "{{group}}"), w=8),
        ],
    }


def payments():
    return {
        "uid": "ticketing-payments",
        "title": "Ticketing / Payments",
        "description": "Charges, failures by provider and code, provider latency, refunds, webhooks and reconciliation.",
        "vars": [var_query("provider", "Provider", "label_values(payment_charges_total, provider)")],
        "panels": [
            stat("Charges/s", "reqps", q(f'sum(rate(payment_charges_total{{provider=~"$provider"}}[{RI}]))')),
            stat("Failed or unknown (10m)", "percentunit",
                 q('sum(rate(payment_charges_total{provider=~"$provider",result=~"failed|unknown"}[10m]))\n  /\n'
                   'sum(rate(payment_charges_total{provider=~"$provider"}[10m]))'),
                 desc="PaymentFailureRateHigh pages above 30%.", thresholds=[(0.15, "orange"), (0.3, "red")]),
            stat("Payment → CONFIRMED p99", "s", q(p99("booking_payment_to_confirmed_seconds_bucket", "")),
                 thresholds=[(5, "red")]),
            stat("Refunds/s", "reqps", q(f'sum(rate(payment_refunds_total{{provider=~"$provider"}}[{RI}]))')),
            ts("Charges/s by result", "reqps",
               q(f'sum by (provider, result) (rate(payment_charges_total{{provider=~"$provider"}}[{RI}]))',
                 "{{provider}} {{result}}"), stack=True),
            ts("Failures/s by code", "reqps",
               q(f'sum by (provider, code) (rate(payment_charge_failures_total{{provider=~"$provider"}}[{RI}]))',
                 "{{provider}} {{code}}"), stack=True),
            ts("Provider call p99", "s",
               q(p99('payment_provider_request_duration_seconds_bucket{provider=~"$provider"}', "provider, operation"),
                 "{{provider}} {{operation}}")),
            ts("Provider calls/s by result", "reqps",
               q(f'sum by (provider, operation, result) (rate(payment_provider_request_duration_seconds_count{{provider=~"$provider"}}[{RI}]))',
                 "{{provider}} {{operation}} {{result}}")),
            ts("Charge API (gRPC)", "s",
               q(p99('grpc_server_request_duration_seconds_bucket{service="payment",method="/ticketing.payment.v1.Payment/Charge"}', ""),
                 "p99"),
               w=8),
            ts("Refunds/s by result", "reqps",
               q(f'sum by (provider, result) (rate(payment_refunds_total{{provider=~"$provider"}}[{RI}]))',
                 "{{provider}} {{result}}"), w=8),
            ts("Webhooks/s by result", "reqps",
               q(f'sum by (provider, result) (rate(payment_webhooks_total{{provider=~"$provider"}}[{RI}]))',
                 "{{provider}} {{result}}"), w=8),
            ts("Reconciliations/s", "reqps",
               q(f'sum by (provider, kind, result) (rate(payment_reconciliations_total{{provider=~"$provider"}}[{RI}]))',
                 "{{provider}} {{kind}} {{result}}")),
            ts("Bookings cancelled, expired, refunded/s", "reqps",
               q(f'sum by (to) (rate(booking_transitions_total{{to=~"cancelled|expired|refund_pending|refunded"}}[{RI}]))',
                 "{{to}}")),
        ],
    }


DASHBOARDS = {"overview": overview, "onsale": onsale, "kafka": kafka, "payments": payments}


def render_dashboard(d: dict) -> dict:
    """Grafana JSON (schema 39) for a definition: a 24-column grid, panels left to right."""
    panels, x, y, row_h, pid = [], 0, 0, 0, 0
    for p in d["panels"]:
        pid += 1
        if p["type"] == "row":
            if x:
                x, y = 0, y + row_h
            panels.append({"id": pid, "type": "row", "title": p["title"], "collapsed": False, "panels": [],
                           "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
            y, row_h = y + 1, 0
            continue
        if x + p["w"] > 24:
            x, y, row_h = 0, y + row_h, 0
        targets = []
        for i, query in enumerate(p["queries"]):
            t = {"refId": chr(ord("A") + i), "datasource": DS, "expr": query["expr"], "range": not query["instant"],
                 "instant": query["instant"]}
            if query["legend"]:
                t["legendFormat"] = query["legend"]
            targets.append(t)
        steps = [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in p.get("thresholds", [])]
        defaults = {"unit": p["unit"], "thresholds": {"mode": "absolute", "steps": steps}}
        if p.get("max") is not None:
            defaults["max"] = p["max"]
            defaults["min"] = 0
        panel = {"id": pid, "type": p["type"], "title": p["title"], "datasource": DS,
                 "gridPos": {"h": p["h"], "w": p["w"], "x": x, "y": y}, "targets": targets}
        if p["desc"]:
            panel["description"] = p["desc"]
        if p["type"] == "timeseries":
            defaults["custom"] = {"fillOpacity": 10 if not p["stack"] else 60, "lineWidth": 1, "showPoints": "never",
                                  "stacking": {"mode": "normal" if p["stack"] else "none", "group": "A"}}
            defaults["color"] = {"mode": "palette-classic"}
            panel["options"] = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                                "tooltip": {"mode": "multi", "sort": "desc"}}
        elif p["type"] == "stat":
            defaults["color"] = {"mode": "thresholds"}
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                "colorMode": "value", "graphMode": "area", "textMode": "auto"}
        else:
            defaults["color"] = {"mode": "continuous-GrYlRd"}
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                "displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True}
        panel["fieldConfig"] = {"defaults": defaults, "overrides": []}
        panels.append(panel)
        x += p["w"]
        row_h = max(row_h, p["h"])
    variables = [{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
                  "current": {}, "hide": 0, "refresh": 1, "options": []}]
    for v in d["vars"]:
        variables.append({"name": v["name"], "label": v["label"], "type": "query", "datasource": DS,
                          "definition": v["query"], "query": {"query": v["query"], "refId": "Variable"},
                          "refresh": 2, "sort": 1, "includeAll": v["all"], "multi": v["multi"],
                          "allValue": ".*", "current": {"text": "All", "value": "$__all"}, "options": [], "hide": 0})
    return {
        "uid": d["uid"],
        "title": d["title"],
        "description": d["description"],
        "tags": ["ticketing"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": d.get("refresh", "30s"),
        "time": {"from": d.get("time", "now-3h"), "to": "now"},
        "timezone": "utc",
        "annotations": {"list": []},
        "links": [{"title": "Runbooks", "type": "link", "targetBlank": True,
                   "url": "https://github.com/ticketing/ticketing/tree/main/docs/runbooks"}],
        "templating": {"list": variables},
        "panels": panels,
    }


def dashboard_files() -> dict[str, str]:
    return {f"ticketing-{name}.json": json.dumps(render_dashboard(make()), indent=2, ensure_ascii=False) + "\n"
            for name, make in DASHBOARDS.items()}


def write_dashboards() -> None:
    os.makedirs(DASHBOARDS_DIR, exist_ok=True)
    for name, text in dashboard_files().items():
        with open(os.path.join(DASHBOARDS_DIR, name), "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {os.path.relpath(os.path.join(DASHBOARDS_DIR, name), ROOT)}")


# --- expressions ------------------------------------------------------------------------

# What Grafana replaces before a query reaches Prometheus, for parsing and live checks.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def substitute(expr: str) -> str:
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    # Template variables are used as regex matchers (`=~"$var"`); All is `.*`.
    return re.sub(r"\$\{?[A-Za-z_]\w*\}?", ".*", expr)


def dashboard_exprs() -> list[dict]:
    """Every query of the committed dashboards (targets and variable queries), substituted."""
    out = []
    for name in sorted(os.listdir(DASHBOARDS_DIR)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(DASHBOARDS_DIR, name), encoding="utf-8") as f:
            d = json.load(f)
        for p in d.get("panels", []):
            for t in p.get("targets", []):
                out.append({"dashboard": name, "panel": p["title"], "expr": substitute(t["expr"]), "kind": "panel"})
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["definition"].strip())
            if not m:
                raise SystemExit(f"{name}: variable {v['name']}: only label_values(selector, label) is supported")
            out.append({"dashboard": name, "panel": f"variable {v['name']}", "expr": substitute(m.group(1)),
                        "kind": "variable"})
    return out


PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
    "inf", "nan", "atan2",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (a tokenizer, not a parser: enough for our queries)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word) or word[0].isdigit():
            continue
        names.add(word)
    return names


def base_name(name: str) -> str:
    return re.sub(r"_(bucket|count|sum)$", "", name)


# --- checks -----------------------------------------------------------------------------


def load_yaml(path):
    import yaml  # PyYAML; imported here so `dashboards` runs without it

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def contract_metrics() -> dict[str, str]:
    """docs/observability.md's metric tables: name -> status (exists, planned or external)."""
    out = {}
    with open(CONTRACT, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|(.*)", line)
            if m:
                cells = [c.strip() for c in m.group(2).split("|")]
                status = next((c for c in cells if c in ("exists", "planned", "external", "recorded")), None)
                if status:
                    out[m.group(1)] = status
    return out


def promtool_parses(promtool: str, exprs: list[str]) -> tuple[bool, str]:
    """Whether every expression parses: written as recording rules, checked by promtool."""
    import yaml

    rules = [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dashboard-queries.rules.yml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, f, sort_keys=False)
        r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
        return r.returncode == 0, r.stdout + r.stderr


class Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, msg: str) -> None:
        self.problems.append(msg)

    def dashboards_fresh(self) -> None:
        want = dashboard_files()
        have = {n for n in os.listdir(DASHBOARDS_DIR) if n.endswith(".json")}
        for name, text in want.items():
            path = os.path.join(DASHBOARDS_DIR, name)
            if not os.path.exists(path):
                self.fail(f"{name}: missing; run scripts/observability.py dashboards")
            elif open(path, encoding="utf-8").read() != text:
                self.fail(f"{name}: differs from what scripts/observability.py generates; run it (do not edit the JSON)")
        for name in sorted(have - set(want)):
            self.fail(f"{name}: not generated by scripts/observability.py")
        print(f"   {len(want)} dashboards match their definitions")

    def exprs_parse(self, promtool: str) -> None:
        exprs = dashboard_exprs()
        # The trick must reject a broken expression, or it checks nothing.
        if promtool_parses(promtool, ["sum(rate(http_server_requests_total[5m])"])[0]:
            self.fail("promtool check rules accepted a broken expression: the query check checks nothing")
        ok, out = promtool_parses(promtool, [e["expr"] for e in exprs])
        if not ok:
            # The failing rules' names carry the query's index.
            bad = {int(m) for m in re.findall(r'"dashboard:query_(\d+)"', out)}
            for i in sorted(bad):
                if 0 <= i < len(exprs):
                    e = exprs[i]
                    self.fail(f"{e['dashboard']}: {e['panel']}: does not parse: {e['expr']}")
            self.fail(f"promtool check rules on the dashboard queries failed:\n{out}")
        else:
            print(f"   {len(exprs)} dashboard queries parse as PromQL (promtool check rules)")

    def names_in_contract(self) -> None:
        contract = contract_metrics()
        if not contract:
            self.fail(f"{os.path.relpath(CONTRACT, ROOT)}: no metric table found")
            return
        doc = load_yaml(RULES)
        recorded = {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}
        used: dict[str, set[str]] = {}
        for e in dashboard_exprs():
            for n in metric_names(e["expr"]):
                used.setdefault(n, set()).add(f"{e['dashboard']}: {e['panel']}")
        for g in doc["groups"]:
            for r in g["rules"]:
                for n in metric_names(r["expr"]):
                    used.setdefault(n, set()).add(f"rule {r.get('alert') or r.get('record')}")
        planned, before = set(), len(self.problems)
        for n, where in sorted(used.items()):
            if n in recorded:
                continue
            b = base_name(n)
            status = contract.get(n) or contract.get(b)
            if status is None:
                self.fail(f"metric {n} (used by {', '.join(sorted(where))}) is not in docs/observability.md")
            elif status == "planned":
                planned.add(b)
        for r in sorted(recorded):
            if r not in contract:
                self.fail(f"recording rule {r} is not in docs/observability.md")
        if len(self.problems) > before:
            return
        print(f"   {len(used)} metric names used by dashboards and rules, all in the contract; "
              f"{len(planned)} planned (not exported yet): {', '.join(sorted(planned)) or 'none'}")

    def alerts_complete(self) -> None:
        doc = load_yaml(RULES)
        alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
        names = [a["alert"] for a in alerts]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            self.fail(f"alert {dup} is defined more than once")
        with open(CONTRACT, encoding="utf-8") as f:
            contract_text = f.read()
        for a in alerts:
            name = a["alert"]
            labels, ann = a.get("labels") or {}, a.get("annotations") or {}
            if labels.get("severity") not in SEVERITIES:
                self.fail(f"alert {name}: severity must be one of {sorted(SEVERITIES)}, not {labels.get('severity')!r}")
            for key in ("summary", "description"):
                if not ann.get(key):
                    self.fail(f"alert {name}: no {key} annotation")
            if ann.get("runbook_url") != RUNBOOK_URL.format(name):
                self.fail(f"alert {name}: runbook_url must be {RUNBOOK_URL.format(name)}")
            if not os.path.isfile(os.path.join(RUNBOOKS, f"{name}.md")):
                self.fail(f"alert {name}: no runbook docs/runbooks/{name}.md")
            if f"`{name}`" not in contract_text:
                self.fail(f"alert {name}: not listed in docs/observability.md")
        for f in sorted(os.listdir(RUNBOOKS)):
            if f.endswith(".md") and f != "README.md" and f[:-3] not in names:
                self.fail(f"docs/runbooks/{f}: no alert of that name")
        pages = sum(1 for a in alerts if (a.get("labels") or {}).get("severity") == "page")
        print(f"   {len(alerts)} alerts ({pages} page, {len(alerts) - pages} ticket): severity, summary, "
              "description, runbook_url and runbook present")

    def template_reads_rules(self) -> None:
        before = len(self.problems)
        for template in RULE_TEMPLATES:
            with open(template, encoding="utf-8") as f:
                text = f.read()
            if '.Files.Get "files/prometheus/ticketing.rules.yml"' not in text:
                self.fail(f"{os.path.relpath(template, ROOT)} must render files/prometheus/ticketing.rules.yml with .Files.Get")
        if len(self.problems) == before:
            print("   the PrometheusRule and GMP Rules templates render the rules file itself (.Files.Get)")


def check(promtool: str) -> int:
    c = Checker()
    c.dashboards_fresh()
    c.exprs_parse(promtool)
    c.names_in_contract()
    c.alerts_complete()
    c.template_reads_rules()
    for p in c.problems:
        print(f"observability: {p}", file=sys.stderr)
    return 1 if c.problems else 0


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "check"
    if cmd == "dashboards":
        write_dashboards()
        return 0
    if cmd == "exprs":
        json.dump(dashboard_exprs(), sys.stdout, indent=2)
        print()
        return 0
    if cmd == "check":
        return check(os.environ.get("PROMTOOL", "promtool"))
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
