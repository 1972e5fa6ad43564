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
