package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/xhttpd/xhttpd/testbed/loadgen"
)

// loadPoint is what one open-loop run reports, as `testbed loadgen` prints
// it (JSON) for `testbed experiment`, which runs it in the client
// namespace. Latencies are in microseconds, from each request's intended
// time; lag is how late the generator woke for an intended time.
type loadPoint struct {
	Offered   float64 `json:"offered_rps"`
	Achieved  float64 `json:"achieved_rps"`
	Sent      int64   `json:"sent"`
	Done      int64   `json:"done"`
	Errors    int64   `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
	P50       int64   `json:"p50_us"`
	P90       int64   `json:"p90_us"`
	P99       int64   `json:"p99_us"`
	P999      int64   `json:"p999_us"`
	Max       int64   `json:"max_us"`
	LagP50    int64   `json:"lag_p50_us"`
	LagP99    int64   `json:"lag_p99_us"`
	GenCPU    float64 `json:"gen_cpu_s"` // the generator's own CPU seconds (user+system)
	ElapsedS  float64 `json:"elapsed_s"`
	BodyBytes int64   `json:"body_bytes"`
	// Errors by reason (loadgen.Result.Reasons).
	Reasons map[string]int64 `json:"error_reasons,omitempty"`
	// -close: connections opened, closed by the server first (the
	// generator closed after its FIN), reset by the generator (no FIN
	// within loadgen.CloseWait of the answer, or an error), and the
	// TIME-WAIT sockets towards the server's port in the client's
	// namespace after the run (the generator's, none by design, and those
	// of any other client there, such as wrk's saturation run).
	Opened         int64 `json:"new_conns,omitempty"`
	ServerClosed   int64 `json:"closed_by_server,omitempty"`
	Reset          int64 `json:"reset_by_client,omitempty"`
	ClientTimeWait *int  `json:"client_time_wait,omitempty"`
	// With -window: the timeline by intended time, and its origin on
	// CLOCK_MONOTONIC, to line it up with samples taken elsewhere.
	WindowS   float64       `json:"window_s,omitempty"`
	StartMono int64         `json:"start_mono_ns,omitempty"`
	Windows   []windowPoint `json:"windows,omitempty"`
	// The latency distribution: the latency at each of cdfPercentiles, so
	// that the report can draw CDFs without the histogram itself.
	CDF []int64 `json:"cdf_us,omitempty"`
}

// windowPoint is one window of a timeline: the requests intended in it,
// those answered, and their latencies.
type windowPoint struct {
	T       float64 `json:"t_s"` // the window's start, from the run's
	Offered int64   `json:"offered"`
	Done    int64   `json:"done"`
	P50     int64   `json:"p50_us"`
	P99     int64   `json:"p99_us"`
	Max     int64   `json:"max_us"`
}

// cdfPercentiles are where loadgen reads each point's latency
// distribution: every 5 % from 0 to 90 %, then ten steps a decade of 1-p
// up to 99.999 %, as HdrHistogram's percentile plots space them (the
// maximum is max_us).
var cdfPercentiles = func() []float64 {
	var ps []float64
	for p := 0; p <= 90; p += 5 {
		ps = append(ps, float64(p))
	}
	for k := 11; k <= 50; k++ {
		ps = append(ps, math.Round(1e4*100*(1-math.Pow(10, -float64(k)/10)))/1e4)
	}
	return ps
}()

func loadgenCmd(args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var cfg loadgen.Config
	fs.StringVar(&cfg.Addr, "addr", "", "host:port to load (required)")
	fs.StringVar(&cfg.Path, "path", "/1k.bin", "path to GET")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "offered requests per second, Poisson")
	fs.IntVar(&cfg.Conns, "conns", 32, "keep-alive connections in the pool")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "how long requests are offered (at most 10m)")
	fs.DurationVar(&cfg.Timeout, "timeout", 2*time.Second, "a request not answered within this is an error")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the Poisson schedule")
	var burst loadgen.Burst
	fs.DurationVar(&burst.Period, "burst-period", 0, "alternate the offered load with this period (0: steady); -rate is then the mean")
	fs.Float64Var(&burst.Duty, "burst-duty", 0.2, "with -burst-period: the share of each period at the high rate")
	fs.Float64Var(&burst.Low, "burst-low", 0.1, "with -burst-period: the low rate as a share of the high one (0: silence)")
	fs.DurationVar(&cfg.Window, "window", 0, "keep a timeline in windows of this length (0: none)")
	fs.BoolVar(&cfg.Close, "close", false, "a new connection per request (Connection: close), -conns of them open at most; the generator closes after the server's FIN or resets, so it keeps no TIME-WAIT")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: "+loadgenUsage)
		fmt.Fprintln(fs.Output(), "Offers GETs at a Poisson rate over a pool of keep-alive connections (or, with -close, a new connection each) and prints one JSON object: latencies from each request's intended time, the generator's lag, its CPU, errors by reason.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Addr == "" {
		return fmt.Errorf("-addr is required")
	}
	if cfg.Duration > maxDuration {
		return fmt.Errorf("-duration %v: at most %v", cfg.Duration, maxDuration)
	}
	if burst.Period > 0 {
		cfg.Burst = &burst
	}
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	res, err := loadgen.Run(context.Background(), cfg)
	if err != nil {
		return err
	}
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	p := toLoadPoint(res, rusageSeconds(ru1)-rusageSeconds(ru0), cfg.Window)
	if cfg.Close {
		_, port, _ := net.SplitHostPort(cfg.Addr)
		n, _ := strconv.Atoi(port)
		if tw, err := loadgen.TimeWaits(0, n); err == nil {
			p.ClientTimeWait = &tw
		}
	}
	return json.NewEncoder(os.Stdout).Encode(p)
}

// toLoadPoint is what loadgen prints of a run, its own CPU seconds with
// it; window is the length of the run's timeline windows.
func toLoadPoint(res *loadgen.Result, genCPU float64, window time.Duration) loadPoint {
	p := loadPoint{
		Offered: res.Offered, Achieved: res.Achieved, Sent: res.Sent, Done: res.Done, Errors: res.Errors, FirstErr: res.FirstErr,
		P50: res.Latency.ValueAtQuantile(50), P90: res.Latency.ValueAtQuantile(90), P99: res.Latency.ValueAtQuantile(99),
		P999: res.Latency.ValueAtQuantile(99.9), Max: res.Latency.Max(),
		LagP50: res.Lag.ValueAtQuantile(50), LagP99: res.Lag.ValueAtQuantile(99),
		GenCPU:   genCPU,
		ElapsedS: res.Elapsed.Seconds(), BodyBytes: res.BodyBytes,
		Opened: res.Opened, ServerClosed: res.ServerClosed, Reset: res.Reset,
	}
	if len(res.Reasons) > 0 {
		p.Reasons = res.Reasons
	}
	if len(res.Windows) > 0 {
		p.WindowS = window.Seconds()
		p.StartMono = res.Start
		for i, w := range res.Windows {
			wp := windowPoint{T: float64(i) * p.WindowS, Offered: w.Offered, Done: w.Done}
			if w.Latency != nil {
				wp.P50, wp.P99, wp.Max = w.Latency.ValueAtQuantile(50), w.Latency.ValueAtQuantile(99), w.Latency.Max()
			}
			p.Windows = append(p.Windows, wp)
		}
	}
	if res.Latency.TotalCount() > 0 {
		p.CDF = res.Latency.ValueAtPercentilesSlice(cdfPercentiles)
	}
	return p
}

func rusageSeconds(ru syscall.Rusage) float64 {
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds()
}

const loadgenUsage = "testbed loadgen -addr HOST:PORT [-path /1k.bin] [-rate 1000] [-conns 32] [-close] [-burst-period 1s -burst-duty 0.2 -burst-low 0.1] [-window 100ms] [-duration 5s] [-timeout 2s] [-seed 1]"
