package httpd

import (
	"net"
	"sync"
	"testing"
)

// plainConn hides the kernel TCPConn's ReadFrom, as the netstack's
// connections have none, and records the size of each write.
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
