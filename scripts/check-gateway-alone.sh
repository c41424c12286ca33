#!/usr/bin/env bash
# Builds what the gateway's image builds: the gateway alone, so the platform compiles without
# its `kafka` and `postgres` features (a workspace build unifies features and never does),
# clippy-clean, and fails if rdkafka (ADR 0037) or sqlx (ADR 0040) enters its dependency
# tree. Run by .ci/run and ci.yml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo clippy --locked -p ticketing-gateway --bins -- -D warnings
tree=$(cargo tree --locked -p ticketing-gateway -e normal,build --prefix none)
if grep -q '^rdkafka' <<<"$tree"; then
  echo "the gateway's dependency tree holds rdkafka: a service without Kafka must not build librdkafka" >&2
  exit 1
fi
if grep -q '^sqlx' <<<"$tree"; then
  echo "the gateway's dependency tree holds sqlx: a service without a database must not build or link it" >&2
  exit 1
fi
