package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	dto "github.com/prometheus/client_model/go"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// Hostile clients over AF_XDP.

// 500 slowloris connections, each sending its head a byte at a time, do
// not stop 50 normal clients from being served; the slow ones get 408 at
// -header-timeout, and connections that send nothing are closed at
// -idle-timeout.
func TestHTTPDSlowloris(t *testing.T) {
	const slow, silent, normal, perClient = 500, 50, 50, 20
	tb, s, _ := serve(t, "-header-timeout", "2s", "-idle-timeout", "3s", "-admin", adminAddr)
	dial := tb.ClientDialer()

	var wg sync.WaitGroup
	var got408, closedSilent, dialFailed atomic.Int32
	stop := make(chan struct{})
	defer func() { close(stop); wg.Wait() }()
	opened := make(chan struct{}, slow+silent)
	for i := range slow + silent {
		// Opened a few at a time: a burst of 550 SYNs would only measure
		// the listen backlog.
		if i%50 == 49 {
			time.Sleep(20 * time.Millisecond)
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			nc, err := dial(ctx, "tcp", "198.18.0.1:80")
			if err != nil {
				dialFailed.Add(1)
				opened <- struct{}{}
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(15 * time.Second))
			opened <- struct{}{}
			if i >= slow {
				if n, err := nc.Read(make([]byte, 1)); n == 0 && err == io.EOF {
					closedSilent.Add(1)
				}
				return
			}
			io.WriteString(nc, "GET /1k.bin HTTP/1.1\r\n")
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Millisecond):
					}
					if _, err := io.WriteString(nc, "X"); err != nil {
						return
					}
				}
			}()
			b, _ := io.ReadAll(nc)
			if bytes.HasPrefix(b, []byte("HTTP/1.1 408 ")) {
				got408.Add(1)
			}
		})
	}
	for range slow + silent {
		<-opened
	}
	if n := dialFailed.Load(); n > 0 {
		t.Fatalf("%d slow connections could not connect", n)
	}
	start := time.Now()

	client := tb.ClientHTTP()
	client.Transport.(*http.Transport).MaxConnsPerHost = normal
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var worst atomic.Int64
	var nwg sync.WaitGroup
	errs := make(chan error, normal)
	for range normal {
		nwg.Go(func() {
			for range perClient {
				t0 := time.Now()
				if err := fetch(ctx, client, "http://198.18.0.1/1k.bin", s.files["/1k.bin"]); err != nil {
					errs <- err
					return
				}
				for d := int64(time.Since(t0)); ; {
					w := worst.Load()
					if d <= w || worst.CompareAndSwap(w, d) {
						break
					}
				}
			}
		})
	}
	nwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	served := time.Since(start)
	t.Logf("%d normal requests among %d slow and %d silent connections in %v, the slowest %v",
		normal*perClient, slow, silent, served, time.Duration(worst.Load()))
	if served > 2*time.Second || time.Duration(worst.Load()) > time.Second {
		t.Errorf("normal clients were held up: all served in %v, the slowest request %v", served, time.Duration(worst.Load()))
	}

	wg.Wait()
	if got408.Load() != slow || closedSilent.Load() != silent {
		t.Errorf("%d of %d slowloris connections got 408; %d of %d silent ones were closed", got408.Load(), slow, closedSilent.Load(), silent)
	}
	if v := metric(t, tb, adminAddr, "xhttpd_http_limit_hits_total", "limit", "header_timeout"); v != slow {
		t.Errorf("header timeouts counted: %v, want %d", v, slow)
	}
}

// metric reads one value from /metrics on the admin listener: the metric
// name with the given label, or the only one without a label given.
func metric(t *testing.T, tb *testbed.Testbed, addr, name string, labelValue ...string) float64 {
	t.Helper()
	f := scrape(t, tb, addr)[name]
	if f == nil {
		t.Fatalf("no %s", name)
	}
	var found []*dto.Metric
	for _, m := range f.GetMetric() {
		if len(labelValue) == 0 || label(m, labelValue[0]) == labelValue[1] {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d metrics %s%v, want one", len(found), name, labelValue)
	}
	if c := found[0].GetCounter(); c != nil {
		return c.GetValue()
	}
	return found[0].GetGauge().GetValue()
}

// The traversal corpus over AF_XDP, raw bytes as an attacker sends them:
// nothing outside the root is ever served, whether the request names it
// through dot segments (plain or encoded), encoded slashes, backslashes,
// NUL, overlong UTF-8, a symbolic link out of the root, or a 10 KiB path.
func TestHTTPDTraversal(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	s := newSite(t)
	outside := t.TempDir()
	const secret = "SECRET-OUTSIDE-THE-ROOT"
	if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"out": outside, "secret": filepath.Join(outside, "secret.txt"), "etc": "/etc", "up": ".."} {
		if err := os.Symlink(target, filepath.Join(s.dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	settle(t, s.dir)
	startServer(t, tb, s.dir, "-max-request-line", "65536")
	dial := tb.ClientDialer()

	corpus := []string{
		"/../etc/passwd", "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/%2E%2E/etc/passwd",
		"/.%2e/etc/passwd", "/..%2fetc%2fpasswd", "/%2f%2e%2e%2fetc/passwd", "/..\\..\\etc\\passwd",
		"/%5c..%5cetc%5cpasswd", "/1k.bin%00.html", "/%00../etc/passwd", "/%c0%ae%c0%ae/etc/passwd",
		"/%c0%af../etc/passwd", "/%e0%80%ae%e0%80%ae/etc/passwd", "/%252e%252e/etc/passwd",
		"/out/secret.txt", "/secret", "/etc/passwd", "/up/", "/up/" + filepath.Base(outside) + "/secret.txt",
		"http://x/../etc/passwd", "/" + strings.Repeat("../", 3000) + "etc/passwd",
		"/" + strings.Repeat("a/", 5<<10), "/out/" + strings.Repeat("x", 10<<10),
	}
	for _, p := range corpus {
		for _, host := range []string{"198.18.0.1:80", "[2001:2::1]:80"} {
			code, body, err := rawGet(dial, host, "GET "+p+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			switch {
			case err != nil:
				t.Errorf("%.50q to %s: %v", p, host, err)
			case bytes.Contains(body, []byte(secret)) || bytes.Contains(body, []byte("root:x:0:0")):
				t.Errorf("%.50q to %s: LEAKED (status %d)", p, host, code)
			case code != 400 && code != 403 && code != 404 && code != 414:
				t.Errorf("%.50q to %s: status %d", p, host, code)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := fetch(ctx, tb.ClientHTTP(), "http://198.18.0.1/1k.bin", s.files["/1k.bin"]); err != nil {
		t.Errorf("after the corpus: %v", err)
	}
}

// rawGet sends req as is and returns the status and body of the answer.
func rawGet(dial func(context.Context, string, string) (net.Conn, error), addr, req string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go io.WriteString(c, req)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Connections that come and go every way a client can make them go (after
// a few keep-alive requests, with Connection: close, mid-head, mid-response,
// after a bad request): after 100,000 requests the server has no
// connection open and as many goroutines as before (from /metrics and the
// admin listener's goroutine profile). httpd's TestNoLeaks does the same
// over loopback and also counts file descriptors.
func TestHTTPDNoLeaks(t *testing.T) {
	const total = 100_000
	tb, s, _ := serve(t, "-admin", adminAddr, "-idle-timeout", "5s")
	dial := tb.ClientDialer()
	waitIdle := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for metric(t, tb, adminAddr, "xhttpd_http_connections_open") != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: connections still open after 10s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitIdle("at start") // startServer's probes
	before := goroutines(t, tb)

	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for sent.Load() < total && failed.Load() < 5 {
				if err := churnOne(dial, rng, &sent, s.files["/1k.bin"]); err != nil {
					failed.Add(1)
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests in %v", sent.Load(), time.Since(start).Round(time.Millisecond))
	waitIdle("after the load")
	deadline := time.Now().Add(10 * time.Second)
	for {
		after := goroutines(t, tb)
		if after <= before {
			t.Logf("goroutines: %d before, %d after", before, after)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after", before, after)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// goroutines reads the server's goroutine count from the admin listener's
// goroutine profile ("goroutine profile: total N").
func goroutines(t *testing.T, tb *testbed.Testbed) int {
	t.Helper()
	out, err := tb.ServerCmd(context.Background(), "curl", "-sS", "--fail", "--max-time", "5", "http://127.0.0.1:9100/debug/pprof/goroutine?debug=1").Output()
	if err != nil {
		t.Fatalf("goroutine profile: %v", err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(line, "goroutine profile: total "))
	if err != nil {
		t.Fatalf("goroutine profile: %q", line)
	}
	return n
}

// churnOne makes one connection, a few requests on it, and ends it one
// way or another.
func churnOne(dial func(context.Context, string, string) (net.Conn, error), rng *rand.Rand, sent *atomic.Int64, want []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := dial(ctx, "tcp", "198.18.0.1:80")
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	n := 1 + rng.IntN(30)
	for i := range n {
		sent.Add(1)
		if i == n-1 {
			switch rng.IntN(6) {
			case 0:
				io.WriteString(nc, "GET /1k.bin HTTP/1.1\r\nHo") // leave mid-head
				return nil
			case 1:
				io.WriteString(nc, "GET /1m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
				br.Peek(100) // leave mid-response
				return nil
			case 2:
				io.WriteString(nc, "GARBAGE\r\n\r\n")
				io.Copy(io.Discard, br)
				return nil
			case 3:
				io.WriteString(nc, "GET /1k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				io.Copy(io.Discard, br)
				return nil
			}
		}
		if _, err := io.WriteString(nc, "GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, want) {
			return fmt.Errorf("status %d, %d bytes, %v", resp.StatusCode, len(body), err)
		}
	}
	return nil
}
