// Package loadgen is an open-loop HTTP/1.1 load generator: requests leave
// at intended times drawn from a Poisson process at a fixed offered rate,
// over a pool of keep-alive connections, and each request's latency runs
// from its intended time, not from when a connection was free to send it.
// A server that stalls cannot hide the queue it builds (coordinated
// omission, which a closed loop such as wrk's suffers). The generator
// measures its own lag, how late it woke for each intended time, so that a
// point it could not generate faithfully is known as such.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Config is one open-loop run.
type Config struct {
	Addr     string        // host:port to connect to
	Host     string        // the Host header; Addr when empty
	Path     string        // the path requested with GET
	Rate     float64       // offered requests per second
	Conns    int           // keep-alive connections in the pool
	Duration time.Duration // how long requests are offered
	Seed     uint64        // of the Poisson schedule; runs with one seed offer the same gaps
	// Timeout bounds one request, connecting included; a request that
	// takes longer counts as an error and its connection is replaced.
	Timeout time.Duration
}

// Result is what a run measured. Latencies are in microseconds.
type Result struct {
	Offered   float64 // requests per second the schedule offered
	Achieved  float64 // responses per second completed within the run
	Sent      int64   // requests whose intended time fell within the run
	Done      int64   // responses read whole
	Errors    int64   // requests that failed: connect, write, read, status, length
	Latency   *hdrhistogram.Histogram
	Lag       *hdrhistogram.Histogram // the dispatcher's wake-up lateness
	FirstErr  string                  // the first error, for the report
	Elapsed   time.Duration           // from the first intended time to the last response
	BodyBytes int64
}

// Histograms span 1 us to 100 s at 3 significant digits.
const (
	minUS  = 1
	maxUS  = 100_000_000
	digits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(minUS, maxUS, digits) }

// Schedule draws the intended send times of a Poisson process: gaps
// exponentially distributed with mean 1/rate.
type Schedule struct {
	rng  *rand.Rand
	mean float64 // seconds
	next float64 // seconds since the start
}

// NewSchedule starts a schedule at rate per second, seeded.
func NewSchedule(rate float64, seed uint64) *Schedule {
	return &Schedule{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), mean: 1 / rate}
}

// Next returns the next intended time, as an offset from the start.
func (s *Schedule) Next() time.Duration {
	s.next += s.rng.ExpFloat64() * s.mean
	return time.Duration(s.next * float64(time.Second))
}

// spinBelow is how close to an intended time the dispatcher stops
// sleeping and spins: a timer wakes tens of microseconds late, which at the
// latencies measured here would be most of the figure.
const spinBelow = 200 * time.Microsecond

// sleepUntil returns at t or just after.
func sleepUntil(t time.Time) {
	if d := time.Until(t); d > spinBelow {
		time.Sleep(d - spinBelow)
	}
	for time.Now().Before(t) {
	}
}

// Run offers cfg.Rate requests per second for cfg.Duration and waits for
// the answers, at most cfg.Timeout after the last intended time.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	switch {
	case cfg.Rate <= 0:
		return nil, fmt.Errorf("loadgen: rate %v: want more than 0", cfg.Rate)
	case cfg.Conns < 1:
		return nil, fmt.Errorf("loadgen: %d connections: want at least 1", cfg.Conns)
	case cfg.Duration <= 0:
		return nil, fmt.Errorf("loadgen: duration %v: want more than 0", cfg.Duration)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	dial := dialer(cfg)
	// The pool is opened before the clock starts: connection set-up is not
	// part of an open-loop point at a fixed connection count.
	conns := make([]conn, cfg.Conns)
	for i := range conns {
		c, err := dial()
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return nil, fmt.Errorf("loadgen: connection %d of %d: %w", i+1, cfg.Conns, err)
		}
		conns[i] = c
	}

	// Each intended time goes to whichever connection is free; one waits in
	// the channel, its latency growing, while none is.
	queue := make(chan time.Time, 1<<16)
	res := &Result{Offered: cfg.Rate, Latency: newHist(), Lag: newHist()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var last time.Time
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := newHist()
			var done, errs, body int64
			var firstErr error
			var end time.Time
			for intended := range queue {
				n, err := conns[i].Do(intended.Add(cfg.Timeout))
				now := time.Now()
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
					// A failed connection is replaced for the next request.
					conns[i].Close()
					if c, derr := dial(); derr == nil {
						conns[i] = c
					} else {
						conns[i] = failed{derr}
					}
					continue
				}
				done++
				body += n
				end = now
				lat.RecordValue(max(now.Sub(intended).Microseconds(), minUS))
			}
			conns[i].Close()
			mu.Lock()
			defer mu.Unlock()
			res.Latency.Merge(lat)
			res.Done += done
			res.Errors += errs
			res.BodyBytes += body
			if firstErr != nil && res.FirstErr == "" {
				res.FirstErr = firstErr.Error()
			}
			if end.After(last) {
				last = end
			}
		}()
	}

	sched := NewSchedule(cfg.Rate, cfg.Seed)
	start := time.Now()
	for {
		at := sched.Next()
		if at >= cfg.Duration || ctx.Err() != nil {
			break
		}
		t := start.Add(at)
		sleepUntil(t)
		res.Lag.RecordValue(max(time.Now().Sub(t).Microseconds(), minUS))
		res.Sent++
		select {
		case queue <- t:
		default:
			// More than the channel holds are waiting: the server is
			// far past saturation. Counted, not queued without bound.
			res.Errors++
			if res.FirstErr == "" {
				res.FirstErr = "generator queue full: the server is far past saturation"
			}
		}
	}
	close(queue)
	wg.Wait()
	if last.IsZero() {
		last = time.Now()
	}
	res.Elapsed = last.Sub(start)
	res.Achieved = float64(res.Done) / max(res.Elapsed, cfg.Duration).Seconds()
	return res, ctx.Err()
}

// conn is one keep-alive connection: Do sends one request and reads its
// answer.
type conn interface {
	Do(deadline time.Time) (body int64, err error)
	Close() error
}

// failed stands in for a connection that could not be made again: its next
// request fails with the reason, and the worker then dials again.
type failed struct{ err error }

func (f failed) Do(time.Time) (int64, error) { return 0, f.err }
func (f failed) Close() error                { return nil }

func dialer(cfg Config) func() (conn, error) {
	host := cfg.Host
	if host == "" {
		host = cfg.Addr
	}
	req := []byte("GET " + cfg.Path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: xhttpd-loadgen\r\n\r\n")
	return func() (conn, error) {
		c, err := net.DialTimeout("tcp", cfg.Addr, cfg.Timeout)
		if err != nil {
			return nil, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		return &httpConn{c: c, r: bufio.NewReaderSize(c, 64<<10), req: req}, nil
	}
}

// httpConn speaks just enough HTTP/1.1 for GETs of static files: a status
// line, headers with Content-Length, and that many bytes of body.
type httpConn struct {
	c   net.Conn
	r   *bufio.Reader
	req []byte
}

var errStatus = errors.New("status not 200")

func (h *httpConn) Do(deadline time.Time) (int64, error) {
	h.c.SetDeadline(deadline)
	if _, err := h.c.Write(h.req); err != nil {
		return 0, err
	}
	line, err := h.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return 0, fmt.Errorf("%w: %q", errStatus, bytes.TrimSpace(line))
	}
	length := int64(-1)
	for {
		line, err = h.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			length, err = strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("Content-Length %q", bytes.TrimSpace(v))
			}
		}
	}
	if length < 0 {
		return 0, errors.New("no Content-Length")
	}
	n, err := h.r.Discard(int(length))
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return int64(n), err
}

func (h *httpConn) Close() error { return h.c.Close() }
