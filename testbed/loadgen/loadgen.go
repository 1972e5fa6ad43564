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
	"fmt"
	"math"
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
	// Burst, when set, alternates the offered rate between a high and a
	// low one; Rate is then the mean over a period.
	Burst *Burst
	// Window, when set, keeps a timeline: per window of intended times,
	// the requests offered and answered and their latency.
	Window time.Duration
}

// Burst is an offered load that alternates: each Period starts with
// Duty of it at a high rate, then the rest at Low times that rate (0:
// silence). Within each phase, intended times are Poisson.
type Burst struct {
	Period time.Duration
	Duty   float64 // share of the period at the high rate, in (0, 1]
	Low    float64 // the low rate as a share of the high one, in [0, 1]
}

// Rates returns the high and the low rate of a burst whose mean is mean.
func (b Burst) Rates(mean float64) (high, low float64) {
	high = mean / (b.Duty + (1-b.Duty)*b.Low)
	return high, high * b.Low
}

func (b Burst) check() error {
	if b.Period <= 0 || !(b.Duty > 0 && b.Duty <= 1) || !(b.Low >= 0 && b.Low <= 1) {
		return fmt.Errorf("loadgen: burst period %v, duty %v, low %v: want a period, a duty in (0, 1] and a low share in [0, 1]", b.Period, b.Duty, b.Low)
	}
	return nil
}

// maxWindows bounds a timeline: each window keeps a small histogram.
const maxWindows = 3000

// CloseWait is how long a Close run waits after an answer for the
// server's FIN before it resets the connection.
const CloseWait = 200 * time.Millisecond

// Result is what a run measured. Latencies are in microseconds.
type Result struct {
	Offered  float64 // requests per second the schedule offered
	Achieved float64 // responses per second completed within the run
	Sent     int64   // requests whose intended time fell within the run
	Done     int64   // responses read whole
	Errors   int64   // requests that failed: connect, write, read, status, length
	// Reasons counts the errors by their message (at most maxReasons
	// distinct ones; the rest under "other").
	Reasons map[string]int64
	// With Close: connections opened, those the server closed first (we
	// closed after its FIN: no TIME-WAIT here), and those we reset after
	// waiting CloseWait for its FIN, or after an error.
	Opened, ServerClosed, Reset int64
	Latency                     *hdrhistogram.Histogram
	Lag                         *hdrhistogram.Histogram // the dispatcher's wake-up lateness
	FirstErr                    string                  // the first error, for the report
	Elapsed                     time.Duration           // from the first intended time to the last response
	BodyBytes                   int64
	// Start is the first intended time's origin, on CLOCK_MONOTONIC (ns):
	// the clock of other processes' samples taken during the run.
	Start int64
	// Windows is the timeline, with Config.Window: window i covers the
	// intended times from Start+i*Window.
	Windows []Window
}

// Window is one window of a timeline, by intended time: the requests
// offered in it, those answered (whenever the answer came), and their
// latencies (2 significant digits).
type Window struct {
	Offered, Done int64
	Latency       *hdrhistogram.Histogram // nil while none was answered
}

// Histograms span 1 us to 100 s at 3 significant digits.
const (
	minUS  = 1
	maxUS  = 100_000_000
	digits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(minUS, maxUS, digits) }

// Schedule draws the intended send times of a Poisson process: gaps
// exponentially distributed with mean 1/rate; or, for a burst, of a
// Poisson process whose rate steps between a high and a low one.
type Schedule struct {
	rng  *rand.Rand
	mean float64 // seconds
	next float64 // seconds since the start; for a burst, of operational time

	burst      bool
	period     float64 // seconds
	on         float64 // seconds of each period at the high rate
	high, low  float64 // per second
	perPeriod  float64 // expected arrivals in a period
	onArrivals float64 // of them, in the high phase
}

// NewSchedule starts a schedule at rate per second, seeded.
func NewSchedule(rate float64, seed uint64) *Schedule {
	return &Schedule{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), mean: 1 / rate}
}

// NewBurstSchedule starts a burst schedule whose mean rate is mean.
func NewBurstSchedule(mean float64, b Burst, seed uint64) *Schedule {
	s := NewSchedule(1, seed)
	s.burst = true
	s.period = b.Period.Seconds()
	s.on = b.Duty * s.period
	s.high, s.low = b.Rates(mean)
	s.onArrivals = s.high * s.on
	s.perPeriod = s.onArrivals + s.low*(s.period-s.on)
	return s
}

// Next returns the next intended time, as an offset from the start.
func (s *Schedule) Next() time.Duration {
	s.next += s.rng.ExpFloat64() * s.mean
	if !s.burst {
		return time.Duration(s.next * float64(time.Second))
	}
	// s.next counts expected arrivals (unit rate); the time at which the
	// stepped rate has brought that many is the inverse of its integral.
	k := math.Floor(s.next / s.perPeriod)
	r := s.next - k*s.perPeriod
	t := k * s.period
	if r < s.onArrivals {
		t += r / s.high
	} else {
		t += s.on + (r-s.onArrivals)/s.low // low > 0 here: with silence, r < onArrivals
	}
	return time.Duration(t * float64(time.Second))
}

// Run offers cfg.Rate requests per second for cfg.Duration and waits for
