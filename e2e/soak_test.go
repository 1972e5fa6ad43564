package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
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
	"syscall"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// TestSoak is the soak of `make stress`, skipped unless XHTTPD_STRESS gives
// its length (a Go duration, e.g. 10m): mixed load against xhttpd on a
// two-queue testbed for that long, then an injected failure.
//
// The load: keep-alive clients, a new connection per request, single
// ranges, slow clients that read 4 KiB every 10 ms through a small receive
// buffer (the server's window closes and opens again), over IPv4 and IPv6,
// on cached files and on one streamed from disk; and every 3 s a new
// version of one file renamed into place and a SIGHUP. Every body is
// compared with the file (a reloaded file with either of its versions,
// whole): no wrong byte, and no request may fail. Afterwards, once the
// clients have closed and the TIME-WAITs have expired, xhttpd's goroutines,
// heap and RSS must be back near their idle level.
//
// The injected failure comes last, as a phase of its own, because it stops
// the process by design (docs/how-it-works.md, "A dead queue stops the server"): under
// load the server's interface is deleted, as TestInterfaceGoneExits does
// (a queue loop's own error takes the same path, but nothing outside the
// process can cause one); xhttpd must log why and exit non-zero within 5 s,
// and every request that failed must have failed after the injection.
func TestSoak(t *testing.T) {
	spec := os.Getenv("XHTTPD_STRESS")
	if spec == "" {
		t.Skip("XHTTPD_STRESS is unset: the soak runs under make stress")
	}
	length, err := time.ParseDuration(spec)
	if err != nil || length <= 0 {
		t.Fatalf("XHTTPD_STRESS=%q: want a positive duration such as 10m", spec)
	}
	testbedtest.RequireRoot(t)
	// make stress runs go test without its timeout, whose 10 minutes are
	// the soak's default length; this bounds a hang instead.
	watchdog := time.AfterFunc(length+6*time.Minute, func() { panic("TestSoak: still running 6 minutes after its load ended") })
	defer watchdog.Stop()
	tb := testbedtest.New(t, testbed.Options{Queues: 2})
	s := newSite(t)
	s.add(t, "/64k.bin", random(t, 64<<10))
	s.add(t, "/3m.bin", random(t, 3<<20)) // over -cache-max: from disk
	versions := [2][]byte{random(t, 256<<10), random(t, 256<<10)}
	s.add(t, "/hup.bin", versions[0])
	srv := startServer(t, tb, s.dir, "-admin", adminAddr)
	pid := srv.Cmd.Process.Pid

	// Idle: every file fetched once over each family, then a pause.
	warm := tb.ClientHTTP()
	for _, host := range []string{"198.18.0.1", "[2001:2::1]"} {
		for path, body := range s.files {
			if path == "/hup.bin" {
				continue
			}
			if err := fetch(t.Context(), warm, "http://"+host+path, body); err != nil {
				t.Fatalf("warm-up: %v", err)
			}
		}
	}
	warm.CloseIdleConnections()
	closed := func(f figures) bool { return f.conns == 0 }
	time.Sleep(time.Second)
	idle := waitFigures(t, tb, pid, 20*time.Second, closed)

	sk := &soak{ctx: t.Context(), tb: tb, site: s, versions: versions, end: time.Now().Add(length)}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { sk.keepAlive(i) })
	}
	for i := range 2 {
		wg.Go(func() { sk.newConns(i) })
		wg.Go(func() { sk.ranges(i) })
	}
	for i := range 3 {
		wg.Go(func() { sk.slow(i) })
	}
	hups := 0
	tick := time.NewTicker(3 * time.Second)
	defer tick.Stop()
	for time.Now().Before(sk.end) {
		<-tick.C
		if err := sk.swap(hups + 1); err != nil {
			t.Fatal(err)
		}
		if err := srv.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP: %v", err)
		}
		hups++
	}
	wg.Wait()
	sk.closeClients()
	loadEnd := waitFigures(t, tb, pid, 20*time.Second, closed)
	// Back near idle once the TIME-WAITs (60 s each) are gone: a few
	// goroutines of slack (timers, the admin server's), a heap within 16
	// MiB or a quarter of its idle size, RSS within 32 MiB or a quarter
	// (the runtime returns freed pages to the kernel in the background).
	near := func(f figures) bool {
		return f.conns == 0 && f.timeWait == 0 && f.goroutines <= idle.goroutines+8 &&
			f.heapKB <= idle.heapKB+max(16<<10, idle.heapKB/4) && f.rssKB <= idle.rssKB+max(32<<10, idle.rssKB/4)
	}
	drainStart := time.Now()
	after := waitFigures(t, tb, pid, 90*time.Second, near)

	t.Logf("soak of %v, %d SIGHUPs:", length, hups)
	sk.report(t)
	t.Logf("%-18s %10s %12s %12s", "", "idle", "end of load", "after")
	for _, f := range []struct {
		name    string
		a, b, c int64
	}{
		{"RSS (kB)", idle.rssKB, loadEnd.rssKB, after.rssKB},
		{"heap in use (kB)", idle.heapKB, loadEnd.heapKB, after.heapKB},
		{"goroutines", idle.goroutines, loadEnd.goroutines, after.goroutines},
		{"threads", idle.threads, loadEnd.threads, after.threads},
		{"connections open", idle.conns, loadEnd.conns, after.conns},
		{"TIME-WAIT", idle.timeWait, loadEnd.timeWait, after.timeWait},
	} {
		t.Logf("%-18s %10d %12d %12d", f.name, f.a, f.b, f.c)
	}
	t.Logf("after: %v after the end of the load", time.Since(drainStart).Round(time.Second))
	if !near(after) {
		t.Errorf("not back near idle within 90 s of the end of the load (figures above)")
	}

	if ok := metric(t, tb, adminAddr, "xhttpd_http_cache_loads_total", "result", "ok"); ok < float64(hups) {
		t.Errorf("%.0f cache loads for %d SIGHUPs", ok, hups)
	}
	// Every response a 200 or a 206 (by code; the warm-up's included).
	for _, m := range scrape(t, tb, adminAddr)["xhttpd_http_responses_total"].GetMetric() {
		if code := label(m, "code"); !strings.HasPrefix(code, "2") && m.GetCounter().GetValue() != 0 {
			t.Errorf("%.0f responses with status %s", m.GetCounter().GetValue(), code)
		}
	}
	for _, m := range []struct{ name, label, value string }{
		{"xhttpd_http_cache_loads_total", "result", "failed"},
		{"xhttpd_http_limit_hits_total", "limit", "write_timeout"},
		{"xhttpd_http_limit_hits_total", "limit", "max_conns"},
		{"xhttpd_xsk_rx_dropped_total", "queue", "0"},
		{"xhttpd_xsk_rx_dropped_total", "queue", "1"},
	} {
		if v := metric(t, tb, adminAddr, m.name, m.label, m.value); v != 0 {
			t.Errorf("%s{%s=%q} = %.0f, want 0", m.name, m.label, m.value, v)
		}
	}

	// The injected failure, under load.
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	sk2 := &soak{ctx: ctx2, tb: tb, site: s, versions: versions, end: time.Now().Add(10 * time.Second), sinceFailure: true}
	var wg2 sync.WaitGroup
	wg2.Go(func() { sk2.keepAlive(0) })
	wg2.Go(func() { sk2.newConns(1) })
	time.Sleep(time.Second)
	sk2.injected.Store(time.Now().UnixNano())
	if deleteInterface(t, tb, srv) {
		t.Logf("xhttpd exited %v, %v after the injected failure", srv.Wait(),
			time.Since(time.Unix(0, sk2.injected.Load())).Round(time.Millisecond))
	}
	// What is in flight now would wait for its timeouts: the server is gone.
	sk2.stop.Store(true)
	cancel2()
	wg2.Wait()
	sk2.closeClients()
	t.Log("injected failure phase:")
	sk2.report(t)
}

// soak is the load of TestSoak: workers that run until end, counting per
// kind; failures are kept with their reason.
type soak struct {
	ctx      context.Context // its end cancels the requests in flight
	tb       *testbed.Testbed
	site     *site
	versions [2][]byte
	end      time.Time
	stop     atomic.Bool

	// sinceFailure: a failure is expected once injected (unix ns) is set,
	// and ends the worker.
	sinceFailure bool
	injected     atomic.Int64

	mu       sync.Mutex
	counts   map[string]*soakCount
	failures []string
	clients  []*http.Client
}

// errWrongBytes marks a body that differs from the file: never explained.
var errWrongBytes = errors.New("wrong bytes")

type soakCount struct {
	requests, bytes, failed, explained int64
}

func (sk *soak) running() bool { return !sk.stop.Load() && time.Now().Before(sk.end) }

// done records one request of kind: its body's length, or its failure. It
// returns false when the worker should stop.
func (sk *soak) done(kind string, n int, err error) bool {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if sk.counts == nil {
		sk.counts = map[string]*soakCount{}
	}
	c := sk.counts[kind]
	if c == nil {
		c = &soakCount{}
		sk.counts[kind] = c
	}
	c.requests++
	if err == nil {
		c.bytes += int64(n)
		return true
	}
	if sk.sinceFailure && sk.injected.Load() != 0 && !errors.Is(err, errWrongBytes) {
		c.explained++
		return false
	}
	c.failed++
	if len(sk.failures) < 20 {
		sk.failures = append(sk.failures, fmt.Sprintf("%s at %s: %v", kind, time.Now().Format("15:04:05.000"), err))
	}
	return !sk.sinceFailure
}

func (sk *soak) report(t *testing.T) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	var total soakCount
	t.Logf("%-26s %10s %14s %8s %10s", "kind", "requests", "bytes", "failed", "explained")
	for _, kind := range []string{"keep-alive", "new connection", "range", "slow reader"} {
		c := sk.counts[kind]
		if c == nil {
			continue
		}
		t.Logf("%-26s %10d %14d %8d %10d", kind, c.requests, c.bytes, c.failed, c.explained)
		total.requests += c.requests
		total.bytes += c.bytes
		total.failed += c.failed
		total.explained += c.explained
	}
	t.Logf("%-26s %10d %14d %8d %10d", "all", total.requests, total.bytes, total.failed, total.explained)
	for _, f := range sk.failures {
		t.Errorf("failed: %s", f)
	}
}

func (sk *soak) client(keepAlive bool) *http.Client {
	c := sk.tb.ClientHTTP()
	c.Transport.(*http.Transport).DisableKeepAlives = !keepAlive
	sk.mu.Lock()
	sk.clients = append(sk.clients, c)
	sk.mu.Unlock()
	return c
}

func (sk *soak) closeClients() {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	for _, c := range sk.clients {
		c.CloseIdleConnections()
	}
}

func soakHost(i int) string { return [2]string{"198.18.0.1", "[2001:2::1]"}[i%2] }

// pick returns a random file of the site.
func (sk *soak) pick(rng *rand.Rand, paths ...string) string { return paths[rng.IntN(len(paths))] }

// check compares a body with the file at path; /hup.bin may be either
// version, whole.
func (sk *soak) check(path string, body []byte) error {
	if path == "/hup.bin" {
		if bytes.Equal(body, sk.versions[0]) || bytes.Equal(body, sk.versions[1]) {
			return nil
		}
		return fmt.Errorf("%s: %d bytes, neither version: %w", path, len(body), errWrongBytes)
	}
	if want := sk.site.files[path]; !bytes.Equal(body, want) {
		return fmt.Errorf("%s: %d bytes differing from the %d of the file: %w", path, len(body), len(want), errWrongBytes)
	}
	return nil
}

func (sk *soak) get(c *http.Client, url string, hdr http.Header) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(sk.ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, nil, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	return resp, body, nil
}

func (sk *soak) whole(kind string, c *http.Client, i int, rng *rand.Rand, paths ...string) bool {
	path := sk.pick(rng, paths...)
	url := "http://" + soakHost(i) + path
	resp, body, err := sk.get(c, url, nil)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	if err == nil {
		err = sk.check(path, body)
	}
	return sk.done(kind, len(body), err)
}

func (sk *soak) keepAlive(i int) {
	c := sk.client(true)
	rng := rand.New(rand.NewPCG(uint64(i), 1))
	for sk.running() && sk.whole("keep-alive", c, i, rng, "/1k.bin", "/64k.bin", "/1m.bin", "/3m.bin", "/index.html", "/hup.bin") {
	}
}

func (sk *soak) newConns(i int) {
	c := sk.client(false)
	rng := rand.New(rand.NewPCG(uint64(i), 2))
	for sk.running() && sk.whole("new connection", c, i, rng, "/1k.bin", "/1k.bin", "/64k.bin", "/index.html", "/hup.bin") {
	}
}

// ranges asks for one random range of a file, now and then a suffix.
func (sk *soak) ranges(i int) {
	c := sk.client(true)
	rng := rand.New(rand.NewPCG(uint64(i), 3))
	for sk.running() {
		path := sk.pick(rng, "/64k.bin", "/1m.bin", "/3m.bin")
		file := sk.site.files[path]
		first := rng.IntN(len(file))
		last := first + rng.IntN(min(len(file)-first, 256<<10))
		spec := fmt.Sprintf("bytes=%d-%d", first, last)
		if rng.IntN(8) == 0 {
			first = len(file) - 1 - rng.IntN(4096)
			last = len(file) - 1
			spec = fmt.Sprintf("bytes=-%d", last-first+1)
		}
		url := "http://" + soakHost(i) + path
		resp, body, err := sk.get(c, url, http.Header{"Range": {spec}})
		if err == nil {
			want := fmt.Sprintf("bytes %d-%d/%d", first, last, len(file))
			if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != want {
				err = fmt.Errorf("GET %s %s: status %d, Content-Range %q (want 206, %q)", url, spec, resp.StatusCode, resp.Header.Get("Content-Range"), want)
			} else if !bytes.Equal(body, file[first:last+1]) {
				err = fmt.Errorf("GET %s %s: %d bytes differing from the file's: %w", url, spec, len(body), errWrongBytes)
			}
		}
		if !sk.done("range", len(body), err) {
			return
		}
	}
}

// slow reads a large file 4 KiB every 10 ms (400 KB/s) through a 16 KiB
// receive buffer, a new connection each time.
func (sk *soak) slow(i int) {
	rng := rand.New(rand.NewPCG(uint64(i), 4))
	dial := sk.tb.ClientDialer()
	for sk.running() {
		path := sk.pick(rng, "/1m.bin", "/3m.bin", "/hup.bin")
		n, err := sk.slowGet(dial, soakHost(i), path)
		if !sk.done("slow reader", n, err) {
			return
		}
	}
}

func (sk *soak) slowGet(dial func(context.Context, string, string) (net.Conn, error), host, path string) (int, error) {
	ctx, cancel := context.WithTimeout(sk.ctx, 5*time.Second)
	defer cancel()
	addr := strings.Trim(host, "[]")
	c, err := dial(ctx, "tcp", net.JoinHostPort(addr, "80"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(sk.ctx, func() { c.Close() })
	defer stop()
	c.(*net.TCPConn).SetReadBuffer(16 << 10)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n", path); err != nil {
		return 0, err
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s slowly: %w", path, err)
	}
	var body bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		body.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return body.Len(), fmt.Errorf("GET %s slowly, after %d bytes: %w", path, body.Len(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp.StatusCode != 200 {
		return body.Len(), fmt.Errorf("GET %s slowly: status %d", path, resp.StatusCode)
	}
	return body.Len(), sk.check(path, body.Bytes())
}

// swap puts version n%2 of /hup.bin in place by rename, as a deploy does,
// dated back so that the reload caches it.
func (sk *soak) swap(n int) error {
	dst := filepath.Join(sk.site.dir, "hup.bin")
	tmp := filepath.Join(filepath.Dir(sk.site.dir), "hup.bin."+strconv.Itoa(n))
	if err := os.WriteFile(tmp, sk.versions[n%2], 0o644); err != nil {
		return err
	}
	old := time.Now().Add(-time.Hour - time.Duration(n)*time.Second)
	if err := os.Chtimes(tmp, old, old); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// figures are a server's resource figures.
type figures struct {
	rssKB, heapKB, goroutines, threads, conns, timeWait int64
}

// waitFigures reads the server's figures every second until ok holds or
// bound has passed, and returns the last.
func waitFigures(t *testing.T, tb *testbed.Testbed, pid int, bound time.Duration, ok func(figures) bool) figures {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		f := readFigures(t, tb, pid)
		if ok(f) || time.Now().After(deadline) {
			return f
		}
		time.Sleep(time.Second)
	}
}

// readFigures forces a GC through pprof and reads the heap in use after
// it, the goroutines, RSS and threads from /proc, and the connections.
func readFigures(t *testing.T, tb *testbed.Testbed, pid int) figures {
	t.Helper()
	var f figures
	f.heapKB = field(admin(t, tb, "/debug/pprof/heap?gc=1&debug=1"), "# HeapInuse = ") / 1024
	f.goroutines = field(admin(t, tb, "/debug/pprof/goroutine?debug=1"), "goroutine profile: total ")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	f.rssKB = field(string(status), "VmRSS:")
	f.threads = field(string(status), "Threads:")
	f.conns = int64(metric(t, tb, adminAddr, "xhttpd_http_connections_open"))
	f.timeWait = int64(metric(t, tb, adminAddr, "xhttpd_tcp_time_wait"))
	return f
}

// admin fetches path from the admin endpoint inside the server namespace.
func admin(t *testing.T, tb *testbed.Testbed, path string) string {
	t.Helper()
	out, err := tb.ServerCmd(context.Background(), "curl", "-sS", "--fail", "--max-time", "10", "http://127.0.0.1:9100"+path).Output()
	if err != nil {
		t.Fatalf("admin %s: %v", path, err)
	}
	return string(out)
}

// field returns the number after prefix on the first line that has it.
func field(text, prefix string) int64 {
	for line := range strings.Lines(text) {
		if i := strings.Index(line, prefix); i >= 0 {
			f := strings.Fields(line[i+len(prefix):])
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return -1
}
