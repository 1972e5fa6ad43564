package stack

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// gVisor's clock readings and timer targets are tcpip.MonotonicTime, whose
// Add and Sub went through time.Time (third_party/gvisor-patches/0018 makes
// them saturating int64 arithmetic). They must give what the time.Time
// round trip gave, overflow included.
func TestMonotonicTimeArithmetic(t *testing.T) {
	// The upstream definitions, on nanoseconds.
	wantAdd := func(a int64, d time.Duration) int64 {
		return time.Unix(0, a).Add(d).Sub(time.Unix(0, 0)).Nanoseconds()
	}
	wantSub := func(a, b int64) time.Duration {
		return time.Unix(0, a).Sub(time.Unix(0, b))
	}
	at := func(ns int64) tcpip.MonotonicTime { return tcpip.MonotonicTime{}.Add(time.Duration(ns)) }
	edges := []int64{0, 1, -1, 2, -2, 1e9, -1e9, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1, math.MaxInt64 / 2, math.MinInt64 / 2}
	rng := rand.New(rand.NewPCG(1, 2))
	vals := append([]int64(nil), edges...)
	for range 2000 {
		vals = append(vals, int64(rng.Uint64()), rng.Int64N(1<<40)-1<<39)
	}
	for i, a := range vals {
		for _, b := range []int64{vals[(i*7+3)%len(vals)], edges[i%len(edges)]} {
			if got, want := at(a).Add(time.Duration(b)).Sub(tcpip.MonotonicTime{}), time.Duration(wantAdd(a, time.Duration(b))); got != want {
				t.Fatalf("%d + %d = %d, want %d", a, b, got, want)
			}
			if got, want := at(a).Sub(at(b)), wantSub(a, b); got != want {
				t.Fatalf("%d - %d = %d, want %d", a, b, got, want)
			}
		}
	}
	if got := tcpip.MonotonicTimeInfinite().Add(time.Second); got != tcpip.MonotonicTimeInfinite() {
		t.Errorf("infinity + 1 s = %v, want infinity", got)
	}
}

// A clock reading goes through Add once (the stack's offset) and a timer
// once more; upstream's time.Time round trip cost about 25 ns of each here.
func BenchmarkMonotonicTimeAdd(b *testing.B) {
	mt := tcpip.MonotonicTime{}.Add(12345 * time.Second)
	for b.Loop() {
		mt = mt.Add(time.Microsecond)
	}
	if mt.Before(tcpip.MonotonicTime{}) {
		b.Fatal("went backwards")
	}
}
