package httpd

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fixture is a served directory with known contents.
type fixture struct {
	root  string
	small []byte // small.bin, 1 KiB
	big   []byte // big.bin, 1 MiB
}

const (
	rootIndex = "<h1>root index</h1>\n"
	docsIndex = "<h1>docs index</h1>\n"
	styleCSS  = "body { color: black }\n"
)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{root: t.TempDir(), small: randomBytes(t, 1<<10), big: randomBytes(t, 1<<20)}
	write := func(name string, data []byte) {
		writeOld(t, filepath.Join(f.root, name), data)
	}
	write("small.bin", f.small)
	write("big.bin", f.big)
	write("index.html", []byte(rootIndex))
	write("docs/index.html", []byte(docsIndex))
	write("docs/style.css", []byte(styleCSS))
	if err := os.Mkdir(filepath.Join(f.root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// writeOld writes a file with a modification time an hour ago, so that the
// cache takes it at once (it leaves alone files modified within settleTime).
func writeOld(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// quietLogger keeps expected warnings out of test output unless -v.
func quietLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startServer serves cfg on a kernel listener on 127.0.0.1 until the test
// ends, and checks that Shutdown and Serve end cleanly.
func startServer(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	return startServerWith(t, cfg, nil, nil)
}

// wrapListener hands each conn it accepts to wrap: tests record what httpd
// does with a conn in a wrapper of their own.
type wrapListener struct {
	net.Listener
	wrap func(net.Conn) net.Conn
}

func (l *wrapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(c), nil
}

// startServerWrapping is startServerWith a listener whose conns go through
// wrap.
func startServerWrapping(t testing.TB, cfg Config, wrap func(net.Conn) net.Conn) string {
	t.Helper()
	_, addr := startServerWith(t, cfg, func(l net.Listener) net.Listener { return &wrapListener{l, wrap} }, nil)
	return addr
}

// startServerWith is startServer with the listener wrapped by wrap, and
// the Server changed by setup before it serves; either may be nil.
func startServerWith(t testing.TB, cfg Config, wrap func(net.Listener) net.Listener, setup func(*Server)) (*Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(s)
	}
	var l net.Listener
	if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		l = wrap(l)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-served:
			// ErrServerClosed: the test was over before Serve began.
			if err != nil && !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return s, l.Addr().String()
}

// rawConn is a client that writes bytes as given, for input net/http would
// never send.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read reads one response and its whole body.
func (c *rawConn) read(method string) (*http.Response, []byte) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return resp, body
}

// closedByServer reports whether the server ended the connection: nothing
// more arrives, then EOF (or a reset).
func (c *rawConn) closedByServer(within time.Duration) bool {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(within))
	defer c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.br.ReadByte()
	if err == nil {
		c.t.Errorf("unexpected byte after the response")
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

// roundTrip sends one request on a fresh connection and reads its response.
func roundTrip(t testing.TB, addr, req string) (*http.Response, []byte, *rawConn) {
	t.Helper()
	c := dialRaw(t, addr)
	c.write(req)
	method := "GET"
	if len(req) >= 4 && req[:4] == "HEAD" {
		method = "HEAD"
	}
	resp, body := c.read(method)
	return resp, body, c
}

// mustServeNormally checks that a plain GET still works: whatever came
// before did not hurt the server.
func mustServeNormally(t testing.TB, addr string) {
	t.Helper()
	resp, body, _ := roundTrip(t, addr, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != rootIndex {
		t.Fatalf("normal GET afterwards: %d %q", resp.StatusCode, body)
	}
}
