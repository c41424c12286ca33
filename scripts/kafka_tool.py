#!/usr/bin/env python3
"""Small Kafka-protocol helper for the local scripts (not used by the services).

  kafka_tool.py probe --brokers HOST:PORT [--timeout SECONDS]
      Exits 0 once the broker answers real Kafka requests: with kafka-python,
      ApiVersions + Metadata (list topics) + DescribeCluster-style metadata;
      without it (no venv, offline), a hand-written ApiVersions v0 request.
      A TCP connect alone is never taken as an answer.

There is deliberately no "delete topics" command: tansu 0.6.0 with sqlite://
storage deletes every topic of the cluster when asked to delete one (its
topic_delete_by.sql filters on the cluster only). Scripts and tests leave their
namespaced topics in place instead; see docs/adr/0005-tansu-dev-broker.md.
"""

import argparse
import socket
import struct
import sys
import time


def raw_api_versions(host, port, timeout):
    """Sends ApiVersions v0 and returns the number of API keys the broker lists."""
    client_id = b"ticketing-probe"
    correlation_id = 0x7E57
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        header = _recv_exact(sock, 4)
        (size,) = struct.unpack(">i", header)
        payload = _recv_exact(sock, size)
    got_correlation, error_code, count = struct.unpack(">ihi", payload[:10])
    if got_correlation != correlation_id:
        raise RuntimeError(f"correlation id {got_correlation} != {correlation_id}")
    if error_code != 0:
        raise RuntimeError(f"ApiVersions error code {error_code}")
    if count <= 0:
        raise RuntimeError("broker listed no APIs")
    return count


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("connection closed mid-response")
        buf += chunk
    return buf


def split_broker(brokers):
    first = brokers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return host.strip("[]"), int(port)


def probe_once(brokers, timeout):
    """One attempt. Returns a description of what answered, or raises."""
    try:
        from kafka import KafkaAdminClient  # type: ignore
    except ImportError:
        host, port = split_broker(brokers)
        count = raw_api_versions(host, port, timeout)
        return f"ApiVersions answered with {count} APIs (raw probe; kafka-python not installed)"
    admin = KafkaAdminClient(
        bootstrap_servers=brokers.split(","),
        client_id="ticketing-probe",
        request_timeout_ms=int(timeout * 1000),
        api_version_auto_timeout_ms=int(timeout * 1000),
    )
    try:
        topics = admin.list_topics()
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    brokers_seen = [f"{b['host']}:{b['port']}" for b in cluster.get("brokers", [])]
    return (
        f"metadata answered: cluster {cluster.get('cluster_id')!r}, "
        f"brokers {brokers_seen}, {len(topics)} topics"
    )


def cmd_probe(args):
    deadline = time.monotonic() + args.timeout
    last = None
    while True:
        try:
            print(probe_once(args.brokers, min(5.0, max(1.0, args.timeout))))
            return 0
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = e
        if time.monotonic() >= deadline:
            print(f"broker at {args.brokers} did not answer Kafka requests within "
                  f"{args.timeout:.0f}s: {type(last).__name__}: {last}", file=sys.stderr)
            return 1
        time.sleep(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    probe = sub.add_parser("probe")
    probe.add_argument("--brokers", required=True)
    probe.add_argument("--timeout", type=float, default=60.0)
    probe.set_defaults(func=cmd_probe)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
