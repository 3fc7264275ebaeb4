# Sightline: build, run and test. `make help` lists the targets.
# Everything a fresh Debian 12 machine needs is installed by `make deps-run` / `make deps-test`.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Go from /usr/local/go when it is not already on PATH.
export PATH := /usr/local/go/bin:$(PATH)

BIN       := bin/sightline
CONFIG    ?= configs/sightline.yaml
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
SHARED    ?= ../shared
FUZZTIME  ?= 10s
TEST_TIMEOUT ?= 30m
TEST_JSON ?= var/test/go-test.json
export SIGHTLINE_SHARED := $(SHARED)

# Tests find assets through $SIGHTLINE_ASSETS: the shared folder when it is beside the repository, else
# the copy `make media` left in var/assets. A value set by the caller wins.
SIGHTLINE_ASSETS ?= $(firstword $(foreach d,$(SHARED)/assets var/assets,$(if $(wildcard $(d)/.),$(abspath $(d)))))
ifneq ($(SIGHTLINE_ASSETS),)
export SIGHTLINE_ASSETS
endif

# ONNX Runtime's shared library for analytics (github.com/yalue/onnxruntime_go v1.27.0 matches 1.24.x), taken
# from the npm package onnxruntime-node with `npm pack` (a download, no install scripts). Tests find it
# through $SIGHTLINE_ONNX_LIBRARY; a value set by the caller wins.
ONNXRUNTIME_VERSION ?= 1.24.3
ONNXRUNTIME_DIR     := var/onnxruntime
ONNXRUNTIME_LIB     := $(ONNXRUNTIME_DIR)/onnxruntime-node-$(ONNXRUNTIME_VERSION)/libonnxruntime.so.1
SIGHTLINE_ONNX_LIBRARY ?= $(abspath $(ONNXRUNTIME_LIB))
export SIGHTLINE_ONNX_LIBRARY

.PHONY: help deps deps-run deps-test build media onnxruntime run test vet gotest fuzz compose-check bench fmt fmt-check clean

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: deps-test ## install everything (same as deps-test)

deps-run: ## install what `make run` needs (ffmpeg only when the demo clip must be generated; Go modules)
	scripts/deps.sh run

deps-test: ## install everything the tests need (apt packages that are missing; Go modules)
	scripts/deps.sh test

build: ## build bin/sightline
	go build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/sightline

media: ## the demo clip at var/media/demo.h264 (+ .mp4), from ../shared/assets or generated
	scripts/media.sh

onnxruntime: $(ONNXRUNTIME_LIB) ## ONNX Runtime's libonnxruntime.so.1 in var/onnxruntime/ (from npm onnxruntime-node)

$(ONNXRUNTIME_LIB):
	@command -v npm >/dev/null 2>&1 || { echo "onnxruntime: npm not found (make deps-test installs it: apt-get install -y npm)" >&2; exit 1; }
	@mkdir -p $(ONNXRUNTIME_DIR)/pack $(dir $@)
	cd $(ONNXRUNTIME_DIR)/pack && npm pack --ignore-scripts --silent onnxruntime-node@$(ONNXRUNTIME_VERSION) >/dev/null
	tar -xzf $(ONNXRUNTIME_DIR)/pack/onnxruntime-node-$(ONNXRUNTIME_VERSION).tgz -C $(dir $@) --strip-components=5 \
		package/bin/napi-v6/linux/x64/libonnxruntime.so.1
	rm -rf $(ONNXRUNTIME_DIR)/pack
	@echo "onnxruntime: $@ (onnxruntime-node@$(ONNXRUNTIME_VERSION))"

run: deps-run build media ## build and run with configs/sightline.yaml (open the URL it prints)
	$(BIN) -config $(CONFIG)

test: deps-test media onnxruntime vet fmt-check gotest fuzz compose-check ## everything CI runs: vet, gofmt, go test -race, fuzz smoke, compose check
	@echo "make test: all checks passed"

vet: ## go vet ./...
	go vet ./...

# go test's JSON events are saved to $(TEST_JSON) (.ci/run reads it again to list skips) and rendered
# by scripts/testreport.go: package lines, full output of failures, every skip with its reason.
# V=1 prints all test output as it arrives.
gotest: ## go test -race -count=1 ./... (events saved in var/test/go-test.json)
	@mkdir -p $(dir $(TEST_JSON))
	@echo "go test -race -count=1 -timeout $(TEST_TIMEOUT) ./...  (SIGHTLINE_ASSETS=$(SIGHTLINE_ASSETS))"
	go test -race -count=1 -timeout $(TEST_TIMEOUT) -json ./... | tee $(TEST_JSON) | \
		go run scripts/testreport.go $(if $(V),-v) $(if $(SIGHTLINE_REQUIRE_ALL),-fail-on-skip)

fuzz: ## run every Fuzz target for FUZZTIME (default 10s) each
	FUZZTIME=$(FUZZTIME) scripts/fuzz-smoke.sh

compose-check: ## validate docker-compose.yaml (no Docker engine needed)
	docker-compose -f docker-compose.yaml config -q
	@echo "docker-compose.yaml: valid"

bench: media ## latency, WHIP, fan-out and browser glass-to-glass benchmarks, then the Go micro-benchmarks (minutes)
	go build -trimpath -o bin/sightline-bench ./cmd/sightline-bench
	bin/sightline-bench latency -duration 20s
	bin/sightline-bench whip -duration 20s
	bin/sightline-bench fanout -viewers 100,250,375 -duration 15s -clients-process
	go test -run XXX -bench . -benchtime 1x ./e2e/
	go test -run XXX -bench . $$(go list ./... | grep -v /e2e)

fmt: ## gofmt -w every Go file
	gofmt -w .

fmt-check: ## fail when a Go file is not gofmt-formatted
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

clean: ## remove bin/ and var/ (build output, demo clip, asset copy, test reports)
	chmod -R u+w var 2>/dev/null || true
	rm -rf bin var
