package e2e

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// Hundreds of clients that ask for a large file and stop reading: the
// others are served meanwhile, nothing deadlocks, no frame is dropped, and
// the write timeout closes the stalled connections, which are counted.
func TestStalledReaders(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	s := newSite(t)
	s.add(t, "/5m.bin", random(t, 5<<20))
	startServer(t, tb, s.dir, "-admin", adminAddr, "-write-timeout", "2s", "-cache-max", "8000000")
	script, err := filepath.Abs("testdata/stalled_readers.py")
	if err != nil {
		t.Fatal(err)
	}
	const stalled = 300
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	readers := tb.ClientCmd(ctx, "sh", "-c", fmt.Sprintf("ulimit -n 4096 && exec python3 %s %d 198.18.0.1 6", script, stalled))
	var out bytes.Buffer
	readers.Stdout, readers.Stderr = &out, &out
	if err := readers.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "opened") {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled readers did not connect: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Others are served while the stalled ones hold their connections.
	for _, host := range []string{"198.18.0.1", "[2001:2::1]"} {
		for range 5 {
			start := time.Now()
			if _, err := curlGet(tb, "http://"+host+"/1m.bin", t.TempDir(), s.files["/1m.bin"]); err != nil {
				t.Errorf("%s during the stall: %v", host, err)
			} else if took := time.Since(start); took > time.Second {
				t.Errorf("%s during the stall took %v", host, took)
			}
		}
	}
	// The write timeout (2 s, plus up to half of it) closes the stalled.
	deadline = time.Now().Add(10 * time.Second)
	for {
		open := metric(t, tb, adminAddr, "xhttpd_http_connections_open")
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v connections still open 10 s into the stall (write timeout 2 s)", open)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := metric(t, tb, adminAddr, "xhttpd_http_limit_hits_total", "limit", "write_timeout"); n < stalled {
		t.Errorf("%v write timeouts counted, want at least %d", n, stalled)
	}
	for _, m := range []string{"xhttpd_xsk_rx_dropped_total", "xhttpd_queue_tx_ring_full_frames_total"} {
		if v := metric(t, tb, adminAddr, m, "queue", "0"); v != 0 {
			t.Errorf("%s = %v", m, v)
		}
	}
	readers.Wait()
}
