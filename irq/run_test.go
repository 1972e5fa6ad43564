package irq

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// Tests of Loop.Run itself over a fake queue: on the fake clock of sim for
// what the loop decides, and on the real clock, with the real netpoller on
// the fake's eventfd, for what runs concurrently.

var modes = []Mode{Interrupt, Busy, Hybrid}

// A lone frame is delivered at once: by the first round after it arrives,
// or, when the loop sleeps, the first round after the wake-up.
func TestRunLoneFrame(t *testing.T) {
	const at = 5 * time.Millisecond
	for _, mode := range modes {
		s := newSim(t, mode, []time.Duration{at})
		s.run(t, 10*time.Millisecond)
		if len(s.delivered) != 1 {
			t.Fatalf("%v: %d frames delivered, want 1", mode, len(s.delivered))
		}
		if d := s.delivered[0] - at; d < 0 || d > wakeCost+roundCost {
			t.Errorf("%v: delivered %v after it arrived; want within %v", mode, d, wakeCost+roundCost)
		}
		if slept := len(s.sleeps) > 0 && s.sleeps[0].at < at; slept != (mode != Busy) {
			t.Errorf("%v: asleep when it came: %v", mode, slept)
		}
	}
}

// A backlog is taken a budget at a time, in as few rounds as the budget
// allows, and a stream faster than the loop fills every round to the
// budget and never past it.
func TestRunBatchesPerBudget(t *testing.T) {
	for _, mode := range modes {
		s := newSim(t, mode, make([]time.Duration, 1000)) // all at 0
		s.q.rounds = []int{}
		s.run(t, 10*time.Millisecond)
		var work []int
		for _, n := range s.q.rounds {
			if n > 0 {
				work = append(work, n)
			}
		}
		want := append(slices.Repeat([]int{budget}, 15), 1000-15*budget)
		if !slices.Equal(work, want) {
			t.Errorf("%v: rounds with work %v, want %v", mode, work, want)
		}
		if s.q.budget != budget {
			t.Errorf("%v: Receive's budget %d, want %d each time", mode, s.q.budget, budget)
		}

		// A frame every 500 ns, for a loop that needs 1 us a frame.
		s = newSim(t, mode, every(0, 10*time.Millisecond, 500*time.Nanosecond))
		s.q.rounds = []int{}
		s.run(t, 50*time.Millisecond)
		if m := slices.Max(s.q.rounds); m != budget {
			t.Errorf("%v: largest round %d under a stream faster than the loop, want the budget %d", mode, m, budget)
		}
		st := s.l.Stats()
		if len(s.delivered) != len(s.arrivals) || st.RoundSum != uint64(len(s.arrivals)) {
			t.Errorf("%v: %d delivered, %d counted of %d", mode, len(s.delivered), st.RoundSum, len(s.arrivals))
		}
	}
}

// Hybrid switches between polling and sleeping with the load, and counts
// what it did: a wake-up per sleep, a switch each way.
func TestRunHybridSwitches(t *testing.T) {
	var arrivals []time.Duration
	for i := range 10 {
		start := time.Duration(i) * 5 * time.Millisecond
		arrivals = append(arrivals, every(start, start+time.Millisecond, 10*time.Microsecond)...)
	}
	s := newSim(t, Hybrid, arrivals)
	s.run(t, 50*time.Millisecond)
	st := s.l.Stats()
	if st.Wakeups != uint64(len(s.sleeps)) || st.Switches < 19 || st.Switches > 21 {
		t.Errorf("%d sleeps: %d wake-ups, %d switches; want a wake-up each and about 20 switches", len(s.sleeps), st.Wakeups, st.Switches)
	}
	if st.Polling || st.EmptyPolls < st.Wakeups || st.PollTime+st.SleepTime != s.now {
		t.Errorf("stats %+v at %v", st, s.now)
	}
}

// Frames that are no work for the netstack (strays it dropped at the door)
// do not keep hybrid polling: under a flood of them, one every 5 us, it
// sleeps after each round as interrupt mode does, where the same flood of
// work is polled through without a sleep. Each frame is still delivered.
func TestRunHybridSleepsThroughStrays(t *testing.T) {
	arrivals := every(0, 10*time.Millisecond, 5*time.Microsecond)
	for _, noWork := range []bool{false, true} {
		s := newSim(t, Hybrid, arrivals)
		s.noWork = noWork
		s.run(t, 10*time.Millisecond)
		st := s.l.Stats()
		t.Logf("no work %v: polled %v, slept %v, %d wake-ups", noWork, st.PollTime, st.SleepTime, st.Wakeups)
		if len(s.delivered) != len(arrivals) {
			t.Errorf("no work %v: %d of %d frames delivered", noWork, len(s.delivered), len(arrivals))
		}
		switch {
		case !noWork && st.Wakeups > 1:
			t.Errorf("a flood of work: %d wake-ups, want it polled through (one at most, at the start)", st.Wakeups)
		case noWork && st.PollTime > st.SleepTime:
			t.Errorf("a flood of strays: polled %v and slept %v (%d wake-ups); want it mostly asleep", st.PollTime, st.SleepTime, st.Wakeups)
		}
	}
}

// A loop that does not sleep makes the syscall need_wakeup asks for after
// each empty round, and only then; one that sleeps leaves it to the poll(2)
// before it parks.
func TestRunWakesFillWhenAsked(t *testing.T) {
	for _, c := range []struct {
		mode      Mode
		need      bool
		wantKicks bool
	}{
		{Busy, true, true}, {Busy, false, false}, {Interrupt, true, false},
	} {
		s := newSim(t, c.mode, nil)
		s.q.needWakeup = c.need
		s.run(t, 100*time.Microsecond)
		if kicks := s.q.wakeRx; (kicks > 0) != c.wantKicks || uint64(kicks) != s.l.Stats().FillKicks {
			t.Errorf("%v, need_wakeup %v: %d kicks (%d counted)", c.mode, c.need, kicks, s.l.Stats().FillKicks)
		}
	}
}

// Frames waiting for room in the fill ring, or in the tx ring, must not
// wait for traffic: the loop then sleeps for a millisecond only.
func TestRunShortSleepWhileFramesWait(t *testing.T) {
	s := newSim(t, Interrupt, []time.Duration{time.Millisecond})
	s.q.holdFill = true
	s.run(t, 5*time.Millisecond)
	if len(s.timeouts) < 2 || s.timeouts[0] != 0 || s.timeouts[1] != time.Millisecond {
		t.Errorf("sleep timeouts %v; want none before the frame, 1ms while it waits for the fill ring", s.timeouts)
	}
	s = newSim(t, Interrupt, nil)
	s.q.txPending = true
	s.run(t, time.Millisecond)
	if len(s.timeouts) == 0 || s.timeouts[0] != time.Millisecond {
		t.Errorf("sleep timeouts %v with frames in the tx ring; want 1ms", s.timeouts)
	}
}

func TestRunReturnsServiceError(t *testing.T) {
	s := newSim(t, Busy, nil)
	s.q.serviceErr = errService
	if err := s.l.Run(); !errors.Is(err, errService) {
		t.Fatalf("Run returned %v, want the queue's error", err)
	}
}

// The hot path allocates nothing: thousands of rounds, busy and asleep,
// cost no more allocations than Run's start.
func TestRunAllocatesNothingPerRound(t *testing.T) {
	s := newSim(t, Hybrid, every(0, 2*time.Millisecond, 3*time.Microsecond))
	s.l.deliver = perFrame(func([]byte) {})
	s.sleeps = make([]sleepAt, 0, 1<<12)
	s.timeouts = make([]time.Duration, 0, 1<<12)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s.run(t, 4*time.Millisecond)
	runtime.ReadMemStats(&after)
	rounds := s.l.Stats().RoundCount + s.l.Stats().EmptyPolls
	if allocs := after.Mallocs - before.Mallocs; rounds < 5000 || allocs > 10 {
		t.Errorf("%d allocations in %d rounds", allocs, rounds)
	}
}

// runLoop runs l on a goroutine of its own, stopped when the test ends
// unless the test failed (Stop may be what failed).
func runLoop(t *testing.T, l *Loop) (errc <-chan error) {
	c := make(chan error, 1)
	go func() { c <- l.Run() }()
	t.Cleanup(func() {
		if !t.Failed() {
			l.Stop()
		}
	})
	return c
}

// stop stops l and returns Run's result, failing the test if either takes
// more than 5 s.
func stop(t *testing.T, l *Loop, errc <-chan error) error {
	t.Helper()
	stopped := make(chan struct{})
	go func() {
		l.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return within 5 s")
	}
	select {
	case err := <-errc:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of Stop")
		return nil
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5 s", what)
		}
	}
}

// On the real clock: a loop asleep wakes for a lone frame, and
// Stop ends Run, asleep or spinning, with nil.
func TestRunWakesAndStops(t *testing.T) {
	for _, mode := range modes {
		q := newFakeQueue(t, 4)
		got := make(chan uint64, 1)
		l, err := New(q, Config{Mode: mode, WakeCost: time.Microsecond}, perFrame(func(f []byte) { got <- seq(f) }))
		if err != nil {
			t.Fatal(err)
		}
		errc := runLoop(t, l)
		if mode != Busy {
			waitFor(t, mode.String()+" sleep", func() bool { return !l.Stats().Polling })
		}
		q.arrive(1)
		select {
		case n := <-got:
			if n != 0 {
				t.Errorf("%v: delivered frame %d, want 0", mode, n)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%v: a lone frame not delivered within 5 s", mode)
		}
		waitFor(t, "frame back on the fill side", q.home)
		if err := stop(t, l, errc); err != nil {
			t.Errorf("%v: Run returned %v after Stop", mode, err)
		}
	}
}

// Frames from another goroutine, in bursts, through a few frames that the
// fill side sometimes holds back: every frame is delivered once and in
// order, and all come home. Run with -race.
func TestRunConcurrentKeepsEveryFrame(t *testing.T) {
	const total, frames = 20000, 16
	for _, mode := range modes {
		q := newFakeQueue(t, frames)
		var delivered atomic.Uint64
		var bad atomic.Bool
		l, err := New(q, Config{Mode: mode, Budget: 8, WakeCost: time.Microsecond, MaxSpin: 50 * time.Microsecond}, perFrame(func(f []byte) {
			if seq(f) != delivered.Load() {
				bad.Store(true)
			}
			delivered.Add(1)
		}))
		if err != nil {
			t.Fatal(err)
		}
		errc := runLoop(t, l)
		rng := rand.New(rand.NewPCG(1, uint64(mode)))
		deadline := time.Now().Add(10 * time.Second)
		for sent := 0; sent < total; {
			if time.Now().After(deadline) {
				t.Fatalf("%v: %d frames of %d sent in 10 s: the loop gives none back", mode, sent, total)
			}
			sent += q.arrive(min(1+rng.IntN(12), total-sent))
			if rng.IntN(500) == 0 {
				q.mu.Lock()
				q.holdFill = !q.holdFill
				q.mu.Unlock()
			}
			if rng.IntN(4) == 0 {
				runtime.Gosched()
			}
		}
		q.mu.Lock()
		q.holdFill = false
		q.mu.Unlock()
		waitFor(t, mode.String()+" delivery of every frame", func() bool { return delivered.Load() == total })
		waitFor(t, mode.String()+" frames back on the fill side", q.home)
		if err := stop(t, l, errc); err != nil {
			t.Errorf("%v: Run: %v", mode, err)
		}
		if bad.Load() {
			t.Errorf("%v: a frame came out of order or twice", mode)
		}
	}
}

// On a single P a loop yields after every round, with frames or without,
// so that the goroutines it feeds run even while frames keep coming; on
// more, other Ps run them, and it yields only when the ring is empty.
func TestRunYields(t *testing.T) {
	for _, always := range []bool{true, false} {
		// A frame costs the loop 1 us: arriving every 2 us, they make
		// rounds that are not full.
		s := newSim(t, Hybrid, every(0, 2*time.Millisecond, 2*time.Microsecond))
		yields := 0
		s.l.yield = func() { yields++ }
		s.l.yieldAlways = always
		s.run(t, 3*time.Millisecond)
		st := s.l.Stats()
		empty := int(st.EmptyPolls - st.Wakeups) // empty rounds that did not end in sleep
		want := empty
		if always {
			want += int(st.RoundCount)
		}
		if st.RoundCount < 10 || yields != want {
			t.Errorf("yield always %v: %d yields in %d rounds with work and %d empty ones", always, yields, st.RoundCount, empty)
		}
	}
}

// On a single P, a loop in a burst (full rounds, one after the other)
// takes maxFullRounds of them before it yields, and then yields again; a
// round that is not full is followed by a yield at once.
func TestRunDrainsBurstOnOneP(t *testing.T) {
	const rounds = 4096 / budget // the fake queue's frames, all at time 0
	s := newSim(t, Hybrid, make([]time.Duration, rounds*budget))
	var yieldsAt []uint64 // rounds with frames before each yield
	s.l.yield = func() { yieldsAt = append(yieldsAt, s.l.Stats().RoundCount) }
	s.l.yieldAlways = true
	s.run(t, 10*time.Millisecond)
	var want []uint64
	for r := uint64(maxFullRounds + 1); r < rounds; r += maxFullRounds + 1 {
		want = append(want, r)
	}
	if len(yieldsAt) < len(want) || !slices.Equal(yieldsAt[:len(want)], want) {
		t.Errorf("yields after rounds %v of a burst of %d full rounds, want first after %v", yieldsAt, rounds, want)
	}
}

// The loop counts how long each round's first frame waited in the rx ring,
// from the stamp it came with: after a sleep, the wake-up and the round
// that took it; while polling, part of a round.
func TestRunCountsWaits(t *testing.T) {
	arrivals := every(time.Millisecond, 20*time.Millisecond, time.Millisecond) // lone frames
	for _, mode := range modes {
		s := newSim(t, mode, arrivals)
		s.run(t, 25*time.Millisecond)
		w := s.l.Stats().Waits
		after, polling := w[WaitAfterSleep], w[WaitPolling]
		n := uint64(len(arrivals))
		switch mode {
		case Busy:
			// A round every 200 ns: a frame waits for the next one.
			if after.Count != 0 || polling.Count != n || polling.Buckets[1] != n {
				t.Errorf("%v: after a sleep %+v, polling %+v; want all %d polled within 2 us", mode, after, polling, n)
			}
		default:
			// Frames 1 ms apart: the loop sleeps before each.
			want := wakeCost + roundCost + frameCost
			if polling.Count != 0 || after.Count != n || after.Sum != time.Duration(n)*want || after.Buckets[4] != 0 || after.Buckets[5] != n {
				t.Errorf("%v: after a sleep %+v, polling %+v; want all %d after a sleep, %v each", mode, after, polling, n, want)
			}
		}
	}
}

// A frame without a believable stamp is not counted: none (0), one from
// the future beyond the clocks' skew, or one older than a minute (a stale
// stamp in the frame's headroom).
func TestObserveWaitIgnoresBadStamps(t *testing.T) {
	s := newSim(t, Interrupt, nil)
	now := 2 * time.Minute
	for _, stamp := range []int64{0, -5, int64(now + time.Millisecond), int64(now - time.Minute - time.Second)} {
		s.q.rxStamp = stamp
		s.l.observeWait(now)
	}
	for i, w := range s.l.Stats().Waits {
		if w.Count != 0 {
			t.Errorf("waits[%d] %+v, want none counted", i, w)
		}
	}
	s.q.rxStamp = int64(now + 10*time.Microsecond) // within the skew: no wait
	s.l.observeWait(now)
	if w := s.l.Stats().Waits[WaitPolling]; w.Count != 1 || w.Sum != 0 {
		t.Errorf("a stamp just ahead of the clock: %+v, want one wait of 0", w)
	}
}
