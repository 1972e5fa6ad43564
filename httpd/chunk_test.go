package httpd

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// plainConn hides the kernel TCPConn's ReadFrom, as a connection without
// one of its own (neither sendfile(2) nor the netstack's) gets a file
// through httpd's pooled buffer, and records the size of each write.
type plainConn struct {
	net.Conn
	mu     *sync.Mutex
	writes *[]int
}

func (c plainConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	*c.writes = append(*c.writes, len(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

type plainListener struct {
	net.Listener
	mu     sync.Mutex
	writes []int
}

func (l *plainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return plainConn{Conn: c, mu: &l.mu, writes: &l.writes}, nil
}

// A file from disk reaches a connection without sendfile in writes of
// writeChunk, the first one (with the head) aside: each write is a trip
// through the netstack, and bufio.Writer's own would be writeBufSize.
func TestDiskFileInWholeChunks(t *testing.T) {
	f := newFixture(t)
	var pl *plainListener
	_, addr := startServerWith(t, Config{Root: f.root, CacheMax: 64 << 10}, func(l net.Listener) net.Listener {
		pl = &plainListener{Listener: l}
		return pl
	}, nil)
	resp, body, _ := roundTrip(t, addr, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != string(f.big) {
		t.Fatalf("got %d, %d bytes, want 200 and big.bin's %d", resp.StatusCode, len(body), len(f.big))
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	total, whole := 0, 0
	for _, n := range pl.writes {
		total += n
		if n == writeChunk {
			whole++
		}
	}
	if want := len(f.big) / writeChunk; whole < want-1 || total < len(f.big) {
		t.Errorf("%d writes of %d bytes in all, %d of them %d bytes; want at least %d such, the body being %d bytes (writes: %v)",
			len(pl.writes), total, whole, writeChunk, want-1, len(f.big), pl.writes)
	}
}

// shrunkConn's ReadFrom is the netstack's for a file that shrank since its
// size was taken (gonet, gVisor patch 0031): part of the file, then
// io.ErrUnexpectedEOF.
type shrunkConn struct{ net.Conn }

func (c shrunkConn) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.CopyN(c.Conn, r, 1000)
	if err != nil {
		return n, err
	}
	return n, io.ErrUnexpectedEOF
}

// A file that ends short on a connection that says so with
// io.ErrUnexpectedEOF is logged as shorter than its stat said, as it is
// when sendfile(2) sends less, and the connection closes: its
// Content-Length cannot be met.
func TestDiskFileShrunkOnTheWay(t *testing.T) {
	f := newFixture(t)
	var logs syncBuffer
	cfg := Config{Root: f.root, CacheMax: 64 << 10, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	addr := startServerWrapping(t, cfg, func(c net.Conn) net.Conn { return shrunkConn{c} })
	c := dialRaw(t, addr)
	c.write("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) >= len(f.big) {
		t.Errorf("read %d of %d bytes, %v; want fewer and io.ErrUnexpectedEOF", len(body), len(f.big), err)
	}
	if !strings.Contains(logs.String(), "file shorter than its stat said") {
		t.Errorf("no warning of the short file in the log:\n%s", logs.String())
	}
}
