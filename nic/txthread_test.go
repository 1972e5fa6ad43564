package nic

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tx thread against a kernel the test plays: the thread's sendto(2)
// goes to one end of a datagram socket pair, and each datagram that reaches
// the other end is a kick, on which the test's kernel sends every frame the
// tx ring holds and completes it.

// withTxThread gives f a tx thread and a kernel that sends on its kicks,
// handing each frame to seen (if not nil) in ring order; the writers'
// kicks send at once. With gso, the socket also has a GSO sender whose
// segments reach the same kernel, through the same socket pair as the
// kicks (an empty datagram is a kick), so that the kernel sees frames and
// segments in the order the thread sent them; seen gets a segment's bytes
// after its virtio_net_hdr. It returns the thread's kicks as the kernel
// counted them, and a func that stops the kernel and shuts its end of the
// socket, after which the thread's kicks fail.
func withTxThread(t *testing.T, f *fakeSocket, gso bool, seen func([]byte)) (kicks *atomic.Int64, stopKernel func()) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.fd = fds[0]
	f.txFlags.Store(xdpRingNeedWakeup)
	f.txKick = func() error {
		f.kicks++
		f.kernelComplete(f.kernelSend(len(f.txDescs), seen))
		return nil
	}
	// The thread keeps pointers to the ring's words, which live in the Go
	// heap here, not in the kernel's memory: pinned, C may keep them.
	var pin runtime.Pinner
	pin.Pin(f)
	th, err := startTxThread(fds[0], &f.txProd, &f.txCons, &f.txFlags)
	if err != nil {
		t.Fatal(err)
	}
	f.txThread = th
	if gso {
		dup, err := unix.FcntlInt(uintptr(fds[0]), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.AttachGSO(&GSOTx{fd: dup})
	}
	kicks = new(atomic.Int64)
	var stopped atomic.Bool
	var kernel sync.WaitGroup
	kernel.Go(func() {
		buf := make([]byte, 1<<17)
		for {
			n, _, err := unix.Recvfrom(fds[1], buf, 0)
			if stopped.Load() || (err != nil && err != unix.EINTR) {
				return
			}
			if n > 0 {
				if seen != nil {
					seen(buf[vnetHdrLen:n])
				}
				continue
			}
			kicks.Add(1)
			f.kernelComplete(f.kernelSend(len(f.txDescs), seen))
		}
	})
	stopKernel = sync.OnceFunc(func() {
		stopped.Store(true)
		unix.Shutdown(fds[1], unix.SHUT_RDWR) // ends the kernel's Recvfrom
		kernel.Wait()
	})
	t.Cleanup(func() {
		f.Close() // stops the thread, closes fds[0] and its dup
		stopKernel()
		unix.Close(fds[1])
		pin.Unpin()
	})
	return kicks, stopKernel
}

// eventually waits up to 5 s for cond.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestTxHandOff(t *testing.T) {
	const small = txThreadMinBatch - 1
	for _, c := range []struct {
		frames  int
		awake   bool
		rxRound uint32
		want    bool
	}{
		{1, false, 1, false}, // a lone response to a lone request leaves at once
		{small, false, small, false},
		{0, false, 0, false}, // the loop's Service, the thread asleep, no load: kick at once
		{txThreadMinBatch, false, 1, true},
		{64, false, 0, true},
		{1, true, 1, true}, // the thread is kicking anyway: no syscall for the writer
		{0, true, 0, true},
		{1, false, txThreadMinBatch, true}, // a load: every batch is the thread's
		{0, false, 64, true},
	} {
		if got := txHandOff(c.frames, c.awake, c.rxRound); got != c.want {
			t.Errorf("txHandOff(%d frames, thread awake %v, last round %d frames) = %v, want %v", c.frames, c.awake, c.rxRound, got, c.want)
		}
	}
}

func TestTxThreadPays(t *testing.T) {
	const cheap, dear = 300 * time.Nanosecond, 1400 * time.Nanosecond
	for _, c := range []struct {
		wake, kick time.Duration
		want       bool
	}{
		{0, cheap, true},
		{8 * time.Microsecond, cheap, true}, // the Intel machines
		{txThreadMaxWake, cheap, true},
		{txThreadMaxWake + 1, cheap, false},
		{40 * time.Microsecond, cheap, false}, // an AMD machine's halted vCPU under Firecracker
		{txWakeBound, cheap, false},           // one CPU: the thread never ran beside the writer
		{90 * time.Microsecond, dear, true},   // the AMD machine in a PVM guest
		{txWakeBound, dear, false},            // one CPU, however dear the kick
		{90 * time.Microsecond, txThreadMinKick, true},
		{90 * time.Microsecond, txThreadMinKick - 1, false},
		{txThreadMaxWake + 1, txThreadMinKick - 1, false},
		{txThreadMaxWake, txThreadMinKick + time.Microsecond, true},
	} {
		if got := txThreadPays(c.wake, c.kick); got != c.want {
			t.Errorf("txThreadPays(%v, %v) = %v, want %v", c.wake, c.kick, got, c.want)
		}
	}
}

// A kick's cost is the median of the trials: a few kicks held up (the
// writer preempted) move it not at all. Each trial is one kick.
func TestKickCost(t *testing.T) {
	f := newFakeSocket(64)
	f.txKick = func() error {
		if f.kicks++; f.kicks%3 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	}
	if got := f.kickCost(11); got >= time.Millisecond {
		t.Errorf("kickCost(11) with 3 of 11 kicks held up 5 ms = %v, want the others' (under 1 ms)", got)
	}
	if f.kicks != 11 {
		t.Errorf("kickCost(11) kicked %d times, want 11", f.kicks)
	}
	f.kicks = 0
	f.txKick = func() error {
		f.kicks++
		time.Sleep(2 * time.Millisecond)
		return nil
	}
	if got := f.kickCost(3); got < 2*time.Millisecond {
		t.Errorf("kickCost(3) of 2 ms kicks = %v, want 2 ms or more", got)
	}
}

// The thread's measured wake-up is a real one: each trial found the thread
// asleep and saw it take the kick, so the thread slept as often as the
// trials, and it still takes batches afterwards. A measurement that did
// not wait for the thread (or timed the futex syscall alone) would show
// fewer sleeps.
func TestTxThreadWakeup(t *testing.T) {
	f := newFakeSocket(64)
	kicks, _ := withTxThread(t, f, false, nil)
	if !eventually(func() bool { return f.txThread.state.Load() == txSleeping }) {
		t.Fatal("the thread does not sleep when idle")
	}
	before := f.txThread.sleeps.Load()
	const trials = 5
	wake := f.txThread.wakeup(trials)
	if wake <= 0 || wake > txWakeBound {
		t.Errorf("wake-up %v: want above 0 and at most the bound, %v", wake, txWakeBound)
	}
	// The thread counts a sleep just after it says it sleeps.
	if !eventually(func() bool { return f.txThread.sleeps.Load()-before >= trials }) {
		t.Fatal("the thread does not sleep after the trials")
	}
	if got := f.txThread.sleeps.Load() - before; got != trials {
		t.Errorf("the thread fell asleep %d times during %d trials; want one a trial", got, trials)
	}
	if kicks.Load() != 0 {
		t.Errorf("the trials' kicks reached the kernel %d times; the tx ring was empty", kicks.Load())
	}
	f.send(t, txThreadMinBatch, short)
	if !eventually(func() bool { return !f.TxPending() }) || kicks.Load() == 0 {
		t.Error("after the trials the thread does not send a batch")
	}
}

// A lone frame is kicked by its writer; a batch goes to the thread, which
// sends it without the writer making a syscall.
func TestTxThreadTakesBatches(t *testing.T) {
	f := newFakeSocket(64)
	kicks, _ := withTxThread(t, f, false, nil)

	f.kernelReceive(1, true)
	f.Receive(64, func([][]byte) {})
	f.send(t, 1, short)
	if f.kicks != 1 || kicks.Load() != 0 || f.TxPending() {
		t.Fatalf("a lone frame after a round of one: %d kicks by the writer, %d by the thread, pending %v; want 1, 0, false", f.kicks, kicks.Load(), f.TxPending())
	}
	f.send(t, txThreadMinBatch, short)
	if f.kicks != 1 {
		t.Errorf("a batch of %d frames: the writer kicked", txThreadMinBatch)
	}
	if !eventually(func() bool { return !f.TxPending() }) {
		t.Fatalf("the batch is still in the tx ring: the thread did not kick")
	}
	if kicks.Load() == 0 {
		t.Error("the frames left, but not by the thread's kick")
	}
	if f.txKicks != 1 || f.txThread.kicks.Load() == 0 {
		t.Errorf("kicks counted: %d by writers, %d by the thread; want 1, some", f.txKicks, f.txThread.kicks.Load())
	}
	if !eventually(func() bool { return f.txThread.state.Load() == txSleeping }) {
		t.Fatal("the thread does not go back to sleep with nothing to kick")
	}

	// Under load, a lone frame is the thread's too.
	f.kernelReceive(txThreadMinBatch, true)
	f.Receive(64, func([][]byte) {})
	before := kicks.Load()
	f.send(t, 1, short)
	if !eventually(func() bool { return !f.TxPending() }) || f.kicks != 1 || kicks.Load() == before {
		t.Errorf("a lone frame after a round of %d: %d kicks by the writer, %d by the thread; want the thread's", txThreadMinBatch, f.kicks, kicks.Load()-before)
	}
}

// Writers on four goroutines hand batches to the thread, racing its naps:
// every frame reaches the kernel once and in its writer's order, and none
// is left in the ring at the end, with no Service to kick it: a kick asked
// for while the thread kicks or goes to sleep is never lost. Run with
// -race.
func TestTxThreadConcurrent(t *testing.T) {
	const writers, batches = 4, 2000
	f := newFakeSocket(256)
	var (
		mu    sync.Mutex // seen runs on the kernel's goroutine and on writers' kicks
		next  [writers]uint64
		bad   int
		seenN uint64
	)
	kicks, _ := withTxThread(t, f, false, func(b []byte) {
		mu.Lock()
		defer mu.Unlock()
		w, seq := b[0], binary.LittleEndian.Uint64(b[1:])
		if seq != next[w] {
			bad++
		}
		next[w] = seq + 1
		seenN++
	})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			var seq uint64
			for range batches {
				if err := f.sendSeq(byte(w), &seq, 1+rng.IntN(2*txThreadMinBatch)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if !eventually(func() bool { return f.compProd.Load() == f.txProd.Load() }) {
		t.Fatalf("%d frames left in the tx ring after the writers stopped: a kick was lost", f.txProd.Load()-f.txCons.Load())
	}
	if err := f.Service(); err != nil { // reaps the last completions
		t.Fatal(err)
	}
	f.txMu.Lock()
	sent, drops, writerKicks := f.txSent, f.txDrops, f.kicks
	f.txMu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if seenN != sent || sent == 0 {
		t.Errorf("sent %d (dropped %d), the kernel saw %d", sent, drops, seenN)
	}
	if bad != 0 {
		t.Errorf("%d frames out of their writer's order", bad)
	}
	if n := f.txFrames.Len(); n != f.txFrames.Cap() {
		t.Errorf("%d of %d frames free at the end: frames leaked", n, f.txFrames.Cap())
	}
	if kicks.Load() == 0 {
		t.Error("the thread never kicked")
	}
	t.Logf("sent %d, dropped %d; kicks: %d by the thread, %d by writers", sent, drops, kicks.Load(), writerKicks)
}

// A kick of the thread's that fails is reported to a writer that hands
// the thread a batch, and the writers' own kicks go on.
func TestTxThreadError(t *testing.T) {
	f := newFakeSocket(64)
	_, stopKernel := withTxThread(t, f, false, nil)
	stopKernel() // the thread's sendto now fails: EPIPE
	var errs []error
	for range 2 {
		got := f.BeginTx(txThreadMinBatch)
		for i := range got {
			f.SetTxLen(i, 60)
		}
		errs = append(errs, f.EndTx())
		if !eventually(func() bool { return f.txThread.state.Load() == txSleeping }) {
			t.Fatal("the thread does not go back to sleep after a failed kick")
		}
	}
	if !errors.Is(errs[0], unix.EPIPE) && !errors.Is(errs[1], unix.EPIPE) {
		t.Fatalf("EndTx after the thread's kick failed: %v, want EPIPE", errs)
	}
	if err := f.Service(); err != nil || f.TxPending() {
		t.Errorf("the loop's Service, the thread asleep: %v, pending %v; want its own kick to send", err, f.TxPending())
	}
}

// Writers on four goroutines send batches of frames and GSO segments, the
// segments through the tx thread's queue: the kernel sees every frame and
// segment once and each writer's frames, and segments, in their order; a
// segment never overtakes the frames before it; and the thread found every
// frame before a segment gone, and none after it published, when it sent
// the segment (what a real kernel, whose kicks send at once, would see
// as the order; this test's kernel reads kicks and segments from a socket
// some time after they were sent). Nothing is left in the ring or the
// queue at the end. Run with -race.
func TestTxThreadGSOOrder(t *testing.T) {
	const writers, rounds = 4, 500
	f := newFakeSocket(256)
	var (
		mu               sync.Mutex
		seen             [writers][]bool // by sequence number
		gone             [writers]uint64 // every number below was seen
		lastFrame        [writers]int64
		bad              int
		frames, segments uint64
	)
	for w := range writers {
		seen[w], lastFrame[w] = make([]bool, rounds*(txThreadMinBatch+1)), -1
	}
	kicks, _ := withTxThread(t, f, true, func(b []byte) {
		mu.Lock()
		defer mu.Unlock()
		w, seq := b[0], binary.LittleEndian.Uint64(b[1:])
		if int(w) >= writers || seq >= uint64(len(seen[w])) {
			bad++ // poisoned: released before it was sent
			return
		}
		if seen[w][seq] {
			bad++
		}
		seen[w][seq] = true
		if len(b) > 60 {
			if gone[w] != seq { // a frame before it is still to come
				bad++
			}
			segments++
		} else {
			if int64(seq) < lastFrame[w] {
				bad++
			}
			lastFrame[w] = int64(seq)
			frames++
		}
		for gone[w] < uint64(len(seen[w])) && seen[w][gone[w]] {
			gone[w]++
		}
	})
	var released atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			var seq uint64
			for range rounds {
				seg := make([]byte, 3000)
				if err := f.sendSeq(byte(w), &seq, rng.IntN(txThreadMinBatch)); err != nil {
					t.Error(err)
				}
				seg[0] = byte(w)
				binary.LittleEndian.PutUint64(seg[1:], seq)
				seq++
				// In pieces, as the netstack hands them over; now and
				// then more than a slot holds, which the writer sends
				// itself.
				bufs := [][]byte{seg[:100], seg[100:]}
				if rng.IntN(20) == 0 {
					bufs = nil
					for i := 0; i < len(seg); i += 40 {
						bufs = append(bufs, seg[i:i+40])
					}
				}
				// A load or a quiet queue (gsoHandOff): the thread's
				// segment, or, when it sleeps, the writer's.
				f.rxRound.Store(uint32(rng.IntN(2 * txThreadMinBatch)))
				if err := f.SendGSO(false, 54, 1448, 34, 16, bufs, &poisoner{seg, &released}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if !eventually(func() bool { return !f.txThread.gsoWaiting() && f.compProd.Load() == f.txProd.Load() }) {
		t.Fatalf("%d segments and %d frames left after the writers stopped",
			f.txThread.gsoProd.Load()-f.txThread.gsoCons.Load(), f.txThread.want.Load()-f.txCons.Load())
	}
	if err := f.Service(); err != nil { // reaps the last completions and segments
		t.Fatal(err)
	}
	if n := released.Load(); n != writers*rounds {
		t.Errorf("%d of %d segments released after they were sent", n, writers*rounds)
	}
	f.txMu.Lock()
	sent, drops := f.txSent, f.txDrops
	f.txMu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if frames != sent || segments != writers*rounds {
		t.Errorf("the kernel saw %d frames of %d sent (%d dropped) and %d segments of %d", frames, sent, drops, segments, writers*rounds)
	}
	if bad != 0 {
		t.Errorf("%d frames or segments out of their writer's order", bad)
	}
	// The segments in many pieces, and some to a quiet queue, were their
	// writers' to send.
	if sent, lost, disorder := f.txThread.gsoSent.Load(), f.txThread.gsoLost.Load(), f.txThread.gsoDisorder.Load(); sent < writers*rounds/4 || lost != 0 || disorder != 0 {
		t.Errorf("the thread counted %d segments sent, %d lost, %d out of order; want a good share of %d, 0, 0", sent, lost, disorder, writers*rounds)
	}
	if n := f.txFrames.Len(); n != f.txFrames.Cap() {
		t.Errorf("%d of %d frames free at the end: frames leaked", n, f.txFrames.Cap())
	}
	t.Logf("%d frames, %d segments; %d kicks by the thread", frames, segments, kicks.Load())
}

func TestGSOHandOff(t *testing.T) {
	for _, c := range []struct {
		busy    bool
		rxRound uint32
		want    bool
	}{
		{false, 1, false}, // a quiet queue: a download's segment leaves at once
		{false, txThreadMinBatch - 1, false},
		{false, txThreadMinBatch, true}, // a load: the thread's
		{true, 0, true},                 // the thread is sending, or has segments queued
	} {
		if got := gsoHandOff(c.busy, c.rxRound); got != c.want {
			t.Errorf("gsoHandOff(busy %v, last round %d frames) = %v, want %v", c.busy, c.rxRound, got, c.want)
		}
	}
}

// A segment to a quiet queue, the thread asleep, leaves on its writer's
// goroutine, after the frames before it; under a load it is the thread's.
func TestTxThreadGSOQuietQueue(t *testing.T) {
	f := newFakeSocket(64)
	var mu sync.Mutex
	var got []string
	withTxThread(t, f, true, func(b []byte) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, string(b))
	})
	if !eventually(func() bool { return f.txThread.state.Load() == txSleeping }) {
		t.Fatal("the thread does not sleep")
	}
	f.send(t, 1, short) // a lone frame: its writer's kick
	var released atomic.Int64
	if err := f.SendGSO(false, 54, 1448, 34, 16, [][]byte{[]byte("segment 1")}, &poisoner{nil, &released}); err != nil {
		t.Fatal(err)
	}
	if f.txThread.gsoProd.Load() != 0 || released.Load() != 1 {
		t.Fatalf("a segment to a quiet queue went to the thread (%d queued), or is still held (%d released)", f.txThread.gsoProd.Load(), released.Load())
	}
	f.rxRound.Store(txThreadMinBatch)
	if err := f.SendGSO(false, 54, 1448, 34, 16, [][]byte{[]byte("segment 2")}, &poisoner{nil, &released}); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool { return f.txThread.gsoSent.Load() == 1 }) {
		t.Fatal("a segment under load did not go to the thread")
	}
	if !eventually(func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 }) {
		t.Fatalf("the kernel got %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != "[frame 0 segment 1 segment 2]" {
		t.Errorf("the kernel got %q, want the frame, then the segments", got)
	}
}

// poisoner is a segment's owner that overwrites the segment when released:
// a segment released before the thread sent it reaches the kernel
// poisoned.
type poisoner struct {
	seg      []byte
	released *atomic.Int64
}

func (p *poisoner) DecRef() {
	for i := range p.seg {
		p.seg[i] = 0xee
	}
	p.released.Add(1)
}

// Without a tx thread, SendGSO kicks the ring until the kernel has taken
// every frame before the segment, and sends the segment itself.
func TestTxSendGSOWithoutThread(t *testing.T) {
	f := newFakeSocket(64)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	f.AttachGSO(&GSOTx{fd: fds[0]})
	defer f.Close()
	var order []string
	f.txFlags.Store(xdpRingNeedWakeup)
	f.txKick = func() error {
		f.kicks++
		f.kernelComplete(f.kernelSend(len(f.txDescs), func(b []byte) { order = append(order, string(b)) }))
		return nil
	}
	f.txFlags.Store(0) // the kernel sends on its own: the writer does not kick
	f.send(t, 2, short)
	f.txFlags.Store(xdpRingNeedWakeup)
	var released atomic.Int64
	if err := f.SendGSO(false, 54, 1448, 34, 16, [][]byte{[]byte("segment")}, &poisoner{nil, &released}); err != nil {
		t.Fatal(err)
	}
	if released.Load() != 1 {
		t.Error("the segment's owner was not released")
	}
	buf := make([]byte, 100)
	n, _, err := unix.Recvfrom(fds[1], buf, unix.MSG_DONTWAIT)
	if err != nil {
		t.Fatalf("no segment sent: %v", err)
	}
	order = append(order, string(buf[vnetHdrLen:n]))
	if fmt.Sprint(order) != "[frame 0 frame 1 segment]" || f.kicks != 1 {
		t.Errorf("sent %q with %d kicks; want the frames first, after one kick", order, f.kicks)
	}
}
