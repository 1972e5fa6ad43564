package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// An interface with an MTU of 9000, more than a 2 KiB frame holds, is
// served: the netstack announces the MSS of the largest MTU a frame holds,
// so the client's segments fit, and downloads come through whole over IPv4
// and IPv6, uploads of requests too (a large header block). xhttpd used to
// refuse to start.
func TestJumboMTU(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{MTU: 9000})
	s := newSite(t)
	s.add(t, "/4m.bin", random(t, 4<<20))
	srv := startServer(t, tb, s.dir)
	if !strings.Contains(srv.Output(), "netstack_mtu=") {
		t.Errorf("no word of the clamped MTU at start-up:\n%s", srv.Output())
	}
	for _, host := range []string{"198.18.0.1", "[2001:2::1]"} {
		url := "http://" + host + "/4m.bin"
		took, err := curlGet(tb, url, t.TempDir(), s.files["/4m.bin"])
		if err != nil {
			t.Errorf("%s over MTU 9000: %v", url, err)
			continue
		}
		t.Logf("%s over MTU 9000 in %v", url, took.Round(time.Millisecond))
		// A request head of 6 KiB: more than a frame, in several segments.
		out, err := tb.ClientCmd(t.Context(), "curl", "-sS", "-g", "-o", "/dev/null", "-w", "%{http_code}",
			"-H", "X-Big: "+strings.Repeat("a", 6<<10), "http://"+host+"/").CombinedOutput()
		if err != nil || string(out) != "200" {
			t.Errorf("%s with a 6 KiB header over MTU 9000: %v %s", host, err, out)
		}
	}
}
