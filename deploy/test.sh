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
# the portal's browser tests drive Debian's Chromium (nothing may download a browser here)
if ! command -v chromium >/dev/null 2>&1; then
    echo "test.sh: installing chromium from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
fi
$UV sync --frozen --quiet

echo "test.sh: ruff, mypy"
$UV run ruff check .
$UV run ruff format --check .
$UV run mypy

# two workers (TEST_WORKERS), a file at a time, the longest files first (tests/conftest.py):
# most tests wait on the broker and the database, so a second worker shortens the run by
# about a third on two cores; the slowest tests are listed at the end of the run
echo "test.sh: pytest"
$UV run pytest -n "${TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder --durations=15 "$@"
