#!/usr/bin/env bash
# Creates Apm's topics with replication factor $REPLICATION_FACTOR (3 in docker-compose.yml) and the settings of
# docs/operations.md, and re-applies the settings to topics that exist (so a rerun after an edit updates them).
set -euo pipefail
: "${BOOTSTRAP:?}" "${PARTITIONS:=6}" "${REPLICATION_FACTOR:=3}"
bin=/opt/kafka/bin

topic() {
  local name=$1; shift
  local configs=(--config min.insync.replicas=2 --config compression.type=producer)
  for c in "$@"; do configs+=(--config "$c"); done
  "$bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$name" --partitions "$PARTITIONS" --replication-factor "$REPLICATION_FACTOR" "${configs[@]}"
  "$bin/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter --entity-type topics --entity-name "$name" \
    --add-config "$(IFS=,; echo "min.insync.replicas=2,compression.type=producer,$*")"
}

# Samples: a day of replay room for an aggregator outage; InfluxDB keeps the history.
topic apm.jvm.samples.v1 retention.ms=86400000 segment.ms=3600000
# Dead letters: two weeks for an operator to look.
topic apm.deadletter.v1 retention.ms=1209600000
# Alert transitions: a month for notifiers and tools that start late.
topic apm.alerts.v1 retention.ms=2592000000
# Collector commands expire within minutes; a day is plenty.
topic apm.commands.v1 retention.ms=86400000
# Triage reports in 512 KiB chunks; a week, and room for a chunk plus its metadata.
topic apm.reports.v1 retention.ms=604800000 max.message.bytes=2097152

"$bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --describe --topic 'apm\..*'
