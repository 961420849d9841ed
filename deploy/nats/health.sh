#!/bin/sh
# Health of the stack's first NATS node: JetStream answers, and the node is not running alone
# while its cluster peers run.  That happens when a running stack is switched to the cluster
# profile without recreating this node: its streams would then keep one copy only, with nothing
# telling.  The fix is to recreate it (docs/scaling.md: --force-recreate).
set -u
mode=${PAM_NATS_MODE_FILE:-/tmp/pam-nats-mode}
url=${PAM_NATS_HEALTH_URL:-http://127.0.0.1:8222/healthz?js-enabled-only=true}
wget -q -O /dev/null "$url" || { echo "JetStream does not answer at $url"; exit 1; }
[ "$(cat "$mode" 2>/dev/null)" = alone ] || exit 0
for peer in ${NATS_PEERS:-}; do
    if getent hosts "$peer" >/dev/null 2>&1; then
        echo "nats runs alone while its peer $peer runs: streams keep one copy;" \
            "recreate it: docker compose --profile cluster up --force-recreate"
        exit 1
    fi
done
