package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"strconv"
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
	s := newServer(t, serverOpts{delay: delay, status: status, bodyLen: bodyLen})
	return s.addr, &s.accepted
}

type serverOpts struct {
	delay       time.Duration
	status      string
	bodyLen     int
	ignoreClose bool // keep a connection open after answering Connection: close
}

// testServer is a loopback HTTP server for the generator's tests: it
// closes a connection after answering a request with Connection: close
// (unless told to ignore it), and counts the connections it accepts and
// the most requests it has at once (read, not yet answered).
type testServer struct {
	addr                    string
	accepted, busy, maxBusy atomic.Int64
}

func newServer(t *testing.T, o serverOpts) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &testServer{addr: l.Addr().String()}
	answer := []byte(fmt.Sprintf("HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s", o.status, o.bodyLen, strings.Repeat("x", o.bodyLen)))
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				closing := false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.EqualFold(strings.TrimSpace(line), "Connection: close") {
						closing = !o.ignoreClose
					}
					if strings.TrimSpace(line) != "" {
						continue
					}
					n := s.busy.Add(1)
					for m := s.maxBusy.Load(); n > m && !s.maxBusy.CompareAndSwap(m, n); m = s.maxBusy.Load() {
					}
					time.Sleep(o.delay)
					s.busy.Add(-1) // before the answer: once it is out, another may come
					c.Write(answer)
					if closing {
						return
					}
				}
			}()
		}
	}()
	return s
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

// With Close each request opens its own connection, counted in its
// latency; the server closes each first (it was asked to), and the
// generator closes after the server's FIN, so it holds no TIME-WAIT.
func TestClose(t *testing.T) {
	s := newServer(t, serverOpts{status: "200 OK", bodyLen: 100})
	before := timeWaitsTo(t, s)
	res, err := Run(context.Background(), Config{Addr: s.addr, Path: "/", Rate: 500, Conns: 4, Duration: 300 * time.Millisecond, Seed: 5, Close: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Done != res.Sent || res.Sent < 50 {
		t.Fatalf("sent %d, done %d, errors %d (%v)", res.Sent, res.Done, res.Errors, res.Reasons)
	}
	if n := s.accepted.Load(); n != res.Sent || res.Opened != res.Sent {
		t.Errorf("%d connections accepted, %d opened, for %d requests", n, res.Opened, res.Sent)
	}
	if res.ServerClosed != res.Done || res.Reset != 0 {
		t.Errorf("%d closed by the server first, %d reset, of %d", res.ServerClosed, res.Reset, res.Done)
	}
	if n := timeWaitsTo(t, s) - before; n > 0 {
		t.Errorf("%d TIME-WAIT sockets of the generator's", n)
	}
}

// timeWaitsTo counts the TIME-WAIT sockets whose remote port is s's. Some
// may be another test's, in a package run beside this one, from an
// earlier server on the same port number: the tests count what a run
// adds.
func timeWaitsTo(t *testing.T, s *testServer) int {
	t.Helper()
	n, err := TimeWaits(0, s.port(t))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A server that keeps the connection after answering Connection: close is
// not waited for long: the generator resets the connection (no TIME-WAIT)
// after CloseWait, and the answers count.
func TestCloseServerKeepsConnection(t *testing.T) {
	s := newServer(t, serverOpts{status: "200 OK", bodyLen: 10, ignoreClose: true})
	before := timeWaitsTo(t, s)
	start := time.Now()
	res, err := Run(context.Background(), Config{Addr: s.addr, Path: "/", Rate: 200, Conns: 64, Duration: 200 * time.Millisecond, Seed: 6, Close: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Done != res.Sent || res.Reset != res.Done || res.ServerClosed != 0 {
		t.Errorf("sent %d, done %d, errors %d, reset %d, closed by the server %d", res.Sent, res.Done, res.Errors, res.Reset, res.ServerClosed)
	}
	if d := time.Since(start); d > 200*time.Millisecond+CloseWait+300*time.Millisecond {
		t.Errorf("the run took %v", d)
	}
	if n := timeWaitsTo(t, s) - before; n > 0 {
		t.Errorf("%d TIME-WAIT sockets of the generator's", n)
	}
}

// A request whose connect fails is an error with its reason, counted by
// reason; the run goes on.
func TestCloseConnectFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	res, err := Run(context.Background(), Config{Addr: addr, Path: "/", Rate: 200, Conns: 4, Duration: 200 * time.Millisecond, Seed: 7, Close: true})
	if err != nil {
		t.Fatal(err)
	}
	const reason = "connect: connection refused"
	if res.Sent == 0 || res.Errors != res.Sent || res.Done != 0 || res.Reasons[reason] != res.Sent {
		t.Errorf("sent %d, errors %d, done %d, reasons %v; want every request failed with %q", res.Sent, res.Errors, res.Done, res.Reasons, reason)
	}
}

// Conns bounds the connections open at once; a request beyond them waits,
// its latency growing.
func TestCloseBoundsConnections(t *testing.T) {
	s := newServer(t, serverOpts{delay: 10 * time.Millisecond, status: "200 OK", bodyLen: 10})
	res, err := Run(context.Background(), Config{Addr: s.addr, Path: "/", Rate: 400, Conns: 2, Duration: 300 * time.Millisecond, Seed: 8, Close: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.maxBusy.Load(); n > 2 {
		t.Errorf("%d requests at the server at once, want at most 2", n)
	}
	if res.Done+res.Errors != res.Sent || res.Done == 0 {
		t.Errorf("sent %d, done %d, errors %d", res.Sent, res.Done, res.Errors)
	}
	if p50 := res.Latency.ValueAtQuantile(50); p50 < 20_000 {
		t.Errorf("p50 %d us at twice what two connections serve: the wait is not counted", p50)
	}
}

func (s *testServer) port(t *testing.T) int {
	_, p, err := net.SplitHostPort(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// TIME-WAIT sockets are counted from the kernel's table by remote port.
func TestCountTimeWait(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0050 0100007F:9C40 06 00000000:00000000 03:00001234 00000000     0        0 0 3 0000000000000000
   1: 0200127F:9C41 010012C6:0050 06 00000000:00000000 03:00001234 00000000     0        0 0 3 0000000000000000
   2: 0200127F:9C42 010012C6:0050 01 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000
`
	for _, c := range []struct{ local, remote, want int }{{0, 0, 2}, {0, 80, 1}, {80, 0, 1}, {0, 0x9c40, 1}, {80, 0x9c40, 1}, {0, 443, 0}, {443, 0, 0}} {
		if n, err := countTimeWait([]byte(table), c.local, c.remote); err != nil || n != c.want {
			t.Errorf("local port %d, remote %d: %d (%v), want %d", c.local, c.remote, n, err, c.want)
		}
	}
	if _, err := countTimeWait([]byte("header\n 0: 0100007F 0100007F:0050 06\n"), 0, 0); err == nil {
		t.Error("an address without a port was read")
	}
	if _, err := TimeWaits(0, 0); err != nil {
		t.Error(err)
	}
}

// A burst schedule steps between its two rates: counted over many periods,
// the high phase offers the high rate and the rest the low one, and the
// mean is the rate asked for. With silence, nothing falls between bursts.
func TestBurstSchedule(t *testing.T) {
	for _, low := range []float64{0.1, 0} {
		b := Burst{Period: 100 * time.Millisecond, Duty: 0.2, Low: low}
		const mean, periods = 1000.0, 1000
		high, lowRate := b.Rates(mean)
		if want := mean / (0.2 + 0.8*low); math.Abs(high-want) > 1e-9 || math.Abs(lowRate-high*low) > 1e-9 {
			t.Fatalf("rates %v and %v, want %v and %v", high, lowRate, want, want*low)
		}
		s := NewBurstSchedule(mean, b, 9)
		var on, off int
		prev := time.Duration(0)
		for {
			at := s.Next()
			if at < prev {
				t.Fatalf("intended times go back: %v after %v", at, prev)
			}
			prev = at
			if at >= periods*b.Period {
				break
			}
			if at%b.Period < 20*time.Millisecond {
				on++
			} else {
				off++
			}
		}
		total := periods * b.Period.Seconds()
		if got := float64(on) / (0.2 * total); math.Abs(got/high-1) > 0.02 {
			t.Errorf("low %v: %.0f/s in the bursts, want %.0f", low, got, high)
		}
		if low == 0 && off != 0 {
			t.Errorf("%d requests in the silences", off)
		}
		if low > 0 {
			if got := float64(off) / (0.8 * total); math.Abs(got/lowRate-1) > 0.03 {
				t.Errorf("low %v: %.0f/s between the bursts, want %.0f", low, got, lowRate)
			}
		}
		if got := float64(on+off) / total; math.Abs(got/mean-1) > 0.02 {
			t.Errorf("low %v: mean %.0f/s, want %.0f", low, got, mean)
		}
	}
}

// A timeline counts each request in the window of its intended time, and
// its latency there; a burst with silence between leaves the silent
// windows empty.
func TestTimeline(t *testing.T) {
	addr, _ := server(t, 0, "200 OK", 10)
	res, err := Run(context.Background(), Config{Addr: addr, Path: "/", Rate: 400, Conns: 4, Duration: 400 * time.Millisecond, Seed: 10,
		Burst: &Burst{Period: 200 * time.Millisecond, Duty: 0.5}, Window: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Windows) != 8 || res.Start == 0 {
		t.Fatalf("%d windows, start %d", len(res.Windows), res.Start)
	}
	var offered, done int64
	for i, w := range res.Windows {
		offered, done = offered+w.Offered, done+w.Done
		burst := i%4 < 2 // 100 ms on, 100 ms off
		switch {
		case burst && (w.Offered == 0 || w.Latency == nil || w.Latency.TotalCount() != w.Done):
			t.Errorf("window %d, in a burst: %d offered, %d answered", i, w.Offered, w.Done)
		case !burst && w.Offered != 0:
			t.Errorf("window %d, between bursts: %d offered", i, w.Offered)
		}
	}
	if offered != res.Sent || done != res.Done {
		t.Errorf("windows: %d offered, %d answered; the run: %d, %d", offered, done, res.Sent, res.Done)
	}
	for _, c := range []Config{
		{Addr: addr, Rate: 1, Conns: 1, Duration: time.Hour, Window: time.Millisecond},
		{Addr: addr, Rate: 1, Conns: 1, Duration: time.Second, Burst: &Burst{Period: time.Second, Duty: 0}},
		{Addr: addr, Rate: 1, Conns: 1, Duration: time.Second, Burst: &Burst{Period: time.Second, Duty: 0.5, Low: 2}},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("window %v, burst %+v accepted", c.Window, c.Burst)
		}
	}
}
