# Starling: the two commands of the README.
#   make run    installs what is missing, builds, runs the broker (memory engine)
#   make test   installs what is missing (redis-server too), starts a private Redis,
#               runs the whole suite, stops Redis
SHELL := /bin/bash
APT_PACKAGES := libuv1-dev libhiredis-dev libhttp-parser-dev redis-server nodejs
ARGS ?=

.PHONY: deps build release run test clean

deps:
	@bash ops/scripts/install-deps.sh $(APT_PACKAGES)

build: deps
	swift build

release: deps
	swift build -c release

run: release
	.build/release/starling serve $(ARGS)

test: deps
	bash ops/scripts/test.sh

clean:
	rm -rf .build
