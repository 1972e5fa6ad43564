// Package testbedtest is package testbed for tests: the helpers that take a
// testing.TB, failing the test on error and registering their teardown with
// t.Cleanup. They live apart from testbed so that the programs built on it
// (cmd/testbed) do not link package testing.
package testbedtest

import (
	"os"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/xhttpd/xhttpd/testbed"
)

// RequireRoot fails (does not skip) the test when not running as root: CI
// runs as root, and a privileged test that silently skips proves nothing.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces, veth, BPF, AF_XDP); run it as root")
	}
}

// New is testbed.New for tests: it requires root, fails the test on error
// and closes the testbed when the test ends.
func New(t testing.TB, opts testbed.Options) *testbed.Testbed {
	t.Helper()
	RequireRoot(t)
	tb, err := testbed.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tb.Close(); err != nil {
			t.Errorf("testbed close: %v", err)
		}
	})
	return tb
}

// NewNamespace is testbed.NewNamespace for tests: it requires root, and
// the namespace is closed, and so destroyed with every interface in it,
// when the test ends.
func NewNamespace(t testing.TB) netns.NsHandle {
	t.Helper()
	RequireRoot(t)
	ns, err := testbed.NewNamespace()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}
