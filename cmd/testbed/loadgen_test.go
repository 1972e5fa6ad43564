package main

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/xhttpd/xhttpd/testbed/loadgen"
)

// The distribution's percentiles climb from 0 to 99.999 %, every 5 % up to
// 90 and ten a decade of 1-p above, with the usual ones among them.
func TestCDFPercentiles(t *testing.T) {
	ps := cdfPercentiles
	if ps[0] != 0 || ps[len(ps)-1] != 99.999 || !slices.IsSorted(ps) {
		t.Fatalf("percentiles %v: want 0 to 99.999, rising", ps)
	}
	for i := 1; i < len(ps); i++ {
		if ps[i] == ps[i-1] {
			t.Fatalf("percentile %v twice", ps[i])
		}
	}
	for _, want := range []float64{50, 90, 99, 99.9, 99.99} {
		if !slices.Contains(ps, want) {
			t.Errorf("no %v %% among %v", want, ps)
		}
	}
}

// A run's latency histogram becomes the point's percentiles and its
// distribution at cdfPercentiles; an empty one has no distribution.
func TestToLoadPoint(t *testing.T) {
	lat := hdrhistogram.New(1, 100_000_000, 3)
	for v := int64(1); v <= 1000; v++ { // 1 to 1000 us, once each
		lat.RecordValue(v)
	}
	lag := hdrhistogram.New(1, 100_000_000, 3)
	lag.RecordValue(7)
	p := toLoadPoint(&loadgen.Result{Offered: 1000, Done: 1000, Latency: lat, Lag: lag}, 0.5, 0)
	if p.P50 != 500 || p.P99 != 990 || p.Max != 1000 || p.LagP99 != 7 || p.GenCPU != 0.5 {
		t.Errorf("p50 %d, p99 %d, max %d, lag p99 %d, CPU %v", p.P50, p.P99, p.Max, p.LagP99, p.GenCPU)
	}
	if len(p.CDF) != len(cdfPercentiles) {
		t.Fatalf("%d values for %d percentiles", len(p.CDF), len(cdfPercentiles))
	}
	for i, pc := range cdfPercentiles {
		want := max(int64(pc*10+0.5), 1) // value v sits at percentile v/10
		if d := p.CDF[i] - want; d < -1 || d > 1 {
			t.Errorf("at %v %%: %d us, want %d", pc, p.CDF[i], want)
		}
	}
	b, _ := json.Marshal(p)
	var back map[string]any
	json.Unmarshal(b, &back)
	if _, ok := back["cdf_us"]; !ok {
		t.Errorf("no cdf_us in %s", b)
	}
	empty := toLoadPoint(&loadgen.Result{Latency: hdrhistogram.New(1, 100_000_000, 3), Lag: lag}, 0, 0)
	if empty.CDF != nil {
		t.Errorf("a run with no answers has a distribution: %v", empty.CDF)
	}
}

// A timeline's windows carry their start and their latencies; a window
// without answers has none.
func TestToLoadPointWindows(t *testing.T) {
	h := hdrhistogram.New(1, 100_000_000, 2)
	for _, v := range []int64{100, 200, 300, 5000} {
		h.RecordValue(v)
	}
	lat := hdrhistogram.New(1, 100_000_000, 3)
	res := &loadgen.Result{Latency: lat, Lag: lat, Start: 12345, Windows: []loadgen.Window{{Offered: 5, Done: 4, Latency: h}, {Offered: 0}}}
	p := toLoadPoint(res, 0, 100*time.Millisecond)
	if p.WindowS != 0.1 || p.StartMono != 12345 || len(p.Windows) != 2 {
		t.Fatalf("window %v s, start %d, %d windows", p.WindowS, p.StartMono, len(p.Windows))
	}
	w := p.Windows[0]
	if w.T != 0 || w.Offered != 5 || w.Done != 4 || w.P50 < 199 || w.P50 > 201 || w.Max < 4950 || w.Max > 5050 || w.P99 != w.Max {
		t.Errorf("first window %+v", w)
	}
	if w := p.Windows[1]; w.T != 0.1 || w.P99 != 0 || w.Done != 0 {
		t.Errorf("second window %+v", w)
	}
}
