package httpd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// syncBuffer is an io.Writer for the log that tests may read meanwhile.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAccessLog(t *testing.T) {
	fx := newFixture(t)
	var out syncBuffer
	s, err := New(Config{Root: fx.root, AccessLog: &out, Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	addr := l.Addr().String()

	c := dialRaw(t, addr)
	c.write("GET /small.bin?x=\"y\" HTTP/1.1\r\nHost: x\r\n\r\n" +
		"HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /small.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n" +
		"GET /docs HTTP/1.0\r\n\r\n")
	for _, m := range []string{"GET", "HEAD", "GET", "GET", "GET"} {
		c.read(m)
	}
	// A line is queued once its response is out: the HTTP/1.0 request's
	// before its connection closes, and before the lines of the
	// connections below.
	if !c.closedByServer(5 * time.Second) {
		t.Fatal("the HTTP/1.0 request left its connection open")
	}
	// Each line is queued before its connection ends: wait for that, so
	// that the lines come in this order.
	for _, req := range []string{"GET /" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n", "BAD\x01LINE\r\n\r\n"} {
		if _, _, rc := roundTrip(t, addr, req); !rc.closedByServer(5 * time.Second) {
			t.Fatalf("%.20q: connection left open", req)
		}
	}

	// Nothing is written before a second has passed or Shutdown.
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		`"GET /small.bin?x=\x22y\x22 HTTP/1.1" 200 1024`,
		`"HEAD /index.html HTTP/1.1" 200 -`,
		`"GET /nope HTTP/1.1" 404 14`,
		`"GET /small.bin HTTP/1.1" 206 10`,
		`"GET /docs HTTP/1.0" 301 22`,
		`"-" 414 17`,
		`"BAD\x01LINE" 400 16`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	clf := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z][a-z]/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] (".*" \d{3} (\d+|-))$`)
	for i, line := range lines {
		m := clf.FindStringSubmatch(line)
		if m == nil || m[1] != want[i] {
			t.Errorf("line %d: %q, want ... %s", i, line, want[i])
		}
	}
	if st := s.Stats(); st.AccessLogLines != uint64(len(want)) || st.AccessLogDropped != 0 {
		t.Errorf("stats: %d lines, %d dropped", st.AccessLogLines, st.AccessLogDropped)
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct {
	release chan struct{}
	n       int
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.n += len(p)
	return len(p), nil
}

// A log writer that cannot keep up costs lines, never time: add does not
// block, and drops are counted.
func TestAccessLogDropsWhenBehind(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	l := newAccessLog(w, slog.New(slog.DiscardHandler), LogCLF)
	line := []byte(strings.Repeat("x", 99) + "\n")
	start := time.Now()
	total := 2 * logBufMax / len(line)
	for range total {
		l.add(line)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("adding %d lines took %v", total, d)
	}
	if l.dropped.Load() == 0 {
		t.Error("no line dropped while the writer was stuck")
	}
	close(w.release)
	l.close()
	if got := uint64(w.n / len(line)); got != l.lines.Load() || got+l.dropped.Load() != uint64(total) {
		t.Errorf("wrote %d lines, counted %d queued and %d dropped of %d", got, l.lines.Load(), l.dropped.Load(), total)
	}
}

// Every format logs a cached request without an allocation.
func TestAccessLogAllocs(t *testing.T) {
	for _, format := range []LogFormat{LogCLF, LogCombined, LogJSON} {
		t.Run(format.String(), func(t *testing.T) {
			fx := newFixture(t)
			var out syncBuffer
			_, addr := startServer(t, Config{Root: fx.root, AccessLog: &out, AccessLogFormat: format})
			c := dialRaw(t, addr)
			req := []byte("GET /small.bin HTTP/1.1\r\nHost: x\r\nReferer: http://x/\r\nUser-Agent: test/1.0\r\n\r\n")
			c.nc.Write(req)
			c.read("GET")
			c.nc.Write(req)
			buf := make([]byte, len(responseBytes(t, c)))
			if n := testing.AllocsPerRun(200, func() {
				c.nc.Write(req)
				if _, err := io.ReadFull(c.br, buf); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("%v allocations per logged request", n)
			}
		})
	}
}

// logRequests sends the same requests to a server with an access log in
// format and returns its lines.
func logRequests(t *testing.T, format LogFormat) []string {
	t.Helper()
	fx := newFixture(t)
	var out syncBuffer
	s, err := New(Config{Root: fx.root, AccessLog: &out, AccessLogFormat: format, Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	addr := l.Addr().String()
	c := dialRaw(t, addr)
	c.write("GET /small.bin HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.14.1\r\nReferer: http://example.com/a?b=\"c\"\r\n\r\n" +
		"GET /nope HTTP/1.1\r\nHost: x\r\nuser-agent: caf\xc3\xa9 \\\tx\r\nUser-Agent: second\r\nConnection: close\r\n\r\n")
	c.read("GET")
	c.read("GET")
	if !c.closedByServer(5 * time.Second) {
		t.Fatal("Connection: close left the connection open")
	}
	// Each line is queued before its connection ends: wait for that, so
	// that the lines come in this order.
	for _, req := range []string{"GET /" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n", "BAD\x01LINE\r\n\r\n"} {
		if _, _, rc := roundTrip(t, addr, req); !rc.closedByServer(5 * time.Second) {
			t.Fatalf("%.20q: connection left open", req)
		}
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
}

// The combined format is CLF and the Referer and User-Agent quoted and
// escaped as the request line is, "-" when absent; the first of two
// fields counts, whatever its case.
func TestAccessLogCombined(t *testing.T) {
	lines := logRequests(t, LogCombined)
	want := []string{
		`"GET /small.bin HTTP/1.1" 200 1024 "http://example.com/a?b=\x22c\x22" "curl/8.14.1"`,
		`"GET /nope HTTP/1.1" 404 14 "-" "caf\xc3\xa9 \x5c\x09x"`,
		`"-" 414 17 "-" "-"`,
		`"BAD\x01LINE" 400 16 "-" "-"`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	re := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z][a-z]/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] (.*)$`)
	for i, line := range lines {
		if m := re.FindStringSubmatch(line); m == nil || m[1] != want[i] {
			t.Errorf("line %d: %q, want ... %s", i, line, want[i])
		}
	}
}

// The JSON format is one valid JSON object per line, valid UTF-8 whatever
// the client sent, with the time to the microsecond and the duration.
func TestAccessLogJSON(t *testing.T) {
	type entry struct {
		Time       string `json:"time"`
		Remote     string `json:"remote"`
		Method     string `json:"method"`
		Target     string `json:"target"`
		Proto      string `json:"proto"`
		Status     int    `json:"status"`
		Bytes      int64  `json:"bytes"`
		DurationUS *int64 `json:"duration_us"`
		Referer    string `json:"referer"`
		UserAgent  string `json:"user_agent"`
	}
	start := time.Now()
	lines := logRequests(t, LogJSON)
	want := []entry{
		{Method: "GET", Target: "/small.bin", Proto: "HTTP/1.1", Status: 200, Bytes: 1024, Referer: `http://example.com/a?b="c"`, UserAgent: "curl/8.14.1"},
		{Method: "GET", Target: "/nope", Proto: "HTTP/1.1", Status: 404, Bytes: 14, UserAgent: "caf\u00c3\u00a9 \\\tx"},
		{Status: 414, Bytes: 17},
		{Method: "BAD\x01LINE", Status: 400, Bytes: 16},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	frac := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$`)
	for i, line := range lines {
		if !utf8.ValidString(line) {
			t.Errorf("line %d is not UTF-8: %q", i, line)
		}
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var e entry
		if err := dec.Decode(&e); err != nil {
			t.Errorf("line %d: %v: %s", i, err, line)
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil || !frac.MatchString(e.Time) || ts.Before(start.Truncate(time.Microsecond)) || time.Since(ts) > time.Minute {
			t.Errorf("line %d: time %q (%v), want RFC 3339 with microseconds, now", i, e.Time, err)
		}
		if e.DurationUS == nil || *e.DurationUS < 0 || *e.DurationUS > 10e6 {
			t.Errorf("line %d: duration_us %v", i, e.DurationUS)
		}
		if e.Remote != "127.0.0.1" {
			t.Errorf("line %d: remote %q", i, e.Remote)
		}
		e.Time, e.Remote, e.DurationUS = "", "", nil
		if e != want[i] {
			t.Errorf("line %d: %+v,\nwant %+v", i, e, want[i])
		}
	}
}

func TestLogFormatText(t *testing.T) {
	for _, f := range []LogFormat{LogCLF, LogCombined, LogJSON} {
		var got LogFormat
		if b, err := f.MarshalText(); err != nil || got.UnmarshalText(b) != nil || got != f {
			t.Errorf("%v does not survive MarshalText and UnmarshalText", f)
		}
	}
	var f LogFormat
	if err := f.UnmarshalText([]byte("apache")); err == nil || err.Error() != `access log format "apache": want clf, combined or json` {
		t.Errorf("UnmarshalText(apache): %v", err)
	}
	if _, err := New(Config{Root: t.TempDir(), AccessLog: io.Discard, AccessLogFormat: LogJSON + 1}); err == nil {
		t.Error("New accepts an unknown AccessLogFormat")
	}
}

// failWriter fails every Write while fail is set.
type failWriter struct {
	mu   sync.Mutex
	fail bool
	n    int
}

func (w *failWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return 0, syscall.ENOSPC
	}
	w.n += len(p)
	return len(p), nil
}

// A failing log writer is counted, and logged once per spell of failures
// (at most once a logErrorEvery), with a line when writing works again.
func TestAccessLogWriteErrors(t *testing.T) {
	var logged syncBuffer
	w := &failWriter{fail: true}
	// No run goroutine: the test plays the writer.
	l := &accessLog{w: w, log: slog.New(slog.NewTextHandler(&logged, nil))}
	count := func(s string) int { return strings.Count(logged.String(), s) }
	line := []byte("x\n")

	for range 3 {
		l.write(line)
	}
	if n := l.errors.Load(); n != 3 {
		t.Errorf("%d errors counted, want 3", n)
	}
	if n := count("level=ERROR"); n != 1 || !strings.Contains(logged.String(), "no space left on device") {
		t.Errorf("%d error lines logged for one spell of failures, want 1 with the error:\n%s", n, logged.String())
	}

	w.fail = false
	l.write(line)
	if n := count("writing again"); n != 1 {
		t.Errorf("%d lines saying the log works again, want 1:\n%s", n, logged.String())
	}

	// A new spell soon after the last one is counted but not logged.
	w.fail = true
	l.write(line)
	if n, e := l.errors.Load(), count("level=ERROR"); n != 4 || e != 1 {
		t.Errorf("a failure within logErrorEvery: %d errors counted (want 4), %d logged (want 1)", n, e)
	}
	// Once logErrorEvery has passed, it is logged again.
	l.lastLogged = time.Now().Add(-logErrorEvery - time.Second)
	l.write(line)
	if n := count("level=ERROR"); n != 2 {
		t.Errorf("a failure after logErrorEvery: %d error lines, want 2:\n%s", n, logged.String())
	}
}

// The count of failed writes shows in Stats, on the status page and in
// its ?auto keys; the server's log says so.
func TestAccessLogErrorsShown(t *testing.T) {
	fx := newFixture(t)
	var logged syncBuffer
	s, err := New(Config{Root: fx.root, AccessLog: &failWriter{fail: true}, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	roundTrip(t, l.Addr().String(), "GET /small.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if err := s.Shutdown(context.Background()); err != nil { // writes out the line, and fails
		t.Fatal(err)
	}
	if st := s.Stats(); st.AccessLogErrors != 1 || st.AccessLogLines != 1 {
		t.Errorf("stats: %d lines, %d failed writes; want 1 and 1", st.AccessLogLines, st.AccessLogErrors)
	}
	if !strings.Contains(logged.String(), "access log: write failed") {
		t.Errorf("the server's log does not report the failure:\n%s", logged.String())
	}

	rec := httptest.NewRecorder()
	s.StatusHandler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/server-status?auto", nil))
	if got := parseAuto(t, rec.Body.String())["AccessLogErrors"]; got != "1" {
		t.Errorf("?auto AccessLogErrors %q, want 1", got)
	}
	rec = httptest.NewRecorder()
	s.StatusHandler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/server-status", nil))
	if want := "<td>1 / 0 / 1</td>"; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("status page lacks %q", want)
	}
}

// The cached path over net.Pipe (see BenchmarkRequestPipe) with an access
// log in each format, written to io.Discard: what a line costs.
func BenchmarkRequestPipeAccessLog(b *testing.B) {
	for _, format := range []LogFormat{LogCLF, LogCombined, LogJSON} {
		b.Run(format.String(), func(b *testing.B) {
			benchmarkRequest(b, 0, 1, func(b *testing.B, s *Server) net.Conn {
				l := newPipeListener()
				go s.Serve(l)
				b.Cleanup(func() { s.Shutdown(b.Context()) })
				return l.dial()
			}, func(c *Config) { c.AccessLog, c.AccessLogFormat = io.Discard, format })
		})
	}
}

// Building one line, without the server around it.
func BenchmarkAccessLogLine(b *testing.B) {
	c := &conn{remote: []byte("198.18.0.2"), status: 200, sent: 1024}
	c.p.line = []byte("GET /1k.bin HTTP/1.1")
	c.req.fields = []byte("Host: 198.18.0.1\nUser-Agent: curl/8.14.1\nAccept: */*\nReferer: http://198.18.0.1/\n")
	for _, format := range []LogFormat{LogCLF, LogCombined, LogJSON} {
		b.Run(format.String(), func(b *testing.B) {
			l := &accessLog{format: format, date: dateCache{layout: clfTimeFormat, local: true}}
			if format == LogJSON {
				l.date.layout = jsonTimeFormat
			}
			b.ReportAllocs()
			for b.Loop() {
				now := time.Now()
				if format == LogJSON {
					c.line = c.appendJSON(c.line[:0], l.date.get(now), now, 38*time.Microsecond)
				} else {
					c.line = c.appendCLF(c.line[:0], l.date.get(now), format == LogCombined)
				}
			}
			b.SetBytes(int64(len(c.line)))
		})
	}
}
