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

# test: the workspace must build and vet as a whole, then each module is
# tested alone, the way a user who picks that one module sees it.
test: work-check
	@set -e; for m in $(MODULES); do \
		echo "=== test $$m"; \
		(cd $$m && GOWORK=off $(GO) test -race -count=1 ./...); \
	done

work-check:
	$(GO) build work
	$(GO) vet work

lint:
	@set -e; bad=$$(gofmt -l $(MODULES)); \
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
