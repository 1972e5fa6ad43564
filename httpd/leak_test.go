package httpd

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// 100,000 requests over connections that come and go every way a client
// can make them go: after a few keep-alive requests, with Connection: close,
// with HTTP/1.0, mid-head, mid-response, after a bad request. Afterwards
// the server has no connection open, and goroutines and file descriptors
// are back to what they were before.
func TestNoLeaks(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 10_000
	}
	fx := newFixture(t)
	var logged syncBuffer
	s, addr := startServer(t, Config{Root: fx.root, AccessLog: &logged})
	roundTrip(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") // warm up
	waitFor(t, 2*time.Second, "the first connection to go", func() bool { return s.Stats().Open == 0 })
	runtime.GC()
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)

	const workers = 8
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			buf := make([]byte, 64<<10)
			for sent.Load() < int64(total) {
				if err := churn(addr, rng, &sent, buf, fx); err != nil {
					failed.Add(1)
					if failed.Load() < 5 {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests in %v, %d connections", sent.Load(), time.Since(start).Round(time.Millisecond), s.Stats().Accepted)

	waitFor(t, 5*time.Second, "every connection to close", func() bool { return s.Stats().Open == 0 })
	waitFor(t, 5*time.Second, "goroutines to return to their idle count", func() bool {
		return runtime.NumGoroutine() <= goroutines
	})
	waitFor(t, 5*time.Second, "file descriptors to close", func() bool { return openFDs(t) <= fds })
	// Heads abandoned halfway are not requests to the server.
	if st := s.Stats(); st.Panics != 0 || st.Requests < uint64(total)*9/10 || st.Status5xx != 0 {
		t.Errorf("stats: %+v", st)
	}
}

// churn makes one connection and ends it one way or another.
func churn(addr string, rng *rand.Rand, sent *atomic.Int64, buf []byte, fx *fixture) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	paths := []struct {
		path string
		size int
	}{{"/small.bin", len(fx.small)}, {"/index.html", len(rootIndex)}, {"/docs/", len(docsIndex)}, {"/docs/style.css", len(styleCSS)}}
	n := 1 + rng.IntN(40)
	for i := range n {
		p := paths[rng.IntN(len(paths))]
		last := i == n-1
		req := "GET " + p.path + " HTTP/1.1\r\nHost: x\r\n\r\n"
		switch {
		case last && rng.IntN(4) == 0:
			req = "GET " + p.path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
		case last && rng.IntN(4) == 0:
			req = "GET " + p.path + " HTTP/1.0\r\n\r\n"
		case last && rng.IntN(8) == 0:
			io.WriteString(nc, "GET "+p.path+" HTTP/1.1\r\nHo") // leave mid-head
			sent.Add(1)
			return nil
		case last && rng.IntN(8) == 0:
			io.WriteString(nc, "GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
			nc.Read(buf[:10]) // leave mid-response
			sent.Add(1)
			return nil
		case last && rng.IntN(8) == 0:
			io.WriteString(nc, "GARBAGE\r\n\r\n")
			io.Copy(io.Discard, nc)
			sent.Add(1)
			return nil
		}
		if _, err := io.WriteString(nc, req); err != nil {
			return err
		}
		sent.Add(1)
		// The head is at most a few hundred bytes; read until it ends, then
		// the body.
		head := buf[:0]
		for !bytes.Contains(head, []byte("\r\n\r\n")) {
			m, err := nc.Read(buf[len(head):cap(buf)])
			if err != nil {
				return fmt.Errorf("%s: %w", p.path, err)
			}
			head = buf[:len(head)+m]
		}
		end := bytes.Index(head, []byte("\r\n\r\n")) + 4
		if !bytes.HasPrefix(head, []byte("HTTP/1.1 200 ")) {
			return fmt.Errorf("%s: %q", p.path, head[:min(len(head), 40)])
		}
		if len(head) < end+p.size {
			if _, err := io.ReadFull(nc, buf[len(head):end+p.size]); err != nil {
				return fmt.Errorf("%s: body: %w", p.path, err)
			}
		}
	}
	return nil
}

// deadlineConn records whether the deadlines were cleared before Close, and
// counts the read and write deadlines set.
type deadlineConn struct {
	net.Conn
	n    *deadlineCounts
	zero atomic.Bool
}

type deadlineCounts struct {
	cleared, closedCleared, reads, writes atomic.Int64
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.n.reads.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.n.writes.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.zero.Store(t.IsZero())
	if t.IsZero() {
		c.n.cleared.Add(1)
	}
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) Close() error {
	if c.zero.Load() {
		c.n.closedCleared.Add(1)
	}
	return c.Conn.Close()
}

// startDeadlineServer starts a server whose connections count their
// deadlines in the counts it returns.
func startDeadlineServer(t *testing.T) (*deadlineCounts, string) {
	fx := newFixture(t)
	n := new(deadlineCounts)
	return n, startServerWrapping(t, Config{Root: fx.root}, func(c net.Conn) net.Conn { return &deadlineConn{Conn: c, n: n} })
}

// A connection's deadlines are cleared just before it is closed: on the
// netstack (gonet) they are runtime timers that Close leaves running, and
// at thousands of connections a second their upkeep took a quarter of the
// CPU.
func TestDeadlinesClearedBeforeClose(t *testing.T) {
	dl, addr := startDeadlineServer(t)
	const n = 20
	for range n {
		resp, _, c := roundTrip(t, addr, "GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		c.closedByServer(2 * time.Second)
	}
	deadline := time.Now().Add(5 * time.Second)
	for dl.closedCleared.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := dl.closedCleared.Load(); got != n {
		t.Fatalf("%d of %d connections were closed with their deadlines cleared", got, n)
	}
}

// A busy keep-alive connection does not set its deadlines anew for each
// request: setting one costs a timer update (on gonet, a runtime timer of
// its own). The read deadline of the wait for the next request, and the
// write deadline, are renewed only when less than IdleTimeout or
// WriteTimeout is left (connReader.idle, connWriter.arm).
func TestKeepAliveSetsDeadlinesRarely(t *testing.T) {
	dl, addr := startDeadlineServer(t)
	c := dialRaw(t, addr)
	const n = 200
	for range n {
		c.write("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := c.read("GET"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if r, w := dl.reads.Load(), dl.writes.Load(); r > 2 || w > 2 {
		t.Errorf("%d requests set the read deadline %d times and the write deadline %d times; want at most twice each", n, r, w)
	}
}
