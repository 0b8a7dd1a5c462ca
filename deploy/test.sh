#!/usr/bin/env bash
# The one test command (README; .ci/run calls it): installs what is missing, starts RabbitMQ,
# builds the DevMongo launcher, syncs the workspace, lints, type-checks, runs every test tier.
# The test session itself starts DevMongo on free ports and makes a fresh RabbitMQ vhost.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
    echo "test.sh: installing uv"
    python3 -m pip install --quiet uv
fi
UV=$(command -v uv || echo "python3 -m uv")

deploy/rabbitmq.sh
deploy/devmongo.sh build
$UV sync --frozen --quiet

echo "test.sh: ruff, mypy"
$UV run ruff check .
$UV run ruff format --check .
$UV run mypy

echo "test.sh: pytest"
$UV run pytest "$@"
