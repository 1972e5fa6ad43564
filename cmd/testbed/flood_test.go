package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// ms is the durations of v milliseconds each.
func ms(v ...int) (ds []time.Duration) {
	for _, x := range v {
		ds = append(ds, time.Duration(x)*time.Millisecond)
	}
	return ds
}

func TestQuantile(t *testing.T) {
	for _, c := range []struct {
		ds   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 0.5, 3 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 0.99, 5 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9 * time.Millisecond},
	} {
		if got := quantile(c.ds, c.q); got != c.want {
			t.Errorf("quantile(%v, %v) = %v, want %v", c.ds, c.q, got, c.want)
		}
	}
}

func TestWriteFloodTable(t *testing.T) {
	var b strings.Builder
	err := writeFloodTable(&b, []floodRow{
		{server: "hybrid", flood: "random", sentRate: 90000, answerRate: 88000,
			quiet:    probes{served: 10, tries: 10, newConn: []time.Duration{time.Millisecond}, keepAlive: []time.Duration{50 * time.Microsecond}},
			flooded:  probes{served: 9, tries: 10, newConn: []time.Duration{2 * time.Millisecond}, keepAlive: []time.Duration{80 * time.Microsecond}},
			cpuQuiet: 0.0625, cpuFlooded: 0.125},
		{server: "kernel", flood: "v6", err: errors.New("boom")},
	})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("error %v, want the failed row's", err)
	}
	out := b.String()
	for _, want := range []string{"| hybrid", "90000 | 88000 |", "10 of 10", "9 of 10", "| 6% | 12% |", "| kernel | v6 | failed |"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
