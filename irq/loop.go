// Package irq runs one loop per NIC queue that moves received frames from
// the queue's AF_XDP socket into the netstack, and decides how the loop
// waits for work: by sleeping until the kernel signals (interrupt), by
// spinning (busy), or by switching between the two as Linux NAPI does
// (hybrid).
//
// It owns the waiting, the policy that chooses between polling and
// sleeping, CPU pinning of the loops, and the loops' counters. It does not
// own the rings (package nic, through the Queue interface) or what a frame
// means (the deliver function it is given).
package irq

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultBudget is the most frames a loop takes from the rx ring in one
// round, NAPI's default weight.
const DefaultBudget = 64

// MaxBudget bounds the budget: a round never needs more than an rx ring
// holds, and the kernel's SO_BUSY_POLL_BUDGET takes 16 bits.
const MaxBudget = 2048

// DefaultMaxSpin is the longest a hybrid loop spins without work before
// it sleeps, when the load says spinning pays. It bounds the gaps hybrid
// polls through at half of it (the policy's regime): 150 us covers a
// closed loop on one connection (about 60 us between requests; p50 27 us
// against 31 us with 500) and leaves open loads of a few thousand requests
// per second, 200 us apart, to sleep between requests: at 10 % load 500 us
// spun 69 % of the time for 161 us of CPU per request against interrupt
// mode's 80; 150 us, 24 % and 66 against 73 (docs/max-spin.md).
const DefaultMaxSpin = 150 * time.Microsecond

// Config configures a loop.
type Config struct {
	Mode   Mode
	Budget int // frames per round; default DefaultBudget
	// WakeCost is what a sleep and wake-up costs, from MeasureWakeup:
	// hybrid spins at least this long before it sleeps.
	WakeCost time.Duration
	MaxSpin  time.Duration // default DefaultMaxSpin
	// Pin pins the loop's thread to CPU. Without it (the zero value) the
	// loop runs wherever the Go scheduler puts it.
	Pin bool
	CPU int // the CPU to pin to, with Pin
}

// maxCPUs is how many CPUs a unix.CPUSet holds (glibc's CPU_SETSIZE).
const maxCPUs = 1024

// Queue is what a loop uses of one NIC queue's AF_XDP socket, as
// *nic.Socket has it: the receive side, the transmit side's upkeep, and the
// descriptor it sleeps on. A loop calls it a few times a round, never per
// frame (Receive calls deliver once, with its batch).
type Queue interface {
	// Queue is the NIC queue, for errors and Stats.
	Queue() int
	// FD is what the loop sleeps on, for POLLIN; poll(2) on it also does
	// what need_wakeup asks, on both sides.
	FD() int
	// Receive hands up to budget received frames to deliver, in one
	// call, and returns how many; Refill returns how many received frames
	// still wait for room in the fill ring.
	Receive(budget int, deliver func(frames [][]byte)) int
	Refill() (waiting int)
	// FillNeedsWakeup reports whether the driver waits for WakeRx before
	// it takes more fill ring entries.
	FillNeedsWakeup() bool
	WakeRx() error
	// Service reclaims sent frames and kicks the kernel for frames that
	// wait in the tx ring; TxPending reports whether some still wait.
	Service() error
	TxPending() bool
	// RxStamp is when the first frame of the last Receive that found any
	// was steered to the socket, in CLOCK_MONOTONIC nanoseconds, or a
	// value the loop takes for none (0, or not within the last minute).
	RxStamp() int64
}

// Loop moves frames from one queue to a deliver function.
type Loop struct {
	q       Queue
	deliver func(frames [][]byte) (work int)
	// receive is what Receive calls: deliver, its work added to work.
	// Made once, so that a round allocates nothing.
	receive func(frames [][]byte)
	work    int
	cfg     Config
	pol     *policy
	// clock is the time since New, and sleeper the netpoller on the
	// queue's descriptor, except in tests that run a loop on a fake clock.
	clock func() time.Duration
	// mono0 is CLOCK_MONOTONIC at the clock's zero, in nanoseconds: the
	// clock of the queue's RxStamp is mono0 + clock.
	mono0   int64
	sleeper sleeper
	yield   func() // runtime.Gosched, except in tests
	// yieldAlways: yield after rounds with frames too, when the process
	// has one P at New; fullRounds counts the full rounds since the last
	// yield (drain).
	yieldAlways bool
	fullRounds  int

	stop     atomic.Bool
	stopOnce sync.Once
	done     chan struct{} // closed when Run returns
	started  atomic.Bool

	wakeups    atomic.Uint64 // returns from sleep
	emptyPolls atomic.Uint64 // rounds that found no frame
	kicks      atomic.Uint64 // need_wakeup syscalls on the fill side
	rounds     roundHistogram
	// waits is how long the first frame of each round with work waited
	// in the rx ring, after a sleep (the first round after a wake-up) and
	// while polling (every other round).
	waits [2]waitHistogram
	woke  bool // this round is the first after a sleep
}

// New makes a loop for q. deliver gets every round's received frames, in
// one call, must copy what it keeps, and returns how many of them were work
// for what it feeds: frames it dropped at once (the netstack's strays) are
// not. Hybrid polls on while work comes, not frames: a flood of frames
// dropped at the door would otherwise keep it spinning on a core the
// clients need (docs/measured.md, "ACK floods").
func New(q Queue, cfg Config, deliver func(frames [][]byte) (work int)) (*Loop, error) {
	if cfg.Budget == 0 {
		cfg.Budget = DefaultBudget
	}
	if cfg.MaxSpin == 0 {
		cfg.MaxSpin = DefaultMaxSpin
	}
	if cfg.Budget < 0 || cfg.Budget > MaxBudget || cfg.MaxSpin < 0 || cfg.WakeCost < 0 {
		return nil, fmt.Errorf("irq: queue %d: budget must be 0 to %d, spin and wake cost not negative", q.Queue(), MaxBudget)
	}
	if cfg.Mode < Interrupt || cfg.Mode > Hybrid {
		return nil, fmt.Errorf("irq: queue %d: %v", q.Queue(), cfg.Mode)
	}
	if cfg.Pin && (cfg.CPU < 0 || cfg.CPU >= maxCPUs) {
		return nil, fmt.Errorf("irq: queue %d: CPU %d: want 0 to %d", q.Queue(), cfg.CPU, maxCPUs-1)
	}
	np, err := newNetpoller(q.FD())
	if err != nil {
		return nil, fmt.Errorf("irq: queue %d: %w", q.Queue(), err)
	}
	var mono unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		return nil, fmt.Errorf("irq: queue %d: clock: %w", q.Queue(), err)
	}
	epoch := time.Now()
	l := &Loop{
		q:           q,
		deliver:     deliver,
		cfg:         cfg,
		pol:         newPolicy(cfg.Mode, cfg.WakeCost, cfg.MaxSpin),
		clock:       func() time.Duration { return time.Since(epoch) },
		mono0:       mono.Nano(),
		sleeper:     np,
		yield:       runtime.Gosched,
		yieldAlways: runtime.GOMAXPROCS(0) == 1,
		done:        make(chan struct{}),
	}
	l.receive = func(frames [][]byte) { l.work += l.deliver(frames) }
	return l, nil
}

// Run processes frames until Stop. It returns nil after Stop, or the error
// that stopped it.
func (l *Loop) Run() error {
	l.started.Store(true)
	defer close(l.done)
	if err := l.pin(); err != nil {
		return err
	}
	l.pol.start(l.clock())
	for !l.stop.Load() {
		l.work = 0
		n := l.q.Receive(l.cfg.Budget, l.receive)
		if err := l.q.Service(); err != nil {
			return err
		}
		now := l.clock()
		l.rounds.observe(n)
		if n > 0 {
			l.observeWait(now)
		}
		l.woke = false
		if !l.pol.afterRound(now, l.work) {
			if n == 0 {
				l.emptyPolls.Add(1)
				if err := l.wakeFill(); err != nil {
					return err
				}
			}
			// Let the goroutines this loop feeds run: when the ring is
			// empty, and, on a single P (xhttpd with one queue), after
			// every round but those of a burst (drain), since nothing
			// else runs them. With one P, 32
			// keep-alive connections got 38,000 to 40,000 requests/s
			// yielding once per 2 ms of rounds with frames and 40,000 to
			// 51,000 yielding after every round; with two, yielding
			// after every round cost 5 % (43,000 to 45,400 against
			// 46,000 to 47,100), as other Ps take those goroutines.
			if n == 0 || l.yieldAlways && !l.drain(n) {
				l.fullRounds = 0
				l.yield()
			}
			continue
		}
		l.emptyPolls.Add(1)
		stopped, err := l.sleep()
		if stopped || err != nil {
			return err
		}
		l.pol.woke(l.clock())
		l.woke = true
	}
	return nil
}

// observeWait counts how long the round's first frame waited in the rx
// ring, from the XDP program's stamp to now: what a wake-up costs a frame
// that came while the loop slept, and what a round of polling does. A
// frame without a stamp is not counted.
func (l *Loop) observeWait(now time.Duration) {
	stamp := l.q.RxStamp()
	wait := time.Duration(l.mono0 + int64(now) - stamp)
	// The two clocks were read one after the other at New: a wait of a
	// few microseconds below zero is a frame picked up at once.
	if stamp <= 0 || wait < -maxClockSkew || wait > time.Minute {
		return
	}
	i := WaitPolling
	if l.woke {
		i = WaitAfterSleep
	}
	l.waits[i].observe(max(wait, 0))
}

// maxClockSkew bounds the error of mono0.
const maxClockSkew = 100 * time.Microsecond

// maxFullRounds is how many full rounds a loop on a single P takes one
// after the other before it yields (NAPI's softirq, likewise, runs up to
// netdev_budget packets before it lets others run).
const maxFullRounds = 16

// drain says whether a loop on a single P goes on to another round without
// yielding, after a round that took n frames: only when the round was full
// and not too many full rounds came before it. In a burst the ring holds
// more than a round, and a loop that yields after each one waits behind
// every goroutine the burst made runnable (thousands, in a burst of
// connects) while the kernel runs out of fill ring entries and drops
// frames: 2,613 in a burst of 5,000 connects during a CI run. A steady
// load's rounds are not full, and the loop still yields after each.
func (l *Loop) drain(n int) bool {
	if n < l.cfg.Budget || l.fullRounds >= maxFullRounds {
		return false
	}
	l.fullRounds++
	return true
}

// pin pins the calling goroutine's thread to the configured CPU, if any.
// The thread stays locked: it is pinned, and must not go back to the
// scheduler's pool with that affinity (when the goroutine ends, the
// runtime ends the thread).
func (l *Loop) pin() error {
	if !l.cfg.Pin {
		return nil
	}
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(l.cfg.CPU)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("irq: queue %d: pin to CPU %d: %w", l.q.Queue(), l.cfg.CPU, err)
	}
	return nil
}

// wakeFill does what need_wakeup asks of a loop that does not sleep: a
// syscall that lets the driver take more fill ring entries.
func (l *Loop) wakeFill() error {
	if !l.q.FillNeedsWakeup() {
		return nil
	}
	l.kicks.Add(1)
	return l.q.WakeRx()
}

// sleep parks the loop until the socket has frames or Stop is called. It
// returns at once if frames arrived since the ring was last found empty.
// Frames still waiting for the fill ring, or in the tx ring after a kick
// found the kernel busy, must not wait for traffic that may never come, so
// then the sleep is short and the next round retries.
func (l *Loop) sleep() (stopped bool, err error) {
	var timeout time.Duration
	if l.q.Refill() > 0 || l.q.TxPending() {
		timeout = time.Millisecond
	}
	stopped, err = l.sleeper.sleep(timeout)
	if err != nil {
		return false, fmt.Errorf("irq: queue %d: %w", l.q.Queue(), err)
	}
	l.wakeups.Add(1)
	return stopped, nil
}

// Stop makes Run return, waits for it, and releases the loop. It may be
// called from any goroutine, whether or not Run was started, and more than
// once: later calls wait for the first to finish and do nothing else.
func (l *Loop) Stop() {
	l.stopOnce.Do(func() {
		l.stop.Store(true)
		l.sleeper.close()
		if l.started.Load() {
			<-l.done
		}
	})
}

// Stats is what a loop has counted.
type Stats struct {
	Queue        int
	Mode         Mode
	Polling      bool          // polling now, rather than sleeping
	Switches     uint64        // changes between polling and sleeping
	PollTime     time.Duration // time spent polling
	SleepTime    time.Duration // time spent asleep
	Wakeups      uint64        // returns from sleeping
	EmptyPolls   uint64        // rounds that found no frame
	FillKicks    uint64        // need_wakeup syscalls for the fill ring
	Spell        time.Duration // hybrid's current idle spell before sleeping
	RoundBuckets []uint64      // rounds with work, by frames: counts for <= RoundBounds[i]
	RoundSum     uint64        // frames in all rounds
	RoundCount   uint64        // rounds with work
	WakeCost     time.Duration // the measured wake-up cost the policy uses
	MaxSpin      time.Duration
	// Waits is how long the first frame of each round with work waited in
	// the rx ring: Waits[WaitAfterSleep] in the first round after a
	// wake-up, Waits[WaitPolling] in the others.
	Waits [2]WaitStats
}

// The indexes of Stats.Waits.
const (
	WaitAfterSleep = iota
	WaitPolling
)

// WaitStats is a histogram of waits in the rx ring.
type WaitStats struct {
	Buckets []uint64 // cumulative counts for <= WaitBounds[i]
	Sum     time.Duration
	Count   uint64
}

// WaitBounds are the upper bounds of WaitStats.Buckets.
var WaitBounds = [...]time.Duration{
	time.Microsecond, 2 * time.Microsecond, 5 * time.Microsecond,
	10 * time.Microsecond, 20 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
}

// RoundBounds are the upper bounds of Stats.RoundBuckets.
var RoundBounds = [...]uint64{1, 2, 4, 8, 16, 32, 64, 128, 256}

// Stats reads the loop's counters. It may be called from any goroutine.
func (l *Loop) Stats() Stats {
	pollT, sleepT := l.pol.times(l.clock())
	buckets, sum, count := l.rounds.read()
	return Stats{
		Queue:        l.q.Queue(),
		Mode:         l.cfg.Mode,
		Polling:      l.pol.polling.Load(),
		Switches:     l.pol.switches.Load(),
		PollTime:     pollT,
		SleepTime:    sleepT,
		Wakeups:      l.wakeups.Load(),
		EmptyPolls:   l.emptyPolls.Load(),
		FillKicks:    l.kicks.Load(),
		Spell:        time.Duration(l.pol.spellNanos.Load()),
		RoundBuckets: buckets,
		RoundSum:     sum,
		RoundCount:   count,
		WakeCost:     l.cfg.WakeCost,
		MaxSpin:      l.cfg.MaxSpin,
		Waits:        [2]WaitStats{l.waits[WaitAfterSleep].read(), l.waits[WaitPolling].read()},
	}
}

// waitHistogram counts waits by WaitBounds, with atomics, as
// roundHistogram does.
type waitHistogram struct {
	buckets [len(WaitBounds) + 1]atomic.Uint64 // the last is +Inf
	sum     atomic.Int64                       // nanoseconds
}

func (h *waitHistogram) observe(d time.Duration) {
	i := 0
	for i < len(WaitBounds) && d > WaitBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(int64(d))
}

func (h *waitHistogram) read() WaitStats {
	w := WaitStats{Buckets: make([]uint64, len(WaitBounds)), Sum: time.Duration(h.sum.Load())}
	for i := range WaitBounds {
		w.Count += h.buckets[i].Load()
		w.Buckets[i] = w.Count
	}
	w.Count += h.buckets[len(WaitBounds)].Load()
	return w
}

// roundHistogram counts rounds with work by how many frames they took,
// with atomics, so the loop never waits for a reader.
type roundHistogram struct {
	buckets [len(RoundBounds) + 1]atomic.Uint64 // the last is +Inf
	sum     atomic.Uint64
}

func (h *roundHistogram) observe(frames int) {
	if frames == 0 {
		return
	}
	i := 0
	for i < len(RoundBounds) && uint64(frames) > RoundBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(uint64(frames))
}

// read returns cumulative bucket counts, as Prometheus wants them.
func (h *roundHistogram) read() (cumulative []uint64, sum, count uint64) {
	cumulative = make([]uint64, len(RoundBounds))
	for i := range RoundBounds {
		count += h.buckets[i].Load()
		cumulative[i] = count
	}
	count += h.buckets[len(RoundBounds)].Load()
	return cumulative, h.sum.Load(), count
}
