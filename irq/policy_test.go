package irq

import (
	"testing"
	"time"
)

// A steady load, a frame every 5 to 200 us for 100 ms, is polled through:
// after the first moments the loop never sleeps.
func TestPolicySteadyLoadKeepsPolling(t *testing.T) {
	for _, interval := range []time.Duration{5 * time.Microsecond, 50 * time.Microsecond, 200 * time.Microsecond} {
		s := newSim(t, Hybrid, every(0, 100*time.Millisecond, interval))
		s.run(t, 100*time.Millisecond)
		// It may sleep while it learns the gap, at the very start.
		for _, sl := range s.sleeps {
			if sl.at > 10*time.Millisecond {
				t.Errorf("interval %v: slept at %v under steady load", interval, sl.at)
			}
		}
		if sw := s.l.pol.switches.Load(); sw > 6 {
			t.Errorf("interval %v: %d switches under steady load", interval, sw)
		}
	}
}

// When the load stops, the loop sleeps within the longest spin.
func TestPolicyIdleSleepsWithinSpell(t *testing.T) {
	s := newSim(t, Hybrid, every(0, 50*time.Millisecond, 20*time.Microsecond))
	s.run(t, 100*time.Millisecond)
	if len(s.sleeps) == 0 {
		t.Fatal("never slept after the load stopped")
	}
	last := s.sleeps[len(s.sleeps)-1]
	if idle := last.at - last.lastWork; idle > maxSpin+roundCost {
		t.Fatalf("slept %v after the last frame; want within %v", idle, maxSpin)
	}
	if s.l.pol.polling.Load() {
		t.Fatal("still polling at the end")
	}

	// With no traffic at all it sleeps within the wake-up cost.
	s = newSim(t, Hybrid, nil)
	s.run(t, time.Second)
	if len(s.sleeps) != 1 || s.sleeps[0].at > wakeCost+roundCost {
		t.Fatalf("idle from the start: sleeps %v; want one within %v", s.sleeps, wakeCost)
	}
}

// A square wave, 1 ms of frames every 10 us then 10 ms of nothing, switches
// at most twice per period: awake at the burst, asleep after it.
func TestPolicySquareWave(t *testing.T) {
	const periods = 30
	period := 11 * time.Millisecond
	var arrivals []time.Duration
	for i := 0; i < periods; i++ {
		start := time.Duration(i) * period
		arrivals = append(arrivals, every(start, start+time.Millisecond, 10*time.Microsecond)...)
	}
	s := newSim(t, Hybrid, arrivals)
	s.run(t, periods*period)
	if sw := s.l.pol.switches.Load(); sw > 2*periods {
		t.Fatalf("%d switches in %d periods; want at most %d", sw, periods, 2*periods)
	}
	if sw := s.l.pol.switches.Load(); sw < 2*periods-2 {
		t.Fatalf("%d switches in %d periods: it should sleep in every off phase", sw, periods)
	}
}

// Sparse traffic, further apart than the longest spin, is not worth
// spinning for: the loop sleeps within the wake-up cost, like interrupt.
func TestPolicySparseLoadSleeps(t *testing.T) {
	s := newSim(t, Hybrid, every(0, time.Second, 2*time.Millisecond))
	s.run(t, time.Second)
	if got := len(s.sleeps); got < 490 {
		t.Fatalf("%d sleeps for 500 sparse frames; want one after nearly each", got)
	}
	poll, _ := s.l.pol.times(s.now)
	if poll > 50*time.Millisecond {
		t.Fatalf("polled %v of a second for sparse traffic", poll)
	}
}

func TestPolicyBusyNeverSleeps(t *testing.T) {
	s := newSim(t, Busy, every(0, 10*time.Millisecond, time.Millisecond))
	s.run(t, 20*time.Millisecond)
	if len(s.sleeps) != 0 || s.l.pol.switches.Load() != 0 {
		t.Fatalf("busy slept %d times", len(s.sleeps))
	}
}

func TestPolicyInterruptSleepsWhenEmpty(t *testing.T) {
	s := newSim(t, Interrupt, every(0, 10*time.Millisecond, 100*time.Microsecond))
	s.run(t, 20*time.Millisecond)
	if got := len(s.sleeps); got != 100 {
		t.Fatalf("interrupt slept %d times for 100 separate frames; want 100", got)
	}
}

// Time polling plus time sleeping is the time elapsed.
func TestPolicyTimesAddUp(t *testing.T) {
	s := newSim(t, Hybrid, every(0, 50*time.Millisecond, 3*time.Millisecond))
	s.run(t, 100*time.Millisecond)
	poll, sleep := s.l.pol.times(s.now)
	if poll+sleep != s.now {
		t.Fatalf("polling %v + sleeping %v != %v elapsed", poll, sleep, s.now)
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{Interrupt, Busy, Hybrid} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMode("sometimes"); err == nil {
		t.Error("ParseMode accepted \"sometimes\"")
	}
}

func TestRoundHistogram(t *testing.T) {
	var h roundHistogram
	for _, n := range []int{0, 1, 1, 3, 64, 65, 1000} {
		h.observe(n)
	}
	cum, sum, count := h.read()
	if count != 6 || sum != 1+1+3+64+65+1000 {
		t.Fatalf("count %d sum %d", count, sum)
	}
	// bounds 1,2,4,8,16,32,64,128,256
	want := []uint64{2, 2, 3, 3, 3, 3, 4, 5, 5}
	for i := range want {
		if cum[i] != want[i] {
			t.Fatalf("cumulative buckets %v, want %v", cum, want)
		}
	}
}
