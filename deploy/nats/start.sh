#!/bin/sh
# The stack's first NATS node.  Alone it runs the arguments it is given; when its peers
# (NATS_PEERS, the cluster profile's nodes) resolve, it joins them: routes on 6222, JetStream
# replicated, its store in a folder of its own (a single node's streams are not a cluster's).
# Peers are looked at only here, at start: deploy/nats/health.sh reports a node that started
# alone while its peers run now (a running stack switched to the cluster without recreating it).
set -eu
mode=${PAM_NATS_MODE_FILE:-/tmp/pam-nats-mode}
alone() {
    echo alone >"$mode"
    exec nats-server "$@"
}
[ -n "${NATS_PEERS:-}" ] || alone "$@"
for peer in $NATS_PEERS; do
    getent hosts "$peer" >/dev/null 2>&1 || alone "$@"
done
routes=""
for peer in $NATS_PEERS; do routes="${routes:+$routes,}nats://$peer:6222"; done
echo cluster >"$mode"
exec nats-server "$@" -sd /data/cluster --server_name nats --cluster_name pam \
    --cluster nats://0.0.0.0:6222 --routes "$routes"
