#!/bin/sh
# The stack's first NATS node.  Alone it runs the arguments it is given; when its peers
# (NATS_PEERS, the cluster profile's nodes) resolve, it joins them: routes on 6222, JetStream
# replicated, its store in a folder of its own (a single node's streams are not a cluster's).
set -eu
for peer in ${NATS_PEERS:-}; do
    getent hosts "$peer" >/dev/null 2>&1 || exec nats-server "$@"
done
[ -n "${NATS_PEERS:-}" ] || exec nats-server "$@"
routes=""
for peer in $NATS_PEERS; do routes="${routes:+$routes,}nats://$peer:6222"; done
exec nats-server "$@" -sd /data/cluster --server_name nats --cluster_name pam \
    --cluster nats://0.0.0.0:6222 --routes "$routes"
