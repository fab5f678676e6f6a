# Grove — developer entry points. `make test` is what CI runs.
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
COUNT     ?= 1
TEST_TIMEOUT ?= 14m

.PHONY: all build vet test test-race bench fuzz vectors fmt-check clean demo explore

all: build

build:
	$(GO) build $(PKGS)

vet:
	$(GO) vet $(PKGS)

# fmt-check fails when any file is not gofmt-clean.
fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Nested modules keep heavy dependencies (gRPC, bleve) out of the main
# module; make test runs their suites too.
SUBMODULES ?= interop bench/search

test: fmt-check vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)
	@set -e; for m in $(SUBMODULES); do \
		echo "== $$m"; \
		(cd $$m && $(GO) vet ./... && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...); \
	done

test-race:
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(COUNT) $(PKGS)

# fuzz runs every fuzz target in the module for FUZZTIME each (go test allows
# one -fuzz target per invocation, so we list them first).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# vectors verifies every official MLS test vector file with the CLI tool.
vectors:
	$(GO) run ./cmd/mlsvectors $${MLS_TEST_VECTORS:-../shared/mls-vectors}/*.json

clean:
	$(GO) clean -testcache

# demo: five real nodes on 127.0.0.1 walk through invites, chat, an offline
# catch-up, concurrent commits, a removal and a search, narrating each step.
demo:
	$(GO) run ./cmd/grove testnet demo

# explore: the commit-ordering explorer (commitorder/explore_test.go) with
# larger bounds than make test's: three members six transitions deep with
# four steps of time, then four members five deep. Both run; either failing
# fails the target. EXPLORE_FLAGS overrides the first run's bounds.
EXPLORE_FLAGS ?= -explore.depth=6 -explore.ticks=4
explore:
	@status=0; \
	$(GO) test -count=1 -timeout 0 -run '^TestExplore' -v ./commitorder/ $(EXPLORE_FLAGS) || status=1; \
	$(GO) test -count=1 -timeout 0 -run '^TestExplore$$' -v ./commitorder/ -explore.members=4 -explore.depth=5 -explore.ticks=4 || status=1; \
	exit $$status
