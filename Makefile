# The README's two commands, and the checks the test command runs.
.PHONY: run test lint bench docs

run:  ## run the whole system locally with the default data
	deploy/run.sh

test:  ## install what is missing, start RabbitMQ, run lint, types and every test tier
	deploy/test.sh

lint:
	uv run ruff check . && uv run ruff format --check . && uv run mypy

bench:  ## every benchmark, one table (not tests); make bench BENCH_ARGS="--quick --json bench.json"
	uv run python bench/run.py $(BENCH_ARGS)

docs:  ## the OpenAPI and AsyncAPI documents of every service, from the code, into docs/api/
	uv run lhpn docs
