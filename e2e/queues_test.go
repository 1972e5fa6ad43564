package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// With 4 queues on a 4-queue veth pair and 64 client connections, the
// flows spread: at least 3 queues carry traffic, and every request succeeds.
// The metrics endpoint, read afterwards, parses as Prometheus text.
func TestQueuesSpreadAndMetrics(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{Queues: 4})
	s := newSite(t)
	startServer(t, tb, s.dir, "-queues", "4", "-mode", "hybrid", "-admin", adminAddr)

	fetchConcurrently(t, tb, s, 64, 20, "198.18.0.1")

	families := scrape(t, tb, adminAddr)
	rx := families["xhttpd_queue_rx_frames_total"]
	if rx == nil {
		t.Fatal("no xhttpd_queue_rx_frames_total")
	}
	busy := 0
	var per []string
	for _, m := range rx.GetMetric() {
		v := m.GetCounter().GetValue()
		per = append(per, fmt.Sprintf("queue %s: %.0f", label(m, "queue"), v))
		if v >= 20 {
			busy++
		}
	}
	if busy < 3 {
		t.Errorf("%d queues carried traffic (%s); want at least 3 of 4", busy, strings.Join(per, ", "))
	}
	t.Logf("rx frames per queue: %s", strings.Join(per, ", "))

	for name, typ := range map[string]dto.MetricType{
		"xhttpd_queue_mode":                dto.MetricType_GAUGE,
		"xhttpd_queue_mode_switches_total": dto.MetricType_COUNTER,
		"xhttpd_queue_seconds_total":       dto.MetricType_COUNTER,
		"xhttpd_queue_wakeups_total":       dto.MetricType_COUNTER,
		"xhttpd_queue_empty_polls_total":   dto.MetricType_COUNTER,
		"xhttpd_queue_round_frames":        dto.MetricType_HISTOGRAM,
		"xhttpd_queue_tx_frames_total":     dto.MetricType_COUNTER,
		"xhttpd_xsk_rx_ring_full_total":    dto.MetricType_COUNTER,
		"xhttpd_xsk_fill_ring_empty_total": dto.MetricType_COUNTER,
		"xhttpd_xdp_frames_total":          dto.MetricType_COUNTER,
		"xhttpd_http_requests_total":       dto.MetricType_COUNTER,
		"xhttpd_queue_rx_wait_seconds":     dto.MetricType_HISTOGRAM,
	} {
		f := families[name]
		if f == nil {
			t.Errorf("metric %s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("metric %s is a %v, want %v", name, f.GetType(), typ)
		}
	}
	if f := families["xhttpd_queue_mode"]; f != nil {
		for _, m := range f.GetMetric() {
			if label(m, "mode") == "hybrid" && m.GetGauge().GetValue() != 1 {
				t.Errorf("queue %s does not report mode hybrid", label(m, "queue"))
			}
		}
	}
	// The XDP program stamps the frames it steers, and the loops count how
	// long they waited: on veth, rounds after a sleep and rounds of
	// polling both, each wait well under a second.
	if f := families["xhttpd_queue_rx_wait_seconds"]; f != nil {
		var count uint64
		var sum float64
		afters := map[string]bool{}
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			count += h.GetSampleCount()
			sum += h.GetSampleSum()
			if h.GetSampleCount() > 0 {
				afters[label(m, "after")] = true
			}
		}
		if count < 64 || sum <= 0 || sum/float64(count) > 0.1 || !afters["sleep"] {
			t.Errorf("xhttpd_queue_rx_wait_seconds: %d waits, %.6f s in all, after %v; want at least 64, after sleeps among them, averaging above 0 and under 100 ms", count, sum, afters)
		}
		t.Logf("rx waits: %d, mean %.1f us", count, sum/float64(count)*1e6)
	}
	// -gc-percent's default and the memory limit beside it, as the
	// runtime has them.
	if f := families["go_gc_gogc_percent"]; f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetGauge().GetValue() != 400 {
		t.Errorf("go_gc_gogc_percent: %v, want 400 (-gc-percent)", f)
	}
	if f := families["go_gc_gomemlimit_bytes"]; f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetGauge().GetValue() != 768<<20 {
		t.Errorf("go_gc_gomemlimit_bytes: %v, want 768 MiB (twice -cache-total and 256 MiB)", f)
	}
	// What each queue got at start: on veth, native XDP, copy mode, and
	// busy-poll options the kernel took.
	if f := families["xhttpd_queue_info"]; f == nil || len(f.GetMetric()) != 4 {
		t.Errorf("xhttpd_queue_info: %v, want one per queue", f)
	} else {
		// Who kicks depends on the machine (-tx-kicks auto keeps the tx
		// thread only where it wakes quickly); a queue with a thread
		// reports the GSO segments it sent.
		threads := 0
		for _, m := range f.GetMetric() {
			if label(m, "xdp_mode") != "native" || label(m, "bind") != "copy" || label(m, "busy_poll") != "true" {
				t.Errorf("queue %s info: %v", label(m, "queue"), m.GetLabel())
			}
			switch label(m, "tx_kicks") {
			case "thread":
				threads++
			case "writer":
			default:
				t.Errorf("queue %s info: tx_kicks %q, want thread or writer", label(m, "queue"), label(m, "tx_kicks"))
			}
		}
		gso := families["xhttpd_queue_tx_gso_segments_total"]
		switch {
		case threads > 0 && (gso == nil || gso.GetType() != dto.MetricType_COUNTER):
			t.Errorf("%d queues with a tx thread, xhttpd_queue_tx_gso_segments_total %v; want a counter", threads, gso)
		case threads == 0 && gso != nil:
			t.Errorf("no queue has a tx thread, yet xhttpd_queue_tx_gso_segments_total is reported")
		}
		t.Logf("queues with a tx thread: %d of 4", threads)
	}
}

// scrape fetches /metrics from addr inside the server namespace and parses
// it with Prometheus's own text parser.
func scrape(t *testing.T, tb *testbed.Testbed, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	out, err := tb.ServerCmd(context.Background(), "curl", "-sS", "--fail", "--max-time", "5", "http://"+addr+"/metrics").Output()
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(string(out)))
	if err != nil {
		t.Fatalf("metrics do not parse as Prometheus text: %v\n%s", err, out)
	}
	return families
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Serving fewer queues than the interface has would leave the flows hashed
// to the others to the kernel, which resets them (15 of 20 new connections
// with -queues 1 on four): xhttpd refuses with one line naming the fix.
// veth has no RSS table to restrict the spread.
func TestFewerQueuesRefused(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{Queues: 4})
	for _, q := range []string{"1", "3"} {
		out, code := runXhttpd(t, tb, nil, "-iface", tb.ServerIf, "-root", t.TempDir(), "-queues", q)
		checkOneLine(t, "-queues "+q+" of 4", out, code, "ethtool -L "+tb.ServerIf+" combined "+q)
	}
}
