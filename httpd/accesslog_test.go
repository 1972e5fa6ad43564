package httpd

import (
	"bytes"
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
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
	roundTrip(t, addr, "GET /"+strings.Repeat("a", 9000)+" HTTP/1.1\r\nHost: x\r\n\r\n")
	roundTrip(t, addr, "BAD\x01LINE\r\n\r\n")

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
	l := newAccessLog(w)
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

func TestAccessLogAllocs(t *testing.T) {
	fx := newFixture(t)
	var out syncBuffer
	_, addr := startServer(t, Config{Root: fx.root, AccessLog: &out})
	c := dialRaw(t, addr)
	req := []byte("GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
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
}
