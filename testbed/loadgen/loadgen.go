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
	"math/rand/v2"
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
	// Close opens a new connection for each request (Connection: close)
	// instead of keeping a pool: the connection's set-up is part of the
	// request's latency, and Conns bounds the connections open at once.
	// The generator never closes first: it closes once the server's FIN
	// has come, or resets the connection (SO_LINGER 0) when the FIN has
	// not come within CloseWait of the answer, so it holds no TIME-WAIT
	// and cannot run out of ephemeral ports on its own.
	Close bool
}

// CloseWait is how long a Close run waits after an answer for the
// server's FIN before it resets the connection.
const CloseWait = 200 * time.Millisecond

// Result is what a run measured. Latencies are in microseconds.
type Result struct {
	Offered   float64 // requests per second the schedule offered
	Achieved  float64 // responses per second completed within the run
	Sent      int64   // requests whose intended time fell within the run
	Done      int64   // responses read whole
	Errors    int64   // requests that failed: connect, write, read, status, length
	// Reasons counts the errors by their message (at most maxReasons
	// distinct ones; the rest under "other").
	Reasons map[string]int64
	// With Close: connections opened, those the server closed first (we
	// closed after its FIN: no TIME-WAIT here), and those we reset after
	// waiting CloseWait for its FIN, or after an error.
	Opened, ServerClosed, Reset int64
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
