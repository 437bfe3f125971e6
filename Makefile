# slotpay — the two commands a newcomer needs are `make run` and `make test`.

SQLC_VERSION := v1.31.1
SQLC         := go run github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION)
GO_TEST_FLAGS ?= -count=1 -race -timeout 9m

.DEFAULT_GOAL := help

.PHONY: help run test generate check-generated fmt-check vet build fuzz-short chromium haproxy

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: ## serve on local defaults (PostgreSQL, stripe-mock, dev webhook secret)
	scripts/dev-run

test: check-generated fmt-check vet fuzz-short chromium haproxy ## drift check, gofmt, vet, fuzz briefly, then every test against real PostgreSQL, in Chromium and behind HAProxy
	go test $(GO_TEST_FLAGS) ./...

# A short run of each fuzz target, on top of its committed corpus
# (testdata/fuzz). The budgets are counts of executions, not durations: with
# a duration, Go 1.26's fuzz coordinator can report the end of -fuzztime as
# a failure ("context deadline exceeded", no crasher) when a loaded machine
# delays a worker past the deadline (golang/go#75804, fixed in Go 1.27);
# a count has no deadline to race. Minimizing is capped: every run of the HTTP
# targets goes through PostgreSQL, and the default minute of minimizing each
# new input would dwarf the run.
FUZZ_EXECS      ?= 20000
FUZZ_HTTP_EXECS ?= 300
fuzz-short: ## run each fuzz target for FUZZ_EXECS (header) / FUZZ_HTTP_EXECS (HTTP) executions
	go test -run='^$$' -fuzz='^FuzzParseHeader$$' -fuzztime=$(FUZZ_EXECS)x ./internal/stripehook
	go test -run='^$$' -fuzz='^FuzzWebhook$$' -fuzztime=$(FUZZ_HTTP_EXECS)x -fuzzminimizetime=10x ./internal/httpapi
	go test -run='^$$' -fuzz='^FuzzCreateBooking$$' -fuzztime=$(FUZZ_HTTP_EXECS)x -fuzzminimizetime=10x ./internal/httpapi

generate: ## regenerate gen/ from api/openapi.yaml and sql/
	go tool oapi-codegen -config oapi-codegen.yaml api/openapi.yaml
	$(SQLC) generate

check-generated: generate ## fail if gen/ differs from what `make generate` produces
	@if [ -n "$$(git status --porcelain -- gen/)" ]; then \
		git status --porcelain -- gen/; \
		git --no-pager diff -- gen/; \
		echo "gen/ is out of date: run make generate and commit the result" >&2; \
		exit 1; \
	fi

fmt-check: ## fail if hand-written Go code is not gofmt-formatted
	@files="$$(find . -name '*.go' -not -path './gen/*' -not -path './.git/*' | xargs gofmt -l)"; \
	if [ -n "$$files" ]; then \
		echo "not gofmt-formatted (run gofmt -w):" >&2; echo "$$files" >&2; exit 1; \
	fi

vet: ## go vet
	go vet ./...

# Debian packages that tests drive: Chromium for the browser test
# (cmd/slotpay/browser_test.go), HAProxy for the reverse-proxy test
# (cmd/slotpay/proxy_test.go). As root with apt-get (CI, the project's
# machines) each is installed when missing; elsewhere install it yourself, or
# its test skips itself outside CI (with CI=true it fails instead).
define apt-install
	@if command -v $(1) >/dev/null 2>&1 || [ -x /usr/sbin/$(1) ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "$(1): missing; installing it for $(2): apt-get update && apt-get install -y $(1)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(1); \
	else \
		echo "$(1): missing, and installing it needs root and apt-get; $(2) will skip itself" >&2; \
	fi
endef

chromium: ## install Debian's Chromium for the browser test, only when it is missing
	$(call apt-install,chromium,the browser test)

haproxy: ## install Debian's HAProxy for the reverse-proxy test, only when it is missing
	$(call apt-install,haproxy,the reverse-proxy test)

build: ## build bin/slotpay
	go build -o bin/slotpay ./cmd/slotpay

# Operations and proof (issue 5). None of these run in `make test`.

.PHONY: bench test-faults lint-api api-breaking contract-test soak

bench: ## load-test a fresh server and database, compare with pgbench, print one table (BENCH_FLAGS=-h for options)
	go run ./cmd/slotpay-bench $(BENCH_FLAGS)

test-faults: ## PostgreSQL restart, SIGKILL and three instances under webhook streams (real binary, private cluster)
	go vet -tags faults ./internal/faults
	go test -tags faults $(GO_TEST_FLAGS) ./internal/faults

# The model checker (internal/modelcheck) for as long as asked: seed after
# seed, then a report of what it covered and what it found. make test runs
# its short budget (TestModel, three fixed seeds). The scenarios of every
# defect issue 10 fixed are on; MODELCHECK_DEFECTS=none or a list narrows
# them (internal/modelcheck/model_test.go).
SOAK_DURATION ?= 5m
soak: ## run the model checker for SOAK_DURATION (e.g. SOAK_DURATION=30m make soak) and print its coverage
	@log=$$(mktemp); echo "soak: running the model checker for $(SOAK_DURATION)…"; \
	SOAK_DURATION=$(SOAK_DURATION) go test -race -count=1 -timeout 0 -run '^TestModelSoak$$' -v ./internal/modelcheck >$$log 2>&1; \
	status=$$?; grep -v -e '^=== ' -e '^    --- PASS' -e '^--- PASS' $$log; rm -f $$log; exit $$status

lint-api: ## lint api/openapi.yaml and api/site.yaml with spectral:oas and the OWASP ruleset; warnings fail
	scripts/contract-test spectral

contract-test: ## spectral + OWASP, ogen, openapi-typescript + tsc, @hey-api/openapi-ts, Prism in front of a running server, promtool (scripts/contract-test)
	scripts/contract-test

api-breaking: ## fail on a breaking change to api/openapi.yaml since the last release (scripts/api-breaking)
	scripts/api-breaking
