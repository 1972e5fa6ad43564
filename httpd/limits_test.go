package httpd

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMaxConns(t *testing.T) {
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root, MaxConns: 3})
	var held []*rawConn
	for range 3 {
		c := dialRaw(t, addr)
		c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.read("GET")
		held = append(held, c)
	}
	over := dialRaw(t, addr)
	over.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := over.read("GET")
	if resp.StatusCode != 503 || string(body) != "503 Service Unavailable\n" || !resp.Close || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d %q close=%v %v", resp.StatusCode, body, resp.Close, resp.Header)
	}
	if !over.closedByServer(2 * time.Second) {
		t.Error("refused connection left open")
	}
	if st := s.Stats(); st.ConnsRefused != 1 || st.RejectedByLimit != 1 || st.Open != 3 || st.Status5xx != 1 {
		t.Errorf("stats: %+v", st)
	}
	// The held ones still work, and once one goes, a new one is served.
	held[0].write("GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := held[0].read("GET"); resp.StatusCode != 200 {
		t.Errorf("held connection: %d", resp.StatusCode)
	}
	held[1].nc.Close()
	waitFor(t, 2*time.Second, "the closed connection to go", func() bool { return s.Stats().Open == 2 })
	mustServeNormally(t, addr)
}

// A client that stops reading is cut off after WriteTimeout, and counted.
func TestWriteTimeout(t *testing.T) {
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root, WriteTimeout: 300 * time.Millisecond})
	c := dialRaw(t, addr)
	c.nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	// 64 MiB of responses: far more than the socket buffers hold.
	c.write(strings.Repeat("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n", 64))
	waitFor(t, 5*time.Second, "the write timeout", func() bool { return s.Stats().WriteTimeouts == 1 })
	waitFor(t, 5*time.Second, "the connection to close", func() bool { return s.Stats().Open == 0 })
	mustServeNormally(t, addr)
}

// Slowloris over loopback: connections that trickle a head byte by byte
// get 408 at ReadHeaderTimeout, connections that send nothing are closed at
// IdleTimeout, and meanwhile normal clients are served at once.
func TestSlowloris(t *testing.T) {
	const slow, silent, normal = 200, 50, 20
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root, ReadHeaderTimeout: 500 * time.Millisecond, IdleTimeout: 700 * time.Millisecond})

	var wg sync.WaitGroup
	var got408, closedSilent atomic.Int32
	for range slow {
		wg.Go(func() {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n")
			go func() {
				for range 30 {
					if _, err := io.WriteString(nc, "X"); err != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
			b, _ := io.ReadAll(nc)
			if bytes.HasPrefix(b, []byte("HTTP/1.1 408 ")) {
				got408.Add(1)
			}
		})
	}
	for range silent {
		wg.Go(func() {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			if n, err := nc.Read(make([]byte, 1)); n == 0 && err == io.EOF {
				closedSilent.Add(1)
			}
		})
	}
	waitFor(t, 5*time.Second, "the slow connections", func() bool { return s.Stats().Open >= slow+silent })

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: normal}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var worst atomic.Int64
	var nwg sync.WaitGroup
	for range normal {
		nwg.Go(func() {
			for range 20 {
				start := time.Now()
				resp, err := client.Get("http://" + addr + "/small.bin")
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !bytes.Equal(body, fx.small) {
					t.Errorf("normal client: %d, %d bytes", resp.StatusCode, len(body))
				}
				d := int64(time.Since(start))
				for {
					w := worst.Load()
					if d <= w || worst.CompareAndSwap(w, d) {
						break
					}
				}
			}
		})
	}
	nwg.Wait()
	wg.Wait()
	t.Logf("slowest normal request: %v", time.Duration(worst.Load()))
	if w := time.Duration(worst.Load()); w > 400*time.Millisecond {
		t.Errorf("a normal request took %v among slowloris connections", w)
	}
	if got408.Load() != slow || closedSilent.Load() != silent {
		t.Errorf("%d of %d slow connections got 408, %d of %d silent ones were closed", got408.Load(), slow, closedSilent.Load(), silent)
	}
	st := s.Stats()
	if st.HeaderTimeouts != slow || st.IdleTimeouts < silent {
		t.Errorf("HeaderTimeouts %d, IdleTimeouts %d", st.HeaderTimeouts, st.IdleTimeouts)
	}
}

// The error answer to a bad request head is bounded by errorWriteTimeout,
// or WriteTimeout when that is shorter, not renewed to WriteTimeout: the
// client that sent garbage may well not be reading. Over net.Pipe, where
// every write waits for the reader.
func TestErrorWriteTimeout(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		writeTimeout, errorTimeout time.Duration
	}{
		{"errorWriteTimeout", 30 * time.Second, 200 * time.Millisecond},
		{"WriteTimeout", 200 * time.Millisecond, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(d time.Duration) { errorWriteTimeout = d }(errorWriteTimeout)
			errorWriteTimeout = tc.errorTimeout
			fx := newFixture(t)
			s, err := New(Config{Root: fx.root, Logger: quietLogger(t), WriteTimeout: tc.writeTimeout})
			if err != nil {
				t.Fatal(err)
			}
			l := newPipeListener()
			go s.Serve(l)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				s.Shutdown(ctx)
			})
			nc := l.dial()
			defer nc.Close()
			start := time.Now()
			if _, err := io.WriteString(nc, "GARBAGE\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			// Never read: the 400 cannot be written.
			waitFor(t, 3*time.Second, "the connection to close", func() bool { return s.Stats().Open == 0 })
			if st := s.Stats(); st.WriteTimeouts != 1 || st.BadRequests != 1 {
				t.Errorf("WriteTimeouts %d, BadRequests %d; want 1, 1", st.WriteTimeouts, st.BadRequests)
			}
			t.Logf("closed after %v", time.Since(start).Round(time.Millisecond))
		})
	}
}

// A client that keeps taking a big body, only slowly, is not cut off: each
// piece of writeChunk, not the whole body, has WriteTimeout. Its socket
// buffers are made small so that the body cannot hide in them.
func TestWriteTimeoutSlowReader(t *testing.T) {
	const rate = 640 << 10 // bytes a second: 1 MiB takes 1.6s, a writeChunk 0.1s
	for _, cacheMax := range []int64{0, -1} {
		name := map[int64]string{0: "cached", -1: "disk"}[cacheMax]
		t.Run(name, func(t *testing.T) {
			fx := newFixture(t)
			smallSndBuf := func(l net.Listener) net.Listener { return sndBufListener{l} }
			s, addr := startServerWith(t, Config{Root: fx.root, CacheMax: cacheMax, WriteTimeout: time.Second}, smallSndBuf, nil)
			c := dialRaw(t, addr)
			c.nc.(*net.TCPConn).SetReadBuffer(16 << 10)
			c.write("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			buf := make([]byte, 8<<10)
			start := time.Now()
			for {
				n, err := resp.Body.Read(buf)
				body.Write(buf[:n])
				if err != nil {
					if err != io.EOF {
						t.Errorf("after %d bytes in %v: %v", body.Len(), time.Since(start).Round(time.Millisecond), err)
					}
					break
				}
				time.Sleep(time.Until(start.Add(time.Duration(body.Len()) * time.Second / rate)))
			}
			if !bytes.Equal(body.Bytes(), fx.big) {
				t.Errorf("got %d bytes, want big.bin's %d", body.Len(), len(fx.big))
			}
			if st := s.Stats(); st.WriteTimeouts != 0 {
				t.Errorf("WriteTimeouts %d", st.WriteTimeouts)
			}
			t.Logf("1 MiB in %v", time.Since(start).Round(time.Millisecond))
		})
	}
}

// sndBufListener gives its connections a small send buffer.
type sndBufListener struct{ net.Listener }

func (l sndBufListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err == nil {
		nc.(*net.TCPConn).SetWriteBuffer(16 << 10)
	}
	return nc, err
}

// A pipelined batch whose last request has arrived only in part: before
// waiting for its rest, the server writes out the answers before it. If
// the client does not read them, that write times out; it is a write
// timeout, not a request head that took too long (408), and no 408 is
// written or counted. Over net.Pipe, where every write waits for the
// reader.
func TestWriteTimeoutDuringPipelinedRead(t *testing.T) {
	fx := newFixture(t)
	var alog syncBuffer
	s, err := New(Config{Root: fx.root, Logger: quietLogger(t), WriteTimeout: 200 * time.Millisecond, AccessLog: &alog})
	if err != nil {
		t.Fatal(err)
	}
	l := newPipeListener()
	go s.Serve(l)
	nc := l.dial()
	defer nc.Close()
	// One write, which the server takes in one read: a whole request and
	// the start of the next.
	if _, err := io.WriteString(nc, "GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /small.bin HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	// Never read: the first answer cannot be written.
	waitFor(t, 3*time.Second, "the connection to close", func() bool { return s.Stats().Open == 0 })
	st := s.Stats()
	if st.WriteTimeouts != 1 || st.HeaderTimeouts != 0 || st.Status4xx != 0 || st.RejectedByLimit != 0 || st.Status2xx != 1 {
		t.Errorf("WriteTimeouts %d, HeaderTimeouts %d, Status4xx %d, RejectedByLimit %d, Status2xx %d; want 1, 0, 0, 0, 1",
			st.WriteTimeouts, st.HeaderTimeouts, st.Status4xx, st.RejectedByLimit, st.Status2xx)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(alog.String(), "\n"); n != 1 || strings.Contains(alog.String(), "408") {
		t.Errorf("access log: %d lines, want the first request's alone:\n%s", n, alog.String())
	}
}
