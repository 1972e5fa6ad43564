package httpd

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// pipeListener hands out the server ends of net.Pipe connections: the
// server runs without any network stack, which isolates its own cost.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// benchmarkRequest measures one keep-alive GET of a 1 KiB file, end to end:
// the client writes the request and reads the whole response before the
// next one. ReportAllocs counts the server's allocations too (the client
// allocates nothing in the loop).
func benchmarkRequest(b *testing.B, dial func(b *testing.B, s *Server) net.Conn) {
	fx := newFixture(b)
	s, err := New(Config{Root: fx.root, Logger: quietLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	c := dial(b, s)
	defer c.Close()

	req := []byte("GET /small.bin HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	// The first response tells the length of all of them: every header has
	// a fixed length, Date included.
	if _, err := c.Write(req); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(body, fx.small) {
		b.Fatalf("first response: %d, %d bytes", resp.StatusCode, len(body))
	}
	if _, err := c.Write(req); err != nil {
		b.Fatal(err)
	}
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		ch, err := br.ReadByte()
		if err != nil {
			b.Fatal(err)
		}
		head = append(head, ch)
	}
	if _, err := io.ReadFull(br, body); err != nil || br.Buffered() != 0 {
		b.Fatal("second response: ", err)
	}
	buf := make([]byte, len(head)+len(body))

	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if !bytes.Equal(buf[len(head):], fx.small) {
		b.Fatal("last body differs")
	}
}

func BenchmarkRequestLoopback(b *testing.B) {
	benchmarkRequest(b, func(b *testing.B, s *Server) net.Conn {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go s.Serve(l)
		b.Cleanup(func() { s.Shutdown(b.Context()) })
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		return c
	})
}

func BenchmarkRequestPipe(b *testing.B) {
	benchmarkRequest(b, func(b *testing.B, s *Server) net.Conn {
		l := newPipeListener()
		go s.Serve(l)
		b.Cleanup(func() { s.Shutdown(b.Context()) })
		return l.dial()
	})
}
