package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/xhttpd/xhttpd/testbed"
)

// adminAddr is where the experiment has xhttpd serve /metrics, inside the
// server namespace, to read what its loops did during each point.
const adminAddr = "127.0.0.1:9090"

// loopStats is what xhttpd's queue loops have counted, summed over queues.
type loopStats struct {
	switches, wakeups, polling, sleeping float64
}

// loopDelta is what the loops did during one point.
type loopDelta struct {
	Switches    float64 `json:"mode_switches_per_s"`
	Wakeups     float64 `json:"wakeups_per_s"`
	PollingPart float64 `json:"polling_share"` // of the loops' time, polling
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
	return d
}
