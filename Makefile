# pulsehooks — `make help` lists the targets.

SHELL        := /bin/bash
.SHELLFLAGS  := -eu -o pipefail -c
TOOLS_BIN    := $(CURDIR)/.tools/bin
export PATH  := $(TOOLS_BIN):$(PATH)
export GOFLAGS ?= -buildvcs=false

# Pinned tool versions (installed with `go install` into .tools/bin, cached).
BUF_VERSION            := v1.75.0
PROTOC_GEN_GO_VERSION  := v1.36.12
PROTOC_GEN_GRPC_VERSION:= v1.6.2
GOLANGCI_VERSION       := v2.15.0

MODULES   := bench examples/go pkg proto services/config services/delivery services/fanout services/ingest services/standalone
PKGS      := $(addsuffix /...,$(addprefix ./,$(MODULES)))
GOTEST_OPT ?= -race -count=1 -timeout 20m

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Start the whole system in one process on embedded defaults (data in ./data); Ctrl-C stops it (exit 0).
	@mkdir -p bin
	go build -o bin/pulsehooks ./services/standalone/cmd/pulsehooks
	@# exec, not go run: go run exits 1 when interrupted, even after the command exited 0
	exec bin/pulsehooks $(ARGS)

.PHONY: build
build: ## Build every service binary into ./bin.
	@mkdir -p bin
	go build -o bin/ ./services/config/cmd/config ./services/ingest/cmd/ingest ./services/fanout/cmd/fanout ./services/delivery/cmd/delivery ./services/standalone/cmd/pulsehooks

.PHONY: deps
deps: ## Install what the tests need beyond Go (redis-server, chromium, playwright-core), when missing.
	@bash scripts/ensure-deps.sh
	@bash scripts/ensure-browser.sh

.PHONY: test
test: deps ## Run unit and integration tests (race detector on) against real NATS and redis-server.
	go test $(GOTEST_OPT) $(PKGS)

.PHONY: test-short
test-short: ## Run the tests without the race detector (faster while iterating).
	go test -count=1 $(PKGS)

# Fuzz tests, as package:Function; `make fuzz` runs each for FUZZTIME, one at
# a time (go test -fuzz takes one target per package per run). `make test`
# runs their seed corpora (f.Add and testdata/fuzz) as ordinary tests.
FUZZTIME     ?= 30s
FUZZFLAGS    ?=
FUZZ_TARGETS := \
	./pkg/ssrf:FuzzCheck ./pkg/ssrf:FuzzCheckURL ./pkg/ssrf:FuzzSpellings \
	./pkg/signature:FuzzVerify ./pkg/signature:FuzzParseSecret \
	./pkg/retryq:FuzzDecode ./pkg/retryq:FuzzEncode \
	./services/config:FuzzEndpointURL ./services/config:FuzzEndpointHeaders ./services/config:FuzzDecodeJSON \
	./services/config/attemptlog:FuzzCursor \
	./services/ingest:FuzzValidate

.PHONY: fuzz
fuzz: ## Run every fuzz test for FUZZTIME each (default 30s; FUZZFLAGS=-parallel=1 on a busy machine); crashers land in testdata/fuzz.
	@failed=""; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; start=$$(date +%s); \
		echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
		if go test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$pkg; then result=ok; else result=FAILED; failed="$$failed $$fn"; fi; \
		echo "fuzz $$pkg $$fn: $$result after $$(( $$(date +%s) - start ))s"; done; \
		if [ -n "$$failed" ]; then echo "fuzz failures:$$failed"; exit 1; fi

.PHONY: bench
bench: deps ## Run every benchmark scenario (~7 min; PROFILE=1 adds pprof profiles); writes bench/results and docs/BENCHMARKS.md tables.
	go run ./bench/cmd/bench -docs docs/BENCHMARKS.md $(if $(filter 1,$(PROFILE)),-profile)

.PHONY: bench-quick
bench-quick: ## Short throughput, latency, trickle and idle runs (a few minutes); prints the results JSON as its last line.
	go run ./bench/cmd/bench -quick

.PHONY: tools
tools: $(TOOLS_BIN)/buf $(TOOLS_BIN)/protoc-gen-go $(TOOLS_BIN)/protoc-gen-go-grpc $(TOOLS_BIN)/golangci-lint ## Install pinned tools into .tools/bin.

$(TOOLS_BIN)/buf:
	GOBIN=$(TOOLS_BIN) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS_BIN)/protoc-gen-go:
	GOBIN=$(TOOLS_BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS_BIN)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS_BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)
$(TOOLS_BIN)/golangci-lint:
	GOBIN=$(TOOLS_BIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

.PHONY: proto
proto: $(TOOLS_BIN)/buf $(TOOLS_BIN)/protoc-gen-go $(TOOLS_BIN)/protoc-gen-go-grpc ## Lint the protos and regenerate the Go code.
	cd proto && buf lint && rm -rf gen && buf generate

.PHONY: proto-check
proto-check: proto ## Fail if the committed generated code is stale.
	@if [ -n "$$(git status --porcelain -- proto/gen)" ]; then \
		echo "proto/gen is stale: run 'make proto' and commit the result"; git status --porcelain -- proto/gen; exit 1; fi
	@echo "proto/gen is up to date"

.PHONY: fmt-check
fmt-check: ## Fail if gofmt would change a file.
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi; echo "gofmt: clean"

.PHONY: vet
vet: ## Run go vet on every module.
	go vet $(PKGS)

.PHONY: lint
lint: $(TOOLS_BIN)/golangci-lint ## Run golangci-lint on every module.
	@for m in $(MODULES); do echo "golangci-lint $$m"; (cd $$m && golangci-lint run --config $(CURDIR)/.golangci.yml ./...); done

.PHONY: tidy-check
tidy-check: ## Fail if a go.mod or go.sum is not tidy (checked with GOWORK=off, as each module builds alone).
	@for m in $(MODULES); do (cd $$m && GOWORK=off go mod tidy); done
	@if [ -n "$$(git status --porcelain -- '*go.mod' '*go.sum')" ]; then \
		echo "go.mod/go.sum not tidy: run 'make tidy-check' and commit"; git status --porcelain -- '*go.mod' '*go.sum'; exit 1; fi
	@echo "go.mod files: tidy"

.PHONY: deploy-check
deploy-check: ## Validate the Helm chart and docker-compose.yml offline.
	bash deploy/check.sh

.PHONY: rules-check
rules-check: ## Check the Prometheus rules (promtool check rules) and run their unit tests (promtool test rules).
	@bash scripts/ensure-deps.sh
	promtool check rules deploy/prometheus/alerts.yaml
	promtool test rules deploy/prometheus/alerts_test.yaml

.PHONY: check
check: fmt-check vet tidy-check proto-check lint deploy-check rules-check ## Static checks: gofmt, vet, tidy modules, generated code, lint, chart, alert rules.

.PHONY: clean
clean: ## Remove build output and the local data directory.
	rm -rf bin data
