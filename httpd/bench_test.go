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

// benchmarkRequest measures keep-alive GETs of a 1 KiB file, end to end:
// the client writes depth pipelined requests and reads the whole responses
// before the next batch. ReportAllocs counts the server's allocations too
// (the client allocates nothing in the loop). One op is one request.
func benchmarkRequest(b *testing.B, cacheMax int64, depth int, dial func(b *testing.B, s *Server) net.Conn, opts ...func(*Config)) {
	benchmarkFile(b, "/small.bin", cacheMax, depth, dial, opts...)
}

// benchmarkFile is benchmarkRequest for the fixture's file at path.
func benchmarkFile(b *testing.B, path string, cacheMax int64, depth int, dial func(b *testing.B, s *Server) net.Conn, opts ...func(*Config)) {
	fx := newFixture(b)
	want := fx.small
	if path == "/big.bin" {
		want = fx.big
	}
	cfg := Config{Root: fx.root, Logger: quietLogger(b), CacheMax: cacheMax}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	c := dial(b, s)
	defer c.Close()

	req := []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
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
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
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
	one := len(head) + len(body)
	buf := make([]byte, one*depth)
	reqs := bytes.Repeat(req, depth)

	b.ReportAllocs()
	b.SetBytes(int64(one))
	n := 0
	for b.Loop() {
		if n%depth == 0 {
			if _, err := c.Write(reqs); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
		}
		n++
	}
	b.StopTimer()
	if !bytes.Equal(buf[len(buf)-len(body):], want) {
		b.Fatal("last body differs")
	}
}

func loopback(b *testing.B, s *Server) net.Conn {
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
}

// The cached path over the kernel's loopback: one request at a time, as wrk
// sends them. 0 allocs/op is the cache's promise.
func BenchmarkRequestLoopback(b *testing.B) { benchmarkRequest(b, 0, 1, loopback) }

// The same file read from disk for every request (the cache disabled).
func BenchmarkRequestLoopbackDisk(b *testing.B) { benchmarkRequest(b, -1, 1, loopback) }

// A 1 MiB file from the cache, then from disk (sendfile): the cost of
// sending big bodies in pieces, each under its own write deadline.
func BenchmarkRequestLoopbackBig(b *testing.B)     { benchmarkFile(b, "/big.bin", 0, 1, loopback) }
func BenchmarkRequestLoopbackBigDisk(b *testing.B) { benchmarkFile(b, "/big.bin", -1, 1, loopback) }

// 16 pipelined requests per write, as h2load -m 16 sends them.
func BenchmarkRequestLoopbackPipelined(b *testing.B) { benchmarkRequest(b, 0, 16, loopback) }

// Without a network stack: the server's own cost. net.Pipe's deadlines
// allocate a timer each (2 allocs/op), as gonet's do.
func BenchmarkRequestPipe(b *testing.B) {
	benchmarkRequest(b, 0, 1, func(b *testing.B, s *Server) net.Conn {
		l := newPipeListener()
		go s.Serve(l)
		b.Cleanup(func() { s.Shutdown(b.Context()) })
		return l.dial()
	})
}
