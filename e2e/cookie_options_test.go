package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/stack"
	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// With -syn-rate 0 the XDP program answers every SYN with a cookie; a Linux
// client, whose SYN has timestamps, still gets timestamps, SACK and window
// scaling on both sides (the SYN-ACK keeps the client's in its TSval, and
// the netstack reads them back from the ACK: gVisor patch 0032), over IPv4
// and IPv6, and a 1 MiB body arrives whole.
func TestSYNCookieKeepsTCPOptions(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	clientNAPI(t, tb) // veth's peer takes XDP_TX frames only in NAPI mode
	s := newSite(t)
	startServer(t, tb, s.dir, "-syn-rate", "0", "-admin", adminAddr)
	script, err := filepath.Abs("testdata/tcp_options.py")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(s.files["/1m.bin"])
	body := fmt.Sprintf("%d %s", len(s.files["/1m.bin"]), hex.EncodeToString(sum[:]))
	cookies := metric(t, tb, adminAddr, "xhttpd_xdp_frames_total", "verdict", "syn_cookie")
	for _, host := range []string{"198.18.0.1", "2001:2::1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := tb.ClientCmd(ctx, "python3", script, host, "80", "/1m.bin").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v\n%s", host, err, out)
		}
		// Timestamps, SACK and window scaling in use, the server's scale,
		// the client's (Linux's, from its buffers: above 0), the body.
		var ts, sack, ws, sndScale, rcvScale, n int
		var sum string
		if _, err := fmt.Sscan(string(out), &ts, &sack, &ws, &sndScale, &rcvScale, &n, &sum); err != nil {
			t.Fatalf("%s: %q: %v", host, out, err)
		}
		if ts != 1 || sack != 1 || ws != 1 || sndScale != stack.CookieWndScale() || rcvScale == 0 {
			t.Errorf("%s: client's TCP_INFO: timestamps %d, SACK %d, window scaling %d, scales %d (server) and %d (client); want 1, 1, 1, %d and above 0", host, ts, sack, ws, sndScale, rcvScale, stack.CookieWndScale())
		}
		if got := fmt.Sprintf("%d %s", n, sum); got != body {
			t.Errorf("%s: body %q, want %q", host, got, body)
		}
	}
	if n := metric(t, tb, adminAddr, "xhttpd_xdp_frames_total", "verdict", "syn_cookie") - cookies; n < 2 {
		t.Errorf("the XDP program answered %v SYNs with cookies, want both", n)
	}
}
