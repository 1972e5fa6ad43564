package httpd

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// lendingConn records what WriteLent is lent, as the netstack's
// connections take it, and sends it on.
type lendingConn struct {
	net.Conn
	rec *lentRecord
}

type lentRecord struct {
	mu   sync.Mutex
	lent [][]byte
}

func (r *lentRecord) take() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lent
	r.lent = nil
	return l
}

func (c *lendingConn) WriteLent(copied, lent []byte) (int64, error) {
	if len(lent) > 0 {
		c.rec.mu.Lock()
		c.rec.lent = append(c.rec.lent, lent)
		c.rec.mu.Unlock()
	}
	return (&net.Buffers{copied, lent}).WriteTo(c.Conn)
}

// A cached body is lent to a connection that takes bytes without copying
// them: the cache's own bytes, the same for every response, the whole of
// it or the range asked for. A file served from disk, read into a pooled
// buffer that the next piece overwrites, is never lent.
func TestCachedBodyLent(t *testing.T) {
	f := newFixture(t)
	rec := &lentRecord{}
	wrap := func(c net.Conn) net.Conn { return &lendingConn{Conn: c, rec: rec} }
	addr := startServerWrapping(t, Config{Root: f.root}, wrap)

	var first *byte
	for i := range 2 {
		resp, body, _ := roundTrip(t, addr, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 200 || !bytes.Equal(body, f.big) {
			t.Fatalf("%d, %d bytes", resp.StatusCode, len(body))
		}
		lent := rec.take()
		if got := bytes.Join(lent, nil); !bytes.Equal(got, f.big) {
			t.Fatalf("response %d: lent %d pieces, %d bytes; want the body, %d", i, len(lent), len(got), len(f.big))
		}
		if i == 0 {
			first = &lent[0][0]
		} else if &lent[0][0] != first {
			t.Error("the second response lent other bytes than the first: not the cache's own")
		}
	}

	resp, body, _ := roundTrip(t, addr, "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=100000-300000\r\n\r\n")
	if resp.StatusCode != 206 || !bytes.Equal(body, f.big[100000:300001]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(body))
	}
	if got := bytes.Join(rec.take(), nil); !bytes.Equal(got, f.big[100000:300001]) {
		t.Errorf("range: lent %d bytes, want the range's %d", len(got), 200001)
	}

	disk := startServerWrapping(t, Config{Root: f.root, CacheMax: 4096}, wrap)
	resp, body, _ = roundTrip(t, disk, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 || !bytes.Equal(body, f.big) {
		t.Fatalf("from disk: %d, %d bytes", resp.StatusCode, len(body))
	}
	if lent := rec.take(); len(lent) != 0 {
		t.Errorf("a file from disk was lent in %d pieces", len(lent))
	}
}
