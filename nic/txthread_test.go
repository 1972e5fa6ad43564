package nic

import (
	"encoding/binary"
	"errors"
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
// kicks send at once. It returns the thread's kicks as the kernel counted
// them, and a func that stops the kernel and shuts its end of the socket,
// after which the thread's kicks fail.
func withTxThread(t *testing.T, f *fakeSocket, seen func([]byte)) (kicks *atomic.Int64, stopKernel func()) {
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
	kicks = new(atomic.Int64)
	var stopped atomic.Bool
	var kernel sync.WaitGroup
	kernel.Go(func() {
		buf := make([]byte, 1)
		for {
			_, _, err := unix.Recvfrom(fds[1], buf, 0)
			if stopped.Load() || (err != nil && err != unix.EINTR) {
				return
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
		f.Close() // stops the thread, closes fds[0]
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

// A lone frame is kicked by its writer; a batch goes to the thread, which
// sends it without the writer making a syscall.
func TestTxThreadTakesBatches(t *testing.T) {
	f := newFakeSocket(64)
	kicks, _ := withTxThread(t, f, nil)

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
	kicks, _ := withTxThread(t, f, func(b []byte) {
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
	_, stopKernel := withTxThread(t, f, nil)
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

// EndTxNow sends what the ring holds on the caller's goroutine, frames
// handed to the thread included, before it returns: what the endpoint sends
// next through GSOTx must not overtake them.
func TestTxEndTxNow(t *testing.T) {
	f := newFakeSocket(64)
	_, stopKernel := withTxThread(t, f, nil)
	stopKernel() // the thread's kicks send nothing now
	got := f.BeginTx(txThreadMinBatch)
	for i := range got {
		f.SetTxLen(i, 60)
	}
	f.EndTx() // the thread's; its kick fails
	if !f.TxPending() {
		t.Fatal("the batch left without the thread's kick")
	}
	f.BeginTx(0)
	if err := f.EndTxNow(); err != nil {
		t.Fatal(err)
	}
	if f.TxPending() || f.kicks != 1 {
		t.Errorf("after EndTxNow: pending %v, %d kicks by the caller; want nothing pending, 1", f.TxPending(), f.kicks)
	}
	if !eventually(func() bool { return f.txThread.state.Load() == txSleeping }) {
		t.Fatal("the thread does not go back to sleep")
	}
	f.send(t, 1, short) // the thread asleep, no load: its writer's kick
	f.BeginTx(txThreadMinBatch)
	if err := f.EndTxNow(); err != nil || f.TxPending() || f.kicks != 3 {
		t.Errorf("EndTxNow of a batch of %d: %v, pending %v, %d kicks by callers; want 3 in all, nothing pending", txThreadMinBatch, err, f.TxPending(), f.kicks)
	}
	f.BeginTx(0)
	if err := f.EndTxNow(); err != nil || f.kicks != 3 {
		t.Errorf("EndTxNow with nothing pending: %v, %d kicks; want no kick", err, f.kicks)
	}
}
