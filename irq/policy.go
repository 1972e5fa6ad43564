package irq

import (
	"sync/atomic"
	"time"
)

// policy decides after each round over the rx ring whether the loop polls
// again or sleeps until the kernel signals. It is a pure state machine over
// a clock reading, so that tests drive it with a fake clock and fake rings.
//
// Hybrid is spin-then-block. Blocking costs a wake-up (C, measured at
// start); spinning for a spell S costs S of CPU. Spinning for C before
// blocking is the classic choice that is never worse than twice the best
// of the two; hybrid starts there. It also tracks the gap between rounds
// that found work: when frames keep coming faster than maxSpell/2 apart,
// it spins for twice the typical gap, so that a steady load is polled
// through and never pays a wake-up; when they come further apart, it goes
// back to spinning for C only, which is interrupt mode in all but name.
// The regime changes with hysteresis (in at 2*gap <= maxSpell, out at
// 2*gap > 1.5*maxSpell), so a load near the boundary does not flap.
type policy struct {
	mode     Mode
	minSpell time.Duration // the measured cost of a wake-up
	maxSpell time.Duration // the longest hybrid spins without work

	gap      time.Duration // moving average of the gap between rounds with work
	samples  int           // gaps seen, up to 2
	spinning bool          // hybrid's regime: spell follows the gap
	spell    time.Duration // how long hybrid spins without work before sleeping
	lastWork time.Duration // clock reading of the last round with work
	since    time.Duration // when the current state (polling or sleeping) began

	// Published for metrics; written only by the loop's goroutine.
	polling    atomic.Bool
	switches   atomic.Uint64 // changes between polling and sleeping
	pollNanos  atomic.Int64  // time spent polling, up to the last switch
	sleepNanos atomic.Int64  // time spent sleeping, up to the last switch
	sinceNanos atomic.Int64  // since, for readers
	spellNanos atomic.Int64  // spell, for readers
}

func newPolicy(mode Mode, wakeCost, maxSpell time.Duration) *policy {
	p := &policy{mode: mode, minSpell: wakeCost, maxSpell: max(maxSpell, wakeCost)}
	p.spell = p.minSpell
	p.spellNanos.Store(int64(p.spell))
	return p
}

// start puts the loop in the polling state at now.
func (p *policy) start(now time.Duration) {
	p.lastWork, p.since = now, now
	p.sinceNanos.Store(int64(now))
	p.polling.Store(true)
}

// afterRound is called after every round with the number of frames of
// work it took (see New); it reports whether the loop should sleep now.
func (p *policy) afterRound(now time.Duration, frames int) (sleep bool) {
	if frames > 0 {
		p.sawWork(now)
		return false
	}
	switch p.mode {
	case Busy:
		return false
	case Hybrid:
		if now-p.lastWork < p.spell {
			return false
		}
	}
	p.switchTo(false, now)
	return true
}

// woke is called when the loop returns from sleeping.
func (p *policy) woke(now time.Duration) { p.switchTo(true, now) }

func (p *policy) sawWork(now time.Duration) {
	// A gap longer than the longest spin says only "too long to spin
	// for"; clamping it keeps one idle minute from dominating the average.
	g := min(now-p.lastWork, 2*p.maxSpell)
	if p.samples < 2 {
		// The first round's gap is from start, not from a frame; the
		// second seeds the average rather than crawling up from zero.
		p.gap = g
		p.samples++
	} else {
		p.gap += (g - p.gap) / 8
	}
	p.lastWork = now
	switch {
	case !p.spinning && 2*p.gap <= p.maxSpell:
		p.spinning = true
	case p.spinning && 2*p.gap > p.maxSpell*3/2:
		p.spinning = false
	}
	p.spell = p.minSpell
	if p.spinning {
		p.spell = min(max(2*p.gap, p.minSpell), p.maxSpell)
	}
	p.spellNanos.Store(int64(p.spell))
}

func (p *policy) switchTo(polling bool, now time.Duration) {
	if polling == p.polling.Load() {
		return
	}
	if polling {
		p.sleepNanos.Add(int64(now - p.since))
	} else {
		p.pollNanos.Add(int64(now - p.since))
	}
	p.since = now
	p.sinceNanos.Store(int64(now))
	p.polling.Store(polling)
	p.switches.Add(1)
}

// times returns the time spent polling and sleeping up to now, as a reader
// on another goroutine sees it.
func (p *policy) times(now time.Duration) (polling, sleeping time.Duration) {
	polling, sleeping = time.Duration(p.pollNanos.Load()), time.Duration(p.sleepNanos.Load())
	cur := now - time.Duration(p.sinceNanos.Load())
	if cur < 0 {
		cur = 0
	}
	if p.polling.Load() {
		polling += cur
	} else {
		sleeping += cur
	}
	return polling, sleeping
}
