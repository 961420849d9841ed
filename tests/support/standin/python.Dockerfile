# Stand-in for python:3.11-slim, built only when no registry can give the real image.
# Debian's Python 3.11 where the official image keeps its own (/usr/local/bin), and pip
# allowed to install there as in that image.
ARG BASE
FROM ${BASE}
RUN ln -s /usr/bin/python3 /usr/local/bin/python3 \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && ln -s /usr/bin/pip3 /usr/local/bin/pip \
 && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
# uv verifies TLS with its own roots unless told the system's (which hold this machine's CA).
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
