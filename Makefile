# websession: every target works from a clean clone.
#
#   make test    every module's tests under -race, each module on its own (GOWORK=off)
#   make lint    gofmt, go vet, go mod tidy check, in every module
#   make bench   benchmarks of every module, incl. bench/ against scs and gorilla
#                (BENCH=regexp, COUNT=n; output in bench.txt, then the target table)
#   make run     the counter example (ARGS="-store memory")
#
# Database suites read WEBSESSION_POSTGRES_DSN and WEBSESSION_MYSQL_DSN
# (loopback defaults). With CI=true a missing database fails them.

SHELL   := /bin/bash
GO      ?= go
# Dependency order: a module comes after the modules it requires.
MODULES := core conformance drivers/memory drivers/disk drivers/postgres drivers/mysql drivers/redis examples/syncmapstore examples bench
BENCH   ?= .
COUNT   ?= 1
ARGS    ?=

.PHONY: test lint bench run work-check

SUMMARY := $(CURDIR)/bin/testsummary
SKIPS   := $(CURDIR)/bin/skipped.json

# test: the workspace must build and vet as a whole, then each module is
# tested alone, the way a user who picks that one module sees it. Output is
# go test's usual terse one; it ends with every skipped test and why
# (.ci/testsummary reads go test -json), so a suite that could not reach
# its database never passes silently.
test: work-check $(SUMMARY)
	@rm -f $(SKIPS); status=0; for m in $(MODULES); do \
		echo "=== test $$m"; \
		(cd $$m && set -o pipefail && GOWORK=off $(GO) test -race -count=1 -json ./... | $(SUMMARY) -skips $(SKIPS)) || status=1; \
	done; \
	$(SUMMARY) -report $(SKIPS); \
	if [ $$status -ne 0 ]; then echo; echo "make test: FAILED (see above)"; fi; \
	exit $$status

$(SUMMARY): .ci/testsummary/main.go
	@mkdir -p $(dir $@)
	GOWORK=off $(GO) build -o $@ .ci/testsummary/main.go

work-check:
	$(GO) build work
	$(GO) vet work

lint:
	@set -e; for m in $(MODULES); do \
		cmp -s LICENSE $$m/LICENSE || { echo "$$m/LICENSE differs from LICENSE (every module zip must carry it)"; exit 1; }; \
	done
	@set -e; bad=$$(gofmt -l $(MODULES) .ci); \
	if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	@set -e; for m in $(MODULES); do \
		echo "=== lint $$m"; \
		(cd $$m && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) mod tidy -diff); \
	done
	$(GO) vet work

bench:
	@set -e; : > $(CURDIR)/bench.txt; for m in $(MODULES); do \
		echo "=== bench $$m" | tee -a $(CURDIR)/bench.txt; \
		(cd $$m && GOWORK=off $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) -timeout 60m ./... | tee -a $(CURDIR)/bench.txt); \
	done
	@echo; (cd bench && GOWORK=off $(GO) run ./cmd/benchtable $(CURDIR)/bench.txt)

run:
	$(GO) run ./examples/counter $(ARGS)
