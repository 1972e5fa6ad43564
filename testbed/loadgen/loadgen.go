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
	"runtime"
	"unsafe"

	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
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
	// Timeout bounds the wait for a free connection and then the answer;
	// a request that waits or takes longer counts as an error, and a
	// connection whose answer is late is replaced.
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

// Run offers cfg.Rate requests per second for cfg.Duration and waits for
// the answers, at most cfg.Timeout after each one's intended time.
//
// One goroutine, locked to its thread (SCHED_FIFO where allowed), sleeps
// until each intended time (clock_nanosleep with a timer slack of 1 ns, in
// a raw system call that keeps its P: a Go timer or a hand-off to another goroutine wakes tens of
// microseconds to a millisecond late, most of the figure at the latencies
// measured here) and writes the request on a free connection itself. When
// none is free the intended time waits in a queue, and the connection that
// frees up next sends it. Each connection has a goroutine that reads its
// answers.
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
	p := &pool{dial: dialer(cfg), timeout: cfg.Timeout, res: &Result{Offered: cfg.Rate, Latency: newHist(), Lag: newHist()}}
	// The pool is opened before the clock starts: connection set-up is not
	// part of an open-loop point at a fixed connection count.
	for i := range cfg.Conns {
		c, err := p.dial()
		if err != nil {
			for _, c := range p.free {
				c.c.Close()
			}
			return nil, fmt.Errorf("loadgen: connection %d of %d: %w", i+1, cfg.Conns, err)
		}
		c.idle = true
		p.free = append(p.free, c)
	}
	for _, c := range p.free {
		p.wg.Add(1)
		go p.read(c)
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	// Real-time priority, where allowed (root), so that the wake-up
	// preempts whatever runs on the CPU, the server included, instead of
	// waiting for the end of its time slice. The thread sleeps between
	// requests, so it takes a CPU only for the writes.
	rt := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}, 0) == nil
	if rt {
		// The thread goes back to the runtime's pool when this returns:
		// not as a real-time one.
		defer unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 0 /* SCHED_OTHER */}, 0)
	}
	sched := NewSchedule(cfg.Rate, cfg.Seed)
	var ts unix.Timespec
	start := time.Now()
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	mono := ts.Nano()
	spin := min(int64(maxSpin), int64(float64(time.Second)/cfg.Rate/10))
	for {
		at := sched.Next()
		if at >= cfg.Duration || ctx.Err() != nil {
			break
		}
		sleepUntil(mono+int64(at), spin)
		t := start.Add(at)
		p.res.Lag.RecordValue(max(time.Since(t).Microseconds(), minUS))
		p.offer(t)
	}
	p.finish()
	p.wg.Wait()
	res := p.res
	if p.last.IsZero() {
		p.last = time.Now()
	}
	res.Elapsed = p.last.Sub(start)
	res.Achieved = float64(res.Done) / max(res.Elapsed, cfg.Duration).Seconds()
	return res, ctx.Err()
}

// maxRawSleep bounds one raw clock_nanosleep: the runtime cannot stop the
// thread for a garbage collection while it is in one.
const maxRawSleep = time.Millisecond

// maxSpin is the longest the dispatcher spins before an intended time
// instead of sleeping: a sleeping CPU of a virtual machine takes a hundred
// microseconds or more to wake, and a late wake-up is lag. It spins a tenth
// of the mean gap at most, so that spinning never takes more than a tenth
// of a CPU (the generator's CPU is recorded with each point).
const maxSpin = 50 * time.Microsecond

// sleepUntil sleeps until CLOCK_MONOTONIC reads mono nanoseconds, the last
// spin nanoseconds spinning.
func sleepUntil(mono, spin int64) {
	var now unix.Timespec
	for {
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
		left := mono - now.Nano()
		if left <= spin {
			break
		}
		ts := unix.NsecToTimespec(now.Nano() + min(left-spin, int64(maxRawSleep)))
		unix.RawSyscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	}
	for now.Nano() < mono {
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	}
}

// pool is the run's connections and the requests waiting for one.
type pool struct {
	dial    func() (*httpConn, error)
	timeout time.Duration
	wg      sync.WaitGroup

	mu      sync.Mutex
	free    []*httpConn // no request in flight
	waiting []time.Time // intended times with no free connection, oldest first
	done    bool        // no more intended times will come
	res     *Result
	last    time.Time // of the last answer
}

// offer sends a request intended at t on a free connection, or queues it.
func (p *pool) offer(t time.Time) {
	p.mu.Lock()
	p.res.Sent++
	if len(p.free) == 0 {
		p.waiting = append(p.waiting, t)
		p.mu.Unlock()
		return
	}
	c := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	c.intended, c.idle = t, false
	p.mu.Unlock()
	c.send()
}

// finish ends the run: the connections without a request in flight are
// closed, which ends their readers; the others close once their answer
// is in and nothing waits.
func (p *pool) finish() {
	p.mu.Lock()
	p.done = true
	for _, c := range p.free {
		c.c.Close()
	}
	p.free = nil
	p.mu.Unlock()
}

// read reads c's answers. After each it sends the oldest waiting request
// on c, or puts c back as free.
func (p *pool) read(c *httpConn) {
	defer p.wg.Done()
	lat := newHist()
	defer func() {
		p.mu.Lock()
		p.res.Latency.Merge(lat)
		p.mu.Unlock()
	}()
	for {
		n, err := c.readAnswer()
		now := time.Now()
		p.mu.Lock()
		if err != nil && c.idle {
			p.mu.Unlock() // closed by finish, nothing in flight
			return
		}
		if err != nil {
			p.res.Errors++
			if p.res.FirstErr == "" {
				p.res.FirstErr = err.Error()
			}
			c.c.Close()
			if p.done && len(p.waiting) == 0 {
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			// A failed connection is replaced; if it cannot be, what waits
			// fails with it.
			nc, derr := p.dial()
			p.mu.Lock()
			if derr != nil {
				p.res.Errors += int64(len(p.waiting))
				p.waiting = nil
				p.mu.Unlock()
				return
			}
			c = nc
		} else {
			p.res.Done++
			p.res.BodyBytes += n
			p.last = now
			lat.RecordValue(max(now.Sub(c.intended).Microseconds(), minUS))
		}
		// What waited longer than the timeout has failed already: sending
		// it would fail at once, and replacing the connection for each
		// such failure would churn through the ephemeral ports.
		for len(p.waiting) > 0 && now.Sub(p.waiting[0]) >= p.timeout {
			p.waiting = p.waiting[1:]
			p.res.Errors++
			if p.res.FirstErr == "" {
				p.res.FirstErr = "waited longer than the timeout for a free connection"
			}
		}
		switch {
		case len(p.waiting) > 0:
			c.intended = p.waiting[0]
			p.waiting = p.waiting[1:]
			p.mu.Unlock()
			c.send()
		case p.done:
			p.mu.Unlock()
			c.c.Close()
			return
		default:
			c.idle = true
			p.free = append(p.free, c)
			p.mu.Unlock()
		}
	}
}

func dialer(cfg Config) func() (*httpConn, error) {
	host := cfg.Host
	if host == "" {
		host = cfg.Addr
	}
	req := []byte("GET " + cfg.Path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: xhttpd-loadgen\r\n\r\n")
	return func() (*httpConn, error) {
		c, err := net.DialTimeout("tcp", cfg.Addr, cfg.Timeout)
		if err != nil {
			return nil, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		return &httpConn{c: c, r: bufio.NewReaderSize(c, 64<<10), req: req, timeout: cfg.Timeout}, nil
	}
}

// httpConn speaks just enough HTTP/1.1 for GETs of static files: a status
// line, headers with Content-Length, and that many bytes of body. One
// request is in flight at a time; the pool's lock guards intended and idle.
type httpConn struct {
	c        net.Conn
	r        *bufio.Reader
	req      []byte
	timeout  time.Duration
	intended time.Time // of the request in flight
	idle     bool      // in the pool's free list
}

// send writes the request. Its answer has the timeout from now, not from
// its intended time: a request that waited for a connection is not
// abandoned (nor its connection replaced) for the wait; the wait counts in
// its latency, and what waited longer than the timeout never goes out
// (read). A failure closes the connection, so that the reader's readAnswer
// fails and counts it.
func (h *httpConn) send() {
	h.c.SetDeadline(time.Now().Add(h.timeout))
	if _, err := h.c.Write(h.req); err != nil {
		h.c.Close()
	}
}

var errStatus = errors.New("status not 200")

// readAnswer reads one answer and returns its body's length.
func (h *httpConn) readAnswer() (int64, error) {
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
