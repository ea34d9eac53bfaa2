# Postdesk in a container: built with the toolchain the project pins (1.95), run as an
# unprivileged user on Debian slim. The data folder is a volume; with database_url set
# (POSTDESK_DATABASE_URL) it keeps only the node's own files and any number of these
# containers share one PostgreSQL. See README › "Running on several machines".
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin postdesk

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --home-dir /var/lib/postdesk --create-home postdesk
COPY --from=build /src/target/release/postdesk /usr/local/bin/postdesk
USER postdesk
VOLUME /var/lib/postdesk
# Listen on every interface inside the container; publish the ports you need
# (e.g. -p 25:2525 -p 443:8080 behind a TLS proxy).
ENV POSTDESK_DATA=/var/lib/postdesk \
    POSTDESK_SMTP=0.0.0.0:2525 \
    POSTDESK_HTTP=0.0.0.0:8080
EXPOSE 2525 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/postdesk"]
CMD ["serve"]
