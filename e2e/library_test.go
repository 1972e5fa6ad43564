package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"testing"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// The library on its own: examples/fileserver puts net/http's FileServer on
// package xdpnet's listeners, and curl fetches a file from it over IPv4 and
// IPv6 (nothing in the server namespace listens on port 80 but the
// netstack). SIGINT stops it cleanly, and the kernel then owns port 80
// again.
func TestLibraryFileServer(t *testing.T) {
	testbedtest.RequireRoot(t)
	bin := buildT(t, "examples/fileserver")
	tb := testbedtest.New(t, testbed.Options{Prefix: "xhlib"})
	s := newSite(t)
	srv := testbedtest.StartServer(t, tb, bin, "-iface", tb.ServerIf, "-root", s.dir, "-mode", "hybrid")
	for _, url := range []string{"http://198.18.0.1/1m.bin", "http://[2001:2::1]/1m.bin"} {
		got, err := tb.ClientCmd(context.Background(), "curl", "-sS", "--fail", "--max-time", "10", url).Output()
		if err != nil {
			t.Fatalf("curl %s: %v", url, err)
		}
		if !bytes.Equal(got, s.files["/1m.bin"]) {
			t.Fatalf("curl %s: %d bytes, not the file's %d", url, len(got), len(s.files["/1m.bin"]))
		}
	}
	srv.Stop()
	// The program left with the process: the kernel answers port 80 now,
	// with a refusal, since nothing listens there.
	err := tb.ClientCmd(context.Background(), "curl", "-sS", "--max-time", "5", "http://198.18.0.1/").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Errorf("after SIGINT, curl exited with %v; want 7 (connection refused by the kernel)", err)
	}
}
