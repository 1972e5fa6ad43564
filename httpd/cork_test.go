package httpd

import (
	"net"
	"sync/atomic"
	"testing"
)

// corkConn records SetCork, as the netstack's connections take it.
type corkConn struct {
	net.Conn
	corked *atomic.Int64
}

func (c *corkConn) SetCork(on bool) error {
	if on {
		c.corked.Add(1)
	}
	return nil
}

// A static response on a connection that closes after it is corked, so
// that the netstack sends its tail with the FIN; keep-alive responses are
// not.
func TestCorkBeforeClose(t *testing.T) {
	f := newFixture(t)
	var corked atomic.Int64
	addr := startServerWrapping(t, Config{Root: f.root}, func(c net.Conn) net.Conn { return &corkConn{Conn: c, corked: &corked} })
	resp, body, c := roundTrip(t, addr, "GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != string(f.small) {
		t.Fatalf("keep-alive: %d, %d bytes", resp.StatusCode, len(body))
	}
	if n := corked.Load(); n != 0 {
		t.Errorf("keep-alive response corked %d times", n)
	}
	c.write("GET /small.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp, body := c.read("GET"); resp.StatusCode != 200 || string(body) != string(f.small) {
		t.Fatalf("closing: %d, %d bytes", resp.StatusCode, len(body))
	}
	if n := corked.Load(); n != 1 {
		t.Errorf("the response before the close corked %d times, want 1", n)
	}
}
