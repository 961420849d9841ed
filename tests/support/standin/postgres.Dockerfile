# Stand-in for postgres:16-alpine, built only when no registry can give the real image:
# Debian bookworm's PostgreSQL (15), started by an entrypoint that reads the official image's
# POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB and PGDATA.
ARG BASE
FROM ${BASE}
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/bin/sh", "/usr/local/bin/docker-entrypoint.sh"]
