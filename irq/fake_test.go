package irq

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/nic"
)

var _ Queue = (*nic.Socket)(nil)

// fakeQueue is a NIC queue in Go memory, the test playing the kernel. A
// fixed set of frames circulates: from the fill side (free) into the rx
// ring when a frame arrives, through Receive to the loop's deliver, and
// back through Refill. Each arrival is numbered, and its frame carries the
// number, so a test can tell that every frame came through once and in
// order. Frames arrive when the test calls arrive, or, on a fake clock
// (sim), at their scheduled times.
type fakeQueue struct {
	mu       sync.Mutex
	frames   [][]byte
	free     []int    // frame indexes on the fill side
	rx       []int    // received, not yet taken by Receive
	refill   []int    // taken, not yet back on the fill side
	batch    [][]byte // Receive's, reused
	holdFill bool     // the fill ring looks full: Refill leaves frames waiting
	arrived  uint64
	efd      int     // readable while rx holds frames, as the socket is
	readable bool    // efd's counter is not 0
	efdBuf   [8]byte // for efd's reads and writes, not to allocate per call

	needWakeup bool // FillNeedsWakeup's answer
	wakeRx     int  // WakeRx calls
	txPending  bool // TxPending's answer
	serviceErr error
	rounds     []int // frames each Receive took, when not nil
	budget     int   // the budget Receive was given, -1 once two differed

	stamps    []int64 // each frame's stamp, by index
	stampNext int64   // the stamp of the frames that arrive next
	rxStamp   int64   // RxStamp's answer

	sim *sim // nil on the real clock
}

func newFakeQueue(t *testing.T, frames int) *fakeQueue {
	t.Helper()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(efd) })
	q := &fakeQueue{efd: efd, stamps: make([]int64, frames)}
	for i := range frames {
		q.frames = append(q.frames, make([]byte, 64))
		q.free = append(q.free, i)
	}
	return q
}

// arrive receives n frames, as many as the fill side has room for, and
// returns how many it got.
func (q *fakeQueue) arrive(n int) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.arriveLocked(n)
}

func (q *fakeQueue) arriveLocked(n int) int {
	n = min(n, len(q.free))
	for range n {
		f := q.free[len(q.free)-1]
		q.free = q.free[:len(q.free)-1]
		binary.LittleEndian.PutUint64(q.frames[f], q.arrived)
		q.stamps[f] = q.stampNext
		q.arrived++
		q.rx = append(q.rx, f)
	}
	if n > 0 && !q.readable {
		q.efdBuf = [8]byte{1}
		unix.Write(q.efd, q.efdBuf[:])
		q.readable = true
	}
	return n
}

// perFrame makes a loop's deliver of a function of one frame; every frame
// is work.
func perFrame(f func(frame []byte)) func([][]byte) int {
	return func(frames [][]byte) int {
		for _, fr := range frames {
			f(fr)
		}
		return len(frames)
	}
}

// seq is the arrival number a delivered frame carries.
func seq(frame []byte) uint64 { return binary.LittleEndian.Uint64(frame) }

func (q *fakeQueue) Queue() int     { return 7 }
func (q *fakeQueue) RxStamp() int64 { return q.rxStamp }
func (q *fakeQueue) FD() int        { return q.efd }

func (q *fakeQueue) Receive(budget int, deliver func([][]byte)) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.sim != nil {
		q.sim.due(q)
	}
	if q.budget == 0 {
		q.budget = budget
	} else if q.budget != budget {
		q.budget = -1
	}
	n := min(budget, len(q.rx))
	q.batch = q.batch[:0]
	for _, f := range q.rx[:n] {
		q.batch = append(q.batch, q.frames[f])
	}
	if n > 0 {
		q.rxStamp = q.stamps[q.rx[0]]
		deliver(q.batch)
	}
	q.refill = append(q.refill, q.rx[:n]...)
	q.rx = q.rx[:copy(q.rx, q.rx[n:])]
	if len(q.rx) == 0 && q.readable {
		unix.Read(q.efd, q.efdBuf[:])
		q.readable = false
	}
	q.refillLocked()
	if q.rounds != nil {
		q.rounds = append(q.rounds, n)
	}
	if q.sim != nil {
		q.sim.round(n)
	}
	return n
}

func (q *fakeQueue) Refill() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.refillLocked()
}

func (q *fakeQueue) refillLocked() int {
	if !q.holdFill {
		q.free = append(q.free, q.refill...)
		q.refill = q.refill[:0]
	}
	return len(q.refill)
}

func (q *fakeQueue) FillNeedsWakeup() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.needWakeup
}

func (q *fakeQueue) WakeRx() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.wakeRx++
	return nil
}

func (q *fakeQueue) Service() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.serviceErr
}

func (q *fakeQueue) TxPending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.txPending
}

// home reports whether every frame is back on the fill side.
func (q *fakeQueue) home() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.free) == len(q.frames)
}

// sim runs a real Loop on a fakeQueue and a fake clock, on the test's
// goroutine: frames arrive at given times; a round takes what has arrived,
// up to the budget, and costs roundCost plus frameCost per frame; a sleep
// lasts until the next arrival (or the sleep's timeout) and costs wakeCost. Run
// returns once the clock passes the end, or when it sleeps with nothing
// left to arrive.
type sim struct {
	l         *Loop
	q         *fakeQueue
	now       time.Duration
	end       time.Duration
	arrivals  []time.Duration // sorted
	next      int             // first arrival not yet received
	sleeps    []sleepAt
	timeouts  []time.Duration // the timeout of each sleep
	delivered []time.Duration // when each frame was delivered
	noWork    bool            // deliver says no frame was work (all strays)
}

type sleepAt struct{ at, lastWork time.Duration }

const (
	roundCost = 200 * time.Nanosecond
	frameCost = time.Microsecond
	wakeCost  = 20 * time.Microsecond
	maxSpin   = 500 * time.Microsecond
	budget    = 64
)

// newSim makes a loop in mode over a queue of 4,096 frames: arrivals
// beyond what the fill side holds wait, as in a NIC's queue.
func newSim(t *testing.T, mode Mode, arrivals []time.Duration) *sim {
	t.Helper()
	s := &sim{arrivals: arrivals, q: newFakeQueue(t, 4096)}
	s.q.sim = s
	deliver := func(frames [][]byte) int {
		for range frames {
			s.delivered = append(s.delivered, s.now)
		}
		if s.noWork {
			return 0
		}
		return len(frames)
	}
	l, err := New(s.q, Config{Mode: mode, Budget: budget, WakeCost: wakeCost, MaxSpin: maxSpin}, deliver)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	l.clock = func() time.Duration { return s.now }
	l.mono0 = 0
	l.sleeper.close()
	l.sleeper = s
	s.l = l
	return s
}

// run runs the loop until the clock passes end.
func (s *sim) run(t *testing.T, end time.Duration) {
	t.Helper()
	s.end = end
	if err := s.l.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// due receives the frames whose time has come, each stamped with the time
// it came, as the XDP program stamps frames.
func (s *sim) due(q *fakeQueue) {
	for s.next < len(s.arrivals) && s.arrivals[s.next] <= s.now {
		q.stampNext = int64(s.arrivals[s.next])
		if q.arriveLocked(1) == 0 {
			return
		}
		s.next++
	}
}

// round charges a round's cost and ends the run once past the end.
func (s *sim) round(frames int) {
	s.now += roundCost + time.Duration(frames)*frameCost
	if s.now >= s.end {
		s.l.stop.Store(true)
	}
}

// sleep is the loop's sleep: until the next arrival, or for timeout; it
// stops the loop when nothing is left to come.
func (s *sim) sleep(timeout time.Duration) (bool, error) {
	s.sleeps = append(s.sleeps, sleepAt{s.now, s.l.pol.lastWork})
	s.timeouts = append(s.timeouts, timeout)
	if s.l.stop.Load() || s.next == len(s.arrivals) {
		s.now = max(s.now, s.end)
		return true, nil
	}
	wake := max(s.now, s.arrivals[s.next])
	if timeout > 0 && wake > s.now+timeout {
		s.now += timeout
		return false, nil
	}
	s.now = wake + wakeCost
	return false, nil
}

func (s *sim) close() {}

// every returns arrival times from start to end, one per interval.
func every(start, end, interval time.Duration) []time.Duration {
	var out []time.Duration
	for t := start; t < end; t += interval {
		out = append(out, t)
	}
	return out
}

var errService = errors.New("service failed")
