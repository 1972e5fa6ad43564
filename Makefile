# xhttpd: `make demo` runs the server on a veth testbed; `make test` runs
# every test (root needed: the tests build network namespaces).

GO      ?= go
BIN     := bin
# Debian packages the tests, the demo and the benchmark use beyond a fresh
# machine's curl, iproute2 and python3.
TOOLS   := wrk:wrk setpriv:util-linux ab:apache2-utils h2load:nghttp2-client hping3:hping3
# The peers `make bench` compares with, from Debian's packages.
PEERS   := nginx:nginx apache2:apache2

.PHONY: all build test demo bench generate tools peers clean

all: build

build:
	$(GO) build -o $(BIN)/xhttpd ./cmd/xhttpd
	$(GO) build -o $(BIN)/testbed ./cmd/testbed

# tools (and peers) install each missing command from Debian's packages.
tools peers:
	@missing=""; for t in $(if $(filter peers,$@),$(PEERS),$(TOOLS)); do cmd=$${t%%:*}; pkg=$${t##*:}; \
		command -v $$cmd >/dev/null 2>&1 || PATH=$$PATH:/usr/sbin command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: tools
	$(GO) vet ./...
	$(GO) test -count=1 -race ./nic/ ./irq/ ./stack/ ./httpd/
	$(GO) test -count=1 -run 'TestNoProbesForSlowACKs|TestLossInsideGSOSegment' ./stack/
	$(GO) test -count=1 ./xdp/ ./testbed/ ./e2e/ ./cmd/...

demo: tools build
	./$(BIN)/testbed demo -xhttpd ./$(BIN)/xhttpd

bench: tools peers build
	./$(BIN)/testbed bench -xhttpd ./$(BIN)/xhttpd -servers hybrid,kernel,nginx,apache

# generate rebuilds the XDP program's committed objects; it needs clang.
generate:
	@command -v clang >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang llvm >/dev/null; }
	$(GO) generate ./xdp/

clean:
	rm -rf $(BIN)
