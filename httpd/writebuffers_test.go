package httpd

import (
	"bytes"
	"net"
	"sync/atomic"
	"testing"
)

// buffersConn records WriteBuffers, as the netstack's connections take it.
type buffersConn struct {
	net.Conn
	calls *atomic.Int64 // WriteBuffers calls with a head and a body
}

func (c *buffersConn) WriteBuffers(bufs [][]byte) (int64, error) {
	if len(bufs) == 2 && bytes.HasPrefix(bufs[0], []byte("HTTP/1.1 200 ")) && len(bufs[1]) > 0 {
		c.calls.Add(1)
	}
	n, err := (&net.Buffers{bufs[0], bufs[1]}).WriteTo(c.Conn)
	return n, err
}

// A cached body too big for the write buffer goes out in one WriteBuffers
// with the head before it, on a connection that has one, so that the
// netstack sends them in shared segments.
func TestHeadAndBodyInOneWrite(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int64
	addr := startServerWrapping(t, Config{Root: f.root}, func(c net.Conn) net.Conn { return &buffersConn{Conn: c, calls: &calls} })
	resp, body, _ := roundTrip(t, addr, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 || !bytes.Equal(body, f.big) {
		t.Fatalf("%d, %d bytes", resp.StatusCode, len(body))
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("head and body written together %d times, want 1", n)
	}
}
