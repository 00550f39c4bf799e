# serin's one entry point for building, testing and demoing.
#   make demo   run the whole thing locally (installs what is missing)
#   make test   run go vet and every test against the real local stack
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
SERIN_CACHE ?= $(HOME)/.cache/serin
export SERIN_CACHE
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Integration tests start real servers; one package at a time keeps their
# timing honest on 2 cores.
TEST_FLAGS ?= -count=1 -p 1 -timeout 45m

.PHONY: all build image krew tools vet test helm-test generate dashboards verify-generate demo demo-reset bench chaos bench-scale test-scale clean

all: build

build:
	@echo "==> building bin/serin"
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/serin ./cmd/serin

# The container image, built without a container engine (deploy/image): a
# static cmd/serin, the CA bundle of Debian's ca-certificates package and a
# nonroot /etc/passwd and /etc/group on no base, as an OCI image layout in
# bin/image (push it with `crane push bin/image <ref>` or `skopeo copy
# oci:bin/image:$(VERSION) docker://<ref>`) and a `docker load` tarball,
# bin/serin-image.tar. Tagged $(IMAGE_REPOSITORY):$(VERSION); the created
# time is the commit's, so that two builds of one commit have one digest.
# `make test` runs its test (deploy/image: config, files, digest, binary).
IMAGE_REPOSITORY ?= ghcr.io/serin-dev/serin
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
image:
	@echo "==> building the image $(IMAGE_REPOSITORY):$(VERSION) (bin/image, bin/serin-image.tar; no Docker daemon)"
	SOURCE_DATE_EPOCH="$(SOURCE_DATE_EPOCH)" $(GO) run ./deploy/image -version "$(VERSION)" -revision "$(REVISION)" \
		-repository "$(IMAGE_REPOSITORY)" -go "$(GO)" -out bin/image -tar bin/serin-image.tar

# The kubectl plugin for krew (kubectl krew install serin): cmd/serin built
# for linux, darwin (amd64, arm64) and windows (amd64), each packed as
# kubectl-serin in bin/krew/kubectl-serin_<os>_<arch>.tar.gz, and the krew
# manifest deploy/krew/serin.yaml naming them at the release's download URL
# with their SHA-256 (deploy/krew/gen). VERSION must be the release tag:
# make krew VERSION=v1.2.3, then upload the archives to that release and
# submit the manifest to krew-index. Five builds: minutes on 2 cores.
KREW_DOWNLOAD ?= https://github.com/serin-dev/serin/releases/download/$(VERSION)
krew:
	@echo "==> building kubectl-serin $(VERSION) for krew (bin/krew, deploy/krew/serin.yaml)"
	$(GO) run ./deploy/krew/gen -version "$(VERSION)" -download "$(KREW_DOWNLOAD)" -go "$(GO)" \
		-source-date-epoch "$(SOURCE_DATE_EPOCH)" -out bin/krew -o deploy/krew/serin.yaml

# istio builds istioctl (the e2e tests' referee, `istioctl analyze`) and
# pilot-discovery: 5-17 minutes on 2 cores the first time, seconds after.
# helm (for the chart's tests) takes a few minutes the first time.
tools:
	@echo "==> installing or building the local stack (cached in $(SERIN_CACHE))"
	bash test/tools/install.sh etcd prometheus kube jaeger istio helm

vet:
	@echo "==> go vet"
	$(GO) vet ./...

# Every test, unit and integration. A missing server is a failure.
test: tools vet
	@echo "==> go test (unit and integration, real kube-apiserver, Prometheus, Jaeger)"
	$(GO) test $(TEST_FLAGS) ./...

# The Helm chart's tests (deploy/helm): helm lint, renders with default and
# HA values, schema refusals, the RBAC rules equal to deploy/rbac.yaml, and
# a server-side dry run and a real install, upgrade and uninstall on the
# local kube-apiserver. `make test` runs them too (./... holds deploy/helm).
helm-test:
	@echo "==> building helm and the local kube-apiserver if missing"
	bash test/tools/install.sh etcd kube helm
	@echo "==> go test ./deploy/helm/ (real helm, kubectl and kube-apiserver)"
	$(GO) test $(TEST_FLAGS) -v ./deploy/helm/

generate:
	@echo "==> controller-gen: deepcopy and CRD"
	$(GO) tool controller-gen object paths=./rollout/v1alpha1/...
	$(GO) tool controller-gen crd:allowDangerousTypes=true paths=./rollout/v1alpha1/... output:crd:dir=deploy/crd
	@# The Helm chart carries a copy (deploy/helm: TestCRDIsDeployCRD).
	cp deploy/crd/serin.dev_rollouts.yaml deploy/helm/serin/crds/

# The Grafana dashboard, deploy/grafana/serin.json, is generated from Go
# (deploy/grafana/gen, the Grafana Foundation SDK); a test fails when the
# committed JSON is not what the generator writes.
dashboards:
	@echo "==> generating deploy/grafana/serin.json"
	$(GO) run ./deploy/grafana/gen -o deploy/grafana/serin.json
	@# The Helm chart installs it as a ConfigMap (deploy/helm: TestDashboards).
	mkdir -p deploy/helm/serin/dashboards
	cp deploy/grafana/serin.json deploy/helm/serin/dashboards/

# The demo is built and run as bin/serin-demo rather than with `go run`, so
# that Ctrl-C reaches it directly and it stops everything it started.
# Extra flags: make demo DEMO_FLAGS="-rps 100".
demo: tools build
	@echo "==> building bin/serin-demo"
	$(GO) build -o bin/serin-demo ./test/demo
	bin/serin-demo $(DEMO_FLAGS)

# Brings the running demo back to its start in one command (the subsets
# story: the rollout deleted, the route 100/0 on v1, the faults cleared).
demo-reset:
	$(GO) build -o bin/serin-demo ./test/demo
	bin/serin-demo reset

# The Analysis benchmarks against the real local stack: rollback latency,
# false rollbacks of healthy canaries, and Prometheus queries per tick. Each
# prints a table and its figures (p50_s, p95_s, false_rollbacks,
# queries_per_tick...) on its benchmark line. No tests run.
# Then the Monte Carlo of the judge (test/montecarlo), old and new side by
# side: false rollbacks of healthy canaries and detection of regressions,
# at 1 s and 15 s scrapes. MC_ROLLOUTS (default 400) sets the rollouts per
# cell, MC_SEED the seed.
bench: tools
	@echo "==> go test -bench (real kube-apiserver, Prometheus, Jaeger, mesh simulator; a few minutes)"
	$(GO) test ./test/e2e/ -run '^$$' -bench . -benchtime 1x -count 1 -timeout 60m
	@echo "==> go test -bench ./test/montecarlo (simulated rollouts, old and new judge; about 30 minutes on 2 cores at MC_ROLLOUTS=400)"
	$(GO) test ./test/montecarlo/ -run '^$$' -bench . -benchtime 1x -count 1 -timeout 180m

# The Trust issue's long runs: SEEDS randomized histories of OPS operations
# on the real stack, with the invariants checked after each (table at the
# end), then the REST API's fuzz test for FUZZ inputs, with one fuzzing
# worker: each worker process starts its own API server. Replay one history
# with HISTORY_SEED=<seed> HISTORY_SEEDS=1.
SEEDS ?= 20
OPS ?= 40
FUZZ ?= 10000
chaos: tools
	@echo "==> $(SEEDS) randomized histories of $(OPS) operations (real stack; about 50 s each)"
	HISTORY_SEEDS=$(SEEDS) HISTORY_OPS=$(OPS) $(GO) test ./test/e2e/ -run '^TestRandomHistories$$' -count 1 -timeout 600m -v \
		| grep -E '^(\||randomized|---|ok|FAIL|PASS)|^ +--- FAIL|^ +[a-z_]+_test\.go:[0-9]+: |seed [0-9]+:|violation'
	@echo "==> REST API fuzz test, $(FUZZ) inputs (real kube-apiserver; about 3 minutes for 10,000)"
	$(GO) test ./api/ -run '^$$' -fuzz '^FuzzCreateRollout$$' -fuzztime $(FUZZ)x -parallel 1 -timeout 120m

# The scale benchmark (test/scale): N rollouts in progress at once on one
# controller, on the real local stack, with a synthetic Istio exporter
# standing in for the services' sidecars. One table for every N: the
# controller's CPU and RSS, Prometheus queries per tick, API-server writes
# per second, time to the first step, tick interval, work queue depth, list
# API latency, and fault → canary 0% for a canary with 50% errors.
# SCALE_NS picks the counts (default 1,50,1000); SCALE_WINDOW, SCALE_TRIALS,
# SCALE_RPS and SCALE_INTERVAL are read too (see test/scale/bench_test.go).
# The controller runs with the memory limit deploy/deployment.yaml gives it
# (SERIN_MEMORY_LIMIT, 256 MiB), as in a cluster; SERIN_MEMORY_LIMIT= runs
# it without.
SCALE_NS ?= 1,50,1000
SERIN_MEMORY_LIMIT ?= 268435456
bench-scale: tools
	@echo "==> go test -bench ./test/scale (N = $(SCALE_NS) rollouts in progress; up to half an hour with 1,000)"
	SERIN_MEMORY_LIMIT=$(SERIN_MEMORY_LIMIT) SCALE_NS=$(SCALE_NS) $(GO) test ./test/scale/ -run '^$$' -bench BenchmarkScale -benchtime 1x -count 1 -timeout 120m

# The scale issue's (#11) acceptance test alone: 100 rollouts on the real
# stack, no tick gap over 3 intervals, a faulty canary rolled back within 2
# of its ticks. `make test` runs it too.
test-scale: tools
	@echo "==> go test ./test/scale/ (100 rollouts on the real stack)"
	$(GO) test ./test/scale/ -run '^TestHundredRolloutsKeepTheirTicks$$' -count 1 -v -timeout 20m

clean:
	rm -rf bin
