package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// downloadBound is how long one download under loss may take. The kernel
// stack needs about a second for 4 MiB at 5% loss here; a stalled transfer
// never finishes, so any bound breaks it, and this one leaves room for a
// loaded CI machine.
const downloadBound = 20 * time.Second

// Downloads of a few MiB complete, bytes identical, with 1 to 5% of the TCP
// frames lost in each direction, over IPv4 and IPv6.
func TestDownloadsUnderLoss(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	s := newSite(t)
	s.add(t, "/4m.bin", random(t, 4<<20))
	startServer(t, tb, s.dir, "-admin", adminAddr)

	for _, share := range []float64{0.01, 0.03, 0.05} {
		for _, dir := range []string{"receive", "send", "both"} {
			var opts testbed.LossOptions
			if dir != "send" {
				opts.Receive = share
			}
			if dir != "receive" {
				opts.Send = share
			}
			loss, err := tb.AddLoss(opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, host := range []string{"198.18.0.1", "[2001:2::1]"} {
				url := "http://" + host + "/4m.bin"
				// The slowest of 300 such downloads here took 5 s; a
				// stall is logged while the connection still exists.
				stop := watchStall(t, tb, 10*time.Second)
				took, err := curlGet(tb, url, t.TempDir(), s.files["/4m.bin"])
				stop()
				if err != nil {
					t.Errorf("%.0f%% loss on %s: %s: %v", share*100, dir, url, err)
					continue
				}
				t.Logf("%.0f%% loss on %s: %s in %v", share*100, dir, url, took.Round(time.Millisecond))
			}
			n, err := loss.Counts()
			if err != nil {
				t.Fatal(err)
			}
			if (opts.Receive > 0 && n.ReceiveDropped == 0) || (opts.Send > 0 && n.SendDropped == 0) {
				t.Errorf("%.0f%% loss on %s: counts %+v: nothing was lost", share*100, dir, n)
			}
			loss.Close()
		}
	}
	// The netstack's recovery shows in the metrics.
	if v := metric(t, tb, adminAddr, "xhttpd_tcp_events_total", "event", "retransmit"); v == 0 {
		t.Error("no retransmits counted after downloads under loss")
	}
}

// A browser-like burst: six connections at once (a browser's limit per
// host), each fetching a page's worth of large and small files, under 3%
// loss each way.
func TestParallelDownloadsUnderLoss(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	s := newSite(t)
	var paths []string
	for i := range 6 {
		p := fmt.Sprintf("/img%d.bin", i)
		s.add(t, p, random(t, (1<<20)+i*377_000))
		paths = append(paths, p)
		p = fmt.Sprintf("/small%d.bin", i)
		s.add(t, p, random(t, 10_000+i*1000))
		paths = append(paths, p)
	}
	startServer(t, tb, s.dir, "-admin", adminAddr)
	loss, err := tb.AddLoss(testbed.LossOptions{Receive: 0.03, Send: 0.03})
	if err != nil {
		t.Fatal(err)
	}
	defer loss.Close()

	for _, host := range []string{"198.18.0.1", "[2001:2::1]"} {
		out := t.TempDir()
		args := []string{"-sS", "-g", "--fail", "--parallel", "--parallel-max", "6", "--max-time", fmt.Sprint(downloadBound.Seconds())}
		for i, p := range paths {
			args = append(args, "-o", filepath.Join(out, fmt.Sprint(i)), "http://"+host+p)
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*downloadBound)
		// Each family's files take well under a second here; a stall
		// is logged as it happens. The IPv6 phase has stalled twice in
		// CI, and not once in 40 runs alone.
		stop := watchStall(t, tb, 5*time.Second)
		b, err := tb.ClientCmd(ctx, "curl", args...).CombinedOutput()
		stop()
		cancel()
		if err != nil {
			t.Errorf("parallel curl over %s: %v\n%s", host, err, b)
			logStall(t, tb)
			continue
		}
		for i, p := range paths {
			got, err := os.ReadFile(filepath.Join(out, fmt.Sprint(i)))
			if err != nil || !bytes.Equal(got, s.files[p]) {
				t.Errorf("%s%s: %d bytes (%v), want the %d on disk", host, p, len(got), err, len(s.files[p]))
			}
		}
		t.Logf("%d files over 6 connections to %s under 3%% loss in %v", len(paths), host, time.Since(start).Round(time.Millisecond))
	}
}

// curlGet downloads url with curl in the client namespace within
// downloadBound and checks the bytes.
func curlGet(tb *testbed.Testbed, url, dir string, want []byte) (time.Duration, error) {
	dst := filepath.Join(dir, "got")
	ctx, cancel := context.WithTimeout(context.Background(), 2*downloadBound)
	defer cancel()
	start := time.Now()
	cmd := tb.ClientCmd(ctx, "curl", "-sS", "-g", "--fail", "--max-time", fmt.Sprint(downloadBound.Seconds()), "-o", dst, url)
	if b, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("curl: %v: %s", err, strings.TrimSpace(string(b)))
	}
	took := time.Since(start)
	got, err := os.ReadFile(dst)
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(got, want) {
		return 0, fmt.Errorf("got %d bytes, differing from the %d on disk", len(got), len(want))
	}
	return took, nil
}
