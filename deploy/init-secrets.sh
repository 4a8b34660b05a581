#!/bin/sh
# Make deploy/clipwatch.env (from clipwatch.env.example) and deploy/secrets/ with random
# values for the PostgreSQL password, the secret key, the metrics and Alertmanager tokens and
# Grafana's admin password; the same value goes to clipwatch.env and to the file the other
# service reads. Existing files are kept (run it again safely). Twitch and Discord credentials
# and CLIPWATCH_BASE_URL are left for you to fill in.
#   usage: ./init-secrets.sh [DIR]   (DIR: where compose.yaml is; default: this script's)
set -eu
dir=${1:-$(dirname "$0")}
cd "$dir"
umask 077

# 32 random bytes as letters and digits (safe in a URL, a sed expression and an env file).
random() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n'; echo; }

mkdir -p secrets
chmod 700 secrets
for name in postgres_password metrics_token alertmanager_token grafana_admin_password; do
    if [ ! -s "secrets/$name" ]; then
        random > "secrets/$name"
    fi
    # Read inside containers running as other users (Prometheus: nobody); the directory
    # (0700) keeps the host's other users out.
    chmod 644 "secrets/$name"
done

if [ -e clipwatch.env ]; then
    echo "clipwatch.env exists: kept"
    exit 0
fi
sed -e "s|CHANGE_ME_POSTGRES_PASSWORD|$(cat secrets/postgres_password)|" \
    -e "s|CHANGE_ME_SECRET_KEY|$(random)|" \
    -e "s|CHANGE_ME_METRICS_TOKEN|$(cat secrets/metrics_token)|" \
    -e "s|CHANGE_ME_ALERTMANAGER_TOKEN|$(cat secrets/alertmanager_token)|" \
    clipwatch.env.example > clipwatch.env
chmod 600 clipwatch.env
echo "wrote clipwatch.env and secrets/: now set the Twitch credentials and CLIPWATCH_BASE_URL"
