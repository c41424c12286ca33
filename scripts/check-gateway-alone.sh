#!/usr/bin/env bash
# Builds what the gateway's image builds: the gateway alone, so the platform compiles without
# its `kafka` feature (a workspace build unifies features and never does), clippy-clean, and
# fails if rdkafka enters its dependency tree (ADR 0037). Run by .ci/run and ci.yml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo clippy --locked -p ticketing-gateway --bins -- -D warnings
if cargo tree --locked -p ticketing-gateway -e normal,build --prefix none | grep -q '^rdkafka'; then
  echo "the gateway's dependency tree holds rdkafka: a service without Kafka must not build librdkafka" >&2
  exit 1
fi
