package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/testbed"
)

// adminAddr is where the experiment has xhttpd serve /metrics, inside the
// server namespace, to read what its loops did during each point.
const adminAddr = "127.0.0.1:9090"

// loopStats is what xhttpd's queue loops have counted, summed over queues:
// among them, the rounds whose first frame came after a sleep and the
// others, and how long those frames waited in the rx ring in all
// (xhttpd_queue_rx_wait_seconds).
type loopStats struct {
	switches, wakeups, polling, sleeping float64
	waits                                [2]waitSum // after a sleep, while polling
}

type waitSum struct{ count, seconds float64 }

// loopDelta is what the loops did during one point.
type loopDelta struct {
	Switches    float64 `json:"mode_switches_per_s"`
	Wakeups     float64 `json:"wakeups_per_s"`
	PollingPart float64 `json:"polling_share"` // of the loops' time, polling
	// The mean wait in the rx ring of a round's first frame, in us, for
	// rounds after a sleep and while polling (0 without such rounds), and
	// the share of rounds with work that came after a sleep.
	WaitAfterSleepUS float64 `json:"rx_wait_after_sleep_us"`
	WaitPollingUS    float64 `json:"rx_wait_polling_us"`
	AfterSleepPart   float64 `json:"after_sleep_share"`
}

// readLoopStats scrapes xhttpd's /metrics in the server namespace.
func readLoopStats(ctx context.Context, tb *testbed.Testbed) (loopStats, error) {
	out, err := tb.ServerCmd(ctx, "curl", "-sS", "--fail", "--max-time", "5", "http://"+adminAddr+"/metrics").Output()
	if err != nil {
		return loopStats{}, fmt.Errorf("scrape %s: %w", adminAddr, err)
	}
	return parseLoopStats(string(out))
}

func parseLoopStats(text string) (loopStats, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return loopStats{}, fmt.Errorf("metrics: %w", err)
	}
	var s loopStats
	sum := func(name, state string) float64 {
		v := 0.0
		for _, m := range fams[name].GetMetric() {
			if state != "" && !hasLabel(m.GetLabel(), "state", state) {
				continue
			}
			v += m.GetCounter().GetValue()
		}
		return v
	}
	s.switches = sum("xhttpd_queue_mode_switches_total", "")
	s.wakeups = sum("xhttpd_queue_wakeups_total", "")
	s.polling = sum("xhttpd_queue_seconds_total", "polling")
	s.sleeping = sum("xhttpd_queue_seconds_total", "sleeping")
	for i, after := range [...]string{"sleep", "poll"} {
		for _, m := range fams["xhttpd_queue_rx_wait_seconds"].GetMetric() {
			if hasLabel(m.GetLabel(), "after", after) {
				s.waits[i].count += float64(m.GetHistogram().GetSampleCount())
				s.waits[i].seconds += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return s, nil
}

func hasLabel[L interface {
	GetName() string
	GetValue() string
}](labels []L, name, value string) bool {
	for _, l := range labels {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// delta is what happened between a and b over seconds of wall time.
func (b loopStats) delta(a loopStats, seconds float64) loopDelta {
	d := loopDelta{
		Switches: (b.switches - a.switches) / seconds,
		Wakeups:  (b.wakeups - a.wakeups) / seconds,
	}
	if t := (b.polling - a.polling) + (b.sleeping - a.sleeping); t > 0 {
		d.PollingPart = (b.polling - a.polling) / t
	}
	mean := func(i int) float64 {
		if n := b.waits[i].count - a.waits[i].count; n > 0 {
			return (b.waits[i].seconds - a.waits[i].seconds) / n * 1e6
		}
		return 0
	}
	d.WaitAfterSleepUS, d.WaitPollingUS = mean(0), mean(1)
	sleeps, polls := b.waits[0].count-a.waits[0].count, b.waits[1].count-a.waits[1].count
	if sleeps+polls > 0 {
		d.AfterSleepPart = sleeps / (sleeps + polls)
	}
	return d
}

// loopSample is what xhttpd's loops did in one interval of a timeline.
type loopSample struct {
	T           float64 `json:"t_s"` // the interval's middle, from the generator's start
	PollingPart float64 `json:"polling_share"`
	Wakeups     float64 `json:"wakeups_per_s"`
	Switches    float64 `json:"mode_switches_per_s"`
}

// scrape is one reading of the counters, at a time on CLOCK_MONOTONIC.
type scrape struct {
	mono int64
	s    loopStats
}

// loopSampler reads xhttpd's /metrics every interval, over a keep-alive
// connection made in the server's namespace (no process per reading: at
// ten a second, `ip netns exec curl` would cost the machine more than the
// server's loops do), until stop.
type loopSampler struct {
	done    chan struct{}
	stopped chan struct{}
	scrapes []scrape
	err     error
}

func startLoopSampler(ctx context.Context, tb *testbed.Testbed, every time.Duration) *loopSampler {
	ls := &loopSampler{done: make(chan struct{}), stopped: make(chan struct{})}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = tb.InServer(func() error {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	go func() {
		defer close(ls.stopped)
		defer client.CloseIdleConnections()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			mono := monoNow()
			s, err := getLoopStats(ctx, client)
			if err != nil {
				ls.err = err
				return
			}
			ls.scrapes = append(ls.scrapes, scrape{mono, s})
			select {
			case <-ls.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return ls
}

// stop ends the sampling and returns the readings, and the error that
// ended them early, if one did.
func (ls *loopSampler) stop() ([]scrape, error) {
	close(ls.done)
	<-ls.stopped
	return ls.scrapes, ls.err
}

// loopTimeline turns consecutive readings into what happened between
// them, timed from start.
func loopTimeline(scrapes []scrape, start int64) []loopSample {
	var out []loopSample
	for i := 1; i < len(scrapes); i++ {
		a, b := scrapes[i-1], scrapes[i]
		dt := float64(b.mono-a.mono) / 1e9
		if dt <= 0 {
			continue
		}
		d := b.s.delta(a.s, dt)
		out = append(out, loopSample{
			T:           float64((a.mono+b.mono)/2-start) / 1e9,
			PollingPart: d.PollingPart, Wakeups: d.Wakeups, Switches: d.Switches,
		})
	}
	return out
}

func getLoopStats(ctx context.Context, c *http.Client) (loopStats, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+adminAddr+"/metrics", nil)
	if err != nil {
		return loopStats{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return loopStats{}, fmt.Errorf("scrape %s: %w", adminAddr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return loopStats{}, fmt.Errorf("scrape %s: %s %v", adminAddr, resp.Status, err)
	}
	return parseLoopStats(string(b))
}

// monoNow reads CLOCK_MONOTONIC in nanoseconds, the clock of loadgen's
// start_mono_ns.
func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
