package nic

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// The transmit side over rings in Go memory, the test playing the kernel:
// what it takes from the tx ring and what it puts in the completion ring.

// kernelSend takes up to n frames from the tx ring, as the kernel's send
// does, and returns their descriptors; the frames stay the kernel's until
// kernelComplete. seen, if not nil, gets each frame's bytes in ring order.
func (f *fakeSocket) kernelSend(n int, seen func([]byte)) []unix.XDPDesc {
	f.kernelTx.Lock()
	defer f.kernelTx.Unlock()
	cons, prod := f.txCons.Load(), f.txProd.Load()
	if th := f.txThread; th != nil && th.gso {
		// While GSO segments wait, the tx thread publishes frames with
		// C atomics, which the race detector does not see. A writer
		// stores want, in Go memory, after it wrote its frames, and the
		// thread publishes no more than it read there: this load, after
		// prod's, is the edge the detector needs.
		th.want.Load()
	}
	n = min(n, int(prod-cons))
	ds := make([]unix.XDPDesc, n)
	for i := range ds {
		ds[i] = f.txDescs[(cons+uint32(i))&uint32(len(f.txDescs)-1)]
		if seen != nil {
			seen(f.umem[ds[i].Addr : ds[i].Addr+uint64(ds[i].Len)])
		}
	}
	f.txCons.Store(cons + uint32(n))
	return ds
}

// kernelComplete hands sent frames back through the completion ring.
func (f *fakeSocket) kernelComplete(ds []unix.XDPDesc) {
	f.kernelTx.Lock()
	defer f.kernelTx.Unlock()
	prod := f.compProd.Load()
	if int(prod-f.compCons.Load())+len(ds) > len(f.compDescs) {
		panic("completion ring overflows: the socket does not release what it reaped")
	}
	for i, d := range ds {
		f.compDescs[(prod+uint32(i))&uint32(len(f.compDescs)-1)] = d.Addr
	}
	f.compProd.Store(prod + uint32(len(ds)))
}

// send reserves n frames, writes each with body(i), and sends them; it
// returns how many it reserved.
func (f *fakeSocket) send(t *testing.T, n int, body func(i int) []byte) int {
	t.Helper()
	got := f.BeginTx(n)
	for i := range got {
		f.SetTxLen(i, copy(f.TxFrame(i), body(i)))
	}
	if err := f.EndTx(); err != nil {
		t.Fatal(err)
	}
	return got
}

func short(i int) []byte { return []byte(fmt.Sprintf("frame %d", i)) }

// Frames reserved, written and submitted reach the kernel as written, from
// the transmit half of the UMEM; once completed, they are free again.
func TestTxReserveSubmitComplete(t *testing.T) {
	const frames = 8
	f := newFakeSocket(frames)
	if got := f.send(t, 3, short); got != 3 {
		t.Fatalf("reserved %d of 3 frames in an empty ring", got)
	}
	if !f.TxPending() {
		t.Error("TxPending false with 3 frames submitted")
	}
	var got []string
	sent := f.kernelSend(frames, func(b []byte) { got = append(got, string(b)) })
	if fmt.Sprint(got) != "[frame 0 frame 1 frame 2]" {
		t.Errorf("the kernel got %q", got)
	}
	for _, d := range sent {
		if d.Addr < frames*f.frameSize || d.Addr%f.frameSize != 0 {
			t.Errorf("tx frame at %#x: not a transmit frame of the UMEM", d.Addr)
		}
	}
	if f.TxPending() {
		t.Error("TxPending true after the kernel took every frame")
	}
	if n := f.txFrames.Len(); n != frames-3 {
		t.Errorf("%d free frames with 3 in flight, want %d", n, frames-3)
	}
	f.kernelComplete(sent)
	if err := f.Service(); err != nil {
		t.Fatal(err)
	}
	if n := f.txFrames.Len(); n != frames {
		t.Errorf("%d free frames after the completions were reaped, want %d", n, frames)
	}
	if f.txSent != 3 || f.txDrops != 0 || f.kicks != 0 {
		t.Errorf("sent %d, drops %d, kicks %d; want 3, 0 and no kick (need_wakeup clear)", f.txSent, f.txDrops, f.kicks)
	}
}

// A full tx ring and frames still in flight both limit a reservation; what
// is not reserved is counted as dropped, and completions make room again.
func TestTxFullRing(t *testing.T) {
	f := newFakeSocket(8)
	if got := f.send(t, 10, short); got != 8 {
		t.Fatalf("reserved %d of 10 frames in an 8-slot ring, want 8", got)
	}
	if got := f.send(t, 1, short); got != 0 {
		t.Fatalf("reserved %d frames in a full ring", got)
	}
	sent := f.kernelSend(8, nil) // the ring is empty, the frames in flight
	if got := f.send(t, 1, short); got != 0 {
		t.Fatalf("reserved %d frames while every frame is in flight: a frame reused before its completion", got)
	}
	f.kernelComplete(sent[:5])
	if got := f.send(t, 8, short); got != 5 {
		t.Fatalf("reserved %d frames after 5 completions, want 5", got)
	}
	if f.txSent != 13 || f.txDrops != 2+1+1+3 {
		t.Errorf("sent %d, drops %d; want 13, 7", f.txSent, f.txDrops)
	}
}

// The kernel is kicked only when the tx ring asks for it (need_wakeup), by
// EndTx and by the loop's Service, and again while a kick takes some
// frames but not all (copy mode sends a budget per syscall); a kick that
// takes nothing ends the kicking.
func TestTxKickOnlyWhenAsked(t *testing.T) {
	f := newFakeSocket(16)
	f.send(t, 2, short)
	if err := f.Service(); err != nil {
		t.Fatal(err)
	}
	if f.kicks != 0 {
		t.Fatalf("%d kicks without need_wakeup", f.kicks)
	}

	f.txFlags.Store(xdpRingNeedWakeup)
	if err := f.Service(); err != nil {
		t.Fatal(err)
	}
	if f.kicks != 1 {
		t.Fatalf("Service with frames pending and need_wakeup set kicked %d times, want once (the kick took none)", f.kicks)
	}

	// Copy mode: each kick sends 2 frames and completes them at once.
	f.txKick = func() error {
		f.kicks++
		f.kernelComplete(f.kernelSend(2, nil))
		return nil
	}
	f.kicks = 0
	f.send(t, 5, short)
	if f.kicks != 4 || f.TxPending() {
		t.Errorf("7 frames pending, 2 a kick: %d kicks, pending %v; want 4, false", f.kicks, f.TxPending())
	}
	f.kicks = 0
	f.send(t, 0, short)
	if f.kicks != 0 {
		t.Errorf("an empty batch kicked %d times", f.kicks)
	}

	f.txFlags.Store(0)
	f.send(t, 1, short)
	if f.kicks != 0 || !f.TxPending() {
		t.Errorf("need_wakeup clear: %d kicks, pending %v; want none, true", f.kicks, f.TxPending())
	}
}

// Writers on four goroutines, the loop's Service on another, and a kernel
// that sends and completes at its own pace, asks for kicks now and then,
// and sends on each kick: every frame placed reaches the kernel once and in
// each writer's order, placed and dropped add up to what was asked, and
// every frame comes home. Run with -race.
func TestTxConcurrent(t *testing.T) {
	const writers, batches = 4, 2000
	f := newFakeSocket(64)
	var (
		next    [writers]uint64 // each writer's next sequence number, as the kernel sees it
		bad     atomic.Int64
		seenN   atomic.Uint64
		asked   atomic.Uint64
		stopped atomic.Bool
	)
	seen := func(b []byte) {
		w, seq := b[0], binary.LittleEndian.Uint64(b[1:])
		if seq != next[w] {
			bad.Add(1)
		}
		next[w] = seq + 1
		seenN.Add(1)
	}
	f.txKick = func() error {
		f.kicks++
		f.kernelComplete(f.kernelSend(4, seen))
		return nil
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var seq uint64
			for range batches {
				n := 1 + rng.IntN(8)
				asked.Add(uint64(n))
				if err := f.sendSeq(byte(w), &seq, n); err != nil {
					t.Error(err)
				}
			}
		})
	}
	var helpers sync.WaitGroup
	helpers.Go(func() { // the queue's loop
		for !stopped.Load() {
			if err := f.Service(); err != nil {
				t.Error(err)
			}
			runtime.Gosched()
		}
	})
	var inFlight []unix.XDPDesc
	helpers.Go(func() { // the kernel
		rng := rand.New(rand.NewPCG(9, 9))
		for !stopped.Load() {
			inFlight = append(inFlight, f.kernelSend(rng.IntN(16), seen)...)
			if k := rng.IntN(len(inFlight) + 1); k > 0 {
				f.kernelComplete(inFlight[:k])
				inFlight = inFlight[k:]
			}
			f.txFlags.Store(uint32(rng.IntN(2)) * xdpRingNeedWakeup)
			runtime.Gosched()
		}
	})
	wg.Wait()
	stopped.Store(true)
	helpers.Wait()

	f.kernelComplete(append(inFlight, f.kernelSend(len(f.txDescs), seen)...))
	if err := f.Service(); err != nil {
		t.Fatal(err)
	}
	f.txMu.Lock()
	sent, drops := f.txSent, f.txDrops
	f.txMu.Unlock()
	if sent+drops != asked.Load() || seenN.Load() != sent || sent == 0 {
		t.Errorf("asked %d: sent %d, dropped %d, the kernel saw %d", asked.Load(), sent, drops, seenN.Load())
	}
	if bad.Load() != 0 {
		t.Errorf("%d frames out of their writer's order", bad.Load())
	}
	if n := f.txFrames.Len(); n != f.txFrames.Cap() {
		t.Errorf("%d of %d frames free at the end: frames leaked", n, f.txFrames.Cap())
	}
	t.Logf("sent %d, dropped %d, %d kicks", sent, drops, f.kicks)
}

// sendSeq sends up to n frames of writer w, each with w and the writer's
// next sequence number, for a kernel to check their order.
func (f *fakeSocket) sendSeq(w byte, seq *uint64, n int) error {
	got := f.BeginTx(n)
	for i := range got {
		b := f.TxFrame(i)
		b[0] = w
		binary.LittleEndian.PutUint64(b[1:], *seq)
		*seq++
		f.SetTxLen(i, 60)
	}
	return f.EndTx()
}

// The transmit path allocates nothing per frame.
func TestTxAllocatesNothing(t *testing.T) {
	f := newFakeSocket(64)
	allocs := testing.AllocsPerRun(1000, func() {
		got := f.BeginTx(32)
		for i := range got {
			f.TxFrame(i)[0] = 1
			f.SetTxLen(i, 60)
		}
		f.EndTx()
		// The kernel sends and completes all, without allocating.
		cons, prod, comp := f.txCons.Load(), f.txProd.Load(), f.compProd.Load()
		for i := range prod - cons {
			f.compDescs[(comp+i)&63] = f.txDescs[(cons+i)&63].Addr
		}
		f.txCons.Store(prod)
		f.compProd.Store(comp + prod - cons)
		f.Service()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch of 32 frames", allocs)
	}
}
