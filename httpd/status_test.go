package httpd

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parseAuto reads the ?auto form into a map.
func parseAuto(t *testing.T, body string) map[string]string {
	t.Helper()
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			t.Fatalf("not a key: value line: %q", sc.Text())
		}
		m[k] = v
	}
	return m
}

func TestStatusHandler(t *testing.T) {
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root})

	// One connection idle between requests, one halfway through a head.
	idle := dialRaw(t, addr)
	idle.write("GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	idle.read("GET")
	reading := dialRaw(t, addr)
	reading.write("GET / HTTP/1.1\r\n")
	waitFor(t, 2*time.Second, "the head to start", func() bool {
		return strings.Contains(s.report(nil).Scoreboard, "R")
	})

	queues := func() []StatusTable {
		return []StatusTable{{Name: "Queue", Columns: []string{"Queue", "Mode", "Polling", "RxFrames", "TxFrames", "Wakeups"},
			Rows: [][]string{{"0", "hybrid", "1", "10", "20", "3"}, {"1", "hybrid", "0", "0", "0", "0"}}}}
	}
	h := s.StatusHandler(queues)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/server-status?auto", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("?auto Content-Type %q", ct)
	}
	m := parseAuto(t, rec.Body.String())
	for k, want := range map[string]string{
		"ServerVersion":   "xhttpd",
		"Total Accesses":  "1",
		"ConnsTotal":      "2",
		"ConnsKeepAlive":  "1",
		"ConnsReading":    "1",
		"BusyWorkers":     "1",
		"IdleWorkers":     "1",
		"Queues":          "2",
		"Queue0Mode":      "hybrid",
		"Queue0Polling":   "1",
		"Queue0RxFrames":  "10",
		"Queue0TxFrames":  "20",
		"Queue0Wakeups":   "3",
		"Queue1Polling":   "0",
		"CacheFiles":      "5",
		"CacheHits":       "1",
		"RejectedByLimit": "0",
	} {
		if m[k] != want {
			t.Errorf("%s: %q, want %q", k, m[k], want)
		}
	}
	if sb := m["Scoreboard"]; len(sb) != 2 || !strings.Contains(sb, "K") || !strings.Contains(sb, "R") {
		t.Errorf("Scoreboard %q, want K and R", sb)
	}
	if n, err := strconv.Atoi(m["Goroutines"]); err != nil || n < 3 {
		t.Errorf("Goroutines %q", m["Goroutines"])
	}
	if kb, _ := strconv.Atoi(m["Total kBytes"]); kb != 1 {
		t.Errorf("Total kBytes %q, want 1 (one 1 KiB file and its head)", m["Total kBytes"])
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/server-status", nil))
	page := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("HTML page: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{"<h1>xhttpd status</h1>", "2 connections open: 1 reading, 0 writing, 1 keep-alive", "<td>hybrid</td>", "<td>10</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}

	// Without tables (the kernel stack), httpd adds no queue lines of
	// its own: it knows nothing of queues.
	rec = httptest.NewRecorder()
	s.StatusHandler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/server-status?auto", nil))
	if m := parseAuto(t, rec.Body.String()); m["Queues"] != "" || m["Total Accesses"] == "" {
		t.Errorf("no tables: Queues %q, Total Accesses %q", m["Queues"], m["Total Accesses"])
	}
}

// Config.ServerVersion is the Server header of every response (from the
// cache, an error, a 503 over MaxConns) and the status page's version.
func TestServerVersion(t *testing.T) {
	const v = "xhttpd/1.2.3"
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root, ServerVersion: v, MaxConns: 1})
	c := dialRaw(t, addr)
	for _, path := range []string{"/small.bin", "/nope"} {
		c.write("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := c.read("GET"); resp.Header.Get("Server") != v {
			t.Errorf("GET %s: Server %q, want %q", path, resp.Header.Get("Server"), v)
		}
	}
	// c holds the one connection allowed: the next gets 503.
	resp, _, _ := roundTrip(t, addr, "GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 503 || resp.Header.Get("Server") != v {
		t.Errorf("over MaxConns: %d, Server %q; want 503, %q", resp.StatusCode, resp.Header.Get("Server"), v)
	}

	rec := httptest.NewRecorder()
	s.StatusHandler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/server-status?auto", nil))
	if got := parseAuto(t, rec.Body.String())["ServerVersion"]; got != v {
		t.Errorf("?auto ServerVersion %q, want %q", got, v)
	}
	rec = httptest.NewRecorder()
	s.StatusHandler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/server-status", nil))
	if want := "Server version: " + v; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("status page lacks %q", want)
	}

	for _, bad := range []string{"xhttpd\r\nX-Evil: 1", " xhttpd", "xhttpd ", "xhttpd/\x7f", "xhttpd/é"} {
		if _, err := New(Config{Root: fx.root, ServerVersion: bad, Logger: quietLogger(t)}); err == nil || !strings.Contains(err.Error(), "ServerVersion") {
			t.Errorf("New with ServerVersion %q: %v, want an error", bad, err)
		}
	}
}
