package main

import (
	"bufio"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what the table needs from wrk's report.
type wrkResult struct {
	ReqPerSec    float64
	P50, P99     time.Duration
	Requests     int64
	SocketErrors string // wrk's "connect 0, read 0, write 0, timeout 0" line, if any
	Non2xx3xx    int64
}

// parseWrk reads the report of `wrk --latency`:
//
//	  Latency Distribution
//	     50%  103.00us
//	     99%    1.23ms
//	  123456 requests in 10.00s, 150.00MB read
//	  Socket errors: connect 0, read 0, write 0, timeout 2
//	  Non-2xx or 3xx responses: 5
//	Requests/sec:  12345.67
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, have50, have99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk: requests/sec %q: %w", f[1], err)
			}
			r.ReqPerSec, haveRPS = v, true
		case (f0(f) == "50%" || f0(f) == "99%") && len(f) == 2:
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			if f[0] == "50%" {
				r.P50, have50 = d, true
			} else {
				r.P99, have99 = d, true
			}
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk: request count %q: %w", f[0], err)
			}
			r.Requests = n
		case strings.HasPrefix(line, "Socket errors:"):
			r.SocketErrors = strings.TrimSpace(strings.TrimPrefix(line, "Socket errors:"))
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 5:
			n, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk: non-2xx count %q: %w", f[4], err)
			}
			r.Non2xx3xx = n
		}
	}
	if !haveRPS || !have50 || !have99 {
		return r, fmt.Errorf("wrk: report lacks Requests/sec or the 50%%/99%% latency lines (was --latency given?)")
	}
	return r, nil
}

func f0(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// parseWrkDuration reads wrk's latency format: a number with a unit of us,
// ms, s, m or h.
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				break
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("wrk: latency %q: unknown format", s)
}

// fmtLatency prints latencies the way a reader compares them: microseconds
// below a millisecond, milliseconds above.
func fmtLatency(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f us", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// wrkArgs are wrk's arguments for a run against url: no more threads than
// connections, because wrk refuses a thread without one. With closeEach,
// every request asks for Connection: close, so wrk opens a new connection
// per request.
func wrkArgs(threads, conns int, d time.Duration, url string, closeEach bool) []string {
	args := []string{
		"-t", strconv.Itoa(min(threads, conns)), "-c", strconv.Itoa(conns),
		"-d", strconv.Itoa(int(d.Seconds())) + "s",
		"--timeout", "2s", "--latency",
	}
	if closeEach {
		args = append(args, "-H", "Connection: close")
	}
	return append(args, url)
}

func needWrk() error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk is needed for bench (apt-get install wrk): %w", err)
	}
	return nil
}
