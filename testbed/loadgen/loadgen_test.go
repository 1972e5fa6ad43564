package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The gaps are exponential with mean 1/rate: mean, coefficient of variation
// (1 for an exponential) and the share of gaps longer than the mean (1/e).
func TestSchedulePoisson(t *testing.T) {
	const rate, n = 1000.0, 200_000
	s := NewSchedule(rate, 42)
	var sum, sumSq float64
	longer := 0
	prev := time.Duration(0)
	for range n {
		at := s.Next()
		gap := (at - prev).Seconds()
		if gap < 0 {
			t.Fatalf("intended times go back: %v after %v", at, prev)
		}
		prev = at
		sum += gap
		sumSq += gap * gap
		if gap > 1/rate {
			longer++
		}
	}
	mean := sum / n
	cv := math.Sqrt(sumSq/n-mean*mean) / mean
	if math.Abs(mean*rate-1) > 0.01 {
		t.Errorf("mean gap %.4f ms, want 1 ms", mean*1e3)
	}
	if math.Abs(cv-1) > 0.02 {
		t.Errorf("coefficient of variation %.3f, want 1", cv)
	}
	if share := float64(longer) / n; math.Abs(share-1/math.E) > 0.01 {
		t.Errorf("%.3f of the gaps exceed the mean, want 1/e = %.3f", share, 1/math.E)
	}
	// One seed, one schedule: runs at a rate offer the same gaps.
	a, b := NewSchedule(rate, 7), NewSchedule(rate, 7)
	for range 100 {
		if a.Next() != b.Next() {
			t.Fatal("two schedules with one seed differ")
		}
	}
}

// server answers each GET on loopback after delay, with status and a body
// of bodyLen bytes, and counts the connections it accepts.
func server(t *testing.T, delay time.Duration, status string, bodyLen int) (addr string, accepted *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted = new(atomic.Int64)
	answer := []byte(fmt.Sprintf("HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s", status, bodyLen, strings.Repeat("x", bodyLen)))
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.TrimSpace(line) != "" {
						continue
					}
					time.Sleep(delay)
					c.Write(answer)
				}
			}()
		}
	}()
	return l.Addr().String(), accepted
}

// Offered twice what one connection can serve, latency counts from the
// intended times: the queue the server builds shows. Timed from when each
// request was sent, as a closed loop does, it would be the 2 ms a request
// takes.
func TestLatencyFromIntendedTime(t *testing.T) {
	addr, _ := server(t, 2*time.Millisecond, "200 OK", 100)
	res, err := Run(context.Background(), Config{Addr: addr, Path: "/", Rate: 1000, Conns: 1, Duration: 400 * time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 {
		t.Fatalf("%d errors: %s", res.Errors, res.FirstErr)
	}
	if p50 := res.Latency.ValueAtQuantile(50); p50 < 20_000 {
		t.Errorf("p50 %d us at twice the capacity: the queue is not counted", p50)
	}
	if res.Achieved > 0.75*res.Offered {
		t.Errorf("achieved %.0f/s of %.0f/s offered, from one connection taking 2 ms a request", res.Achieved, res.Offered)
	}
	if res.Done != res.Sent {
		t.Errorf("%d requests sent, %d answered", res.Sent, res.Done)
	}
}

// Below capacity every request is answered and counted once, and the lag
// has one sample per request.
func TestBelowCapacity(t *testing.T) {
	addr, _ := server(t, 0, "200 OK", 100)
	res, err := Run(context.Background(), Config{Addr: addr, Path: "/", Rate: 500, Conns: 4, Duration: 400 * time.Millisecond, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Done != res.Sent || res.Sent < 100 {
		t.Fatalf("sent %d, done %d, errors %d (%s)", res.Sent, res.Done, res.Errors, res.FirstErr)
	}
	if res.Lag.TotalCount() != res.Sent || res.Latency.TotalCount() != res.Done {
		t.Errorf("%d lag and %d latency samples for %d requests", res.Lag.TotalCount(), res.Latency.TotalCount(), res.Sent)
	}
	if res.BodyBytes != 100*res.Done {
		t.Errorf("%d body bytes for %d answers of 100", res.BodyBytes, res.Done)
	}
}

// A status other than 200 is an error, counted, with the first one kept.
func TestErrorsCounted(t *testing.T) {
	addr, _ := server(t, 0, "404 Not Found", 100)
	res, err := Run(context.Background(), Config{Addr: addr, Path: "/", Rate: 200, Conns: 2, Duration: 200 * time.Millisecond, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != res.Sent || res.Done != 0 {
		t.Errorf("sent %d, errors %d, done %d: every 404 is an error", res.Sent, res.Errors, res.Done)
	}
	if !strings.Contains(res.FirstErr, "404") {
		t.Errorf("first error %q does not name the status", res.FirstErr)
	}
}

// Bad configurations are refused with the reason.
func TestConfigChecked(t *testing.T) {
	for _, c := range []Config{{Rate: 0, Conns: 1, Duration: time.Second}, {Rate: 1, Conns: 0, Duration: time.Second}, {Rate: 1, Conns: 1}} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// Far past saturation, requests that waited longer than the timeout for a
// connection fail as errors without costing a connection each: the pool
// keeps its connections instead of churning through ephemeral ports.
func TestOverloadKeepsConnections(t *testing.T) {
	addr, accepted := server(t, 20*time.Millisecond, "200 OK", 0)
	res, err := Run(context.Background(), Config{Addr: addr, Path: "/", Rate: 2000, Conns: 2, Duration: 500 * time.Millisecond, Timeout: 100 * time.Millisecond, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || !strings.Contains(res.FirstErr, "timeout") {
		t.Errorf("%d errors (%q) at 20 times the capacity with a 100 ms timeout", res.Errors, res.FirstErr)
	}
	if n := accepted.Load(); n > 10 {
		t.Errorf("%d connections made for a pool of 2", n)
	}
	if res.Done+res.Errors != res.Sent {
		t.Errorf("sent %d, answered %d, failed %d", res.Sent, res.Done, res.Errors)
	}
}

// A pool that cannot be opened is an error that says so, and leaves
// nothing open.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = Run(context.Background(), Config{Addr: addr, Path: "/", Rate: 100, Conns: 2, Duration: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "connection 1 of 2") {
		t.Fatalf("Run against a closed port: %v", err)
	}
}
