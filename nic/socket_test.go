package nic

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeSocket is a Socket whose rings live in Go memory; the test plays the
// kernel's side of them. Like Open's, its UMEM holds frames for receive and
// as many for transmit, and each ring has a slot per frame of its side.
type fakeSocket struct {
	*Socket
	fillProd, fillCons, rxProd, rxCons, flags atomic.Uint32
	pendingFill                               uint32
	fillDescs                                 []uint64
	rxDescs                                   []unix.XDPDesc

	txProd, txCons, txFlags, compProd, compCons, compFlags atomic.Uint32
	txDescs                                                []unix.XDPDesc
	compDescs                                              []uint64
	kernelTx                                               sync.Mutex // the kernel's side of the tx and completion rings
	kicks                                                  int        // txKick calls, under txMu
}

func newFakeSocket(frames int) *fakeSocket {
	const frameSize = 2048
	f := &fakeSocket{
		fillDescs: make([]uint64, frames), rxDescs: make([]unix.XDPDesc, frames),
		txDescs: make([]unix.XDPDesc, frames), compDescs: make([]uint64, frames),
	}
	f.Socket = &Socket{
		fd:        -1, // no kernel socket: Close closes none
		frameSize: frameSize,
		umem:      make([]byte, 2*frames*frameSize),
		fill:      newProducerRing(&f.fillProd, &f.fillCons, &f.flags, f.fillDescs),
		rx:        newConsumerRing(&f.rxProd, &f.rxCons, &f.flags, f.rxDescs),
		refill:    make([]uint64, 0, frames),
		tx:        newProducerRing(&f.txProd, &f.txCons, &f.txFlags, f.txDescs),
		comp:      newConsumerRing(&f.compProd, &f.compCons, &f.compFlags, f.compDescs),
		txFrames:  newFreeFrames(uint64(frames*frameSize), frames, frameSize),
	}
	f.txKick = func() error { // a kernel that sends nothing
		if f.kicks++; f.kicks > 1000 {
			panic("kicked a kernel that takes nothing 1000 times")
		}
		return nil
	}
	idx, _ := f.fill.Reserve(uint32(frames))
	for i := 0; i < frames; i++ {
		f.fill.Set(idx+uint32(i), uint64(i*frameSize))
	}
	f.fill.Submit()
	return f
}

// kernelReceive moves n frames from the fill ring to the rx ring as the
// kernel's xsk_flush does: the rx producer is published first, the fill
// consumer only when publishFill is set.
func (f *fakeSocket) kernelReceive(n int, publishFill bool) {
	cons, prod := f.fillCons.Load(), f.rxProd.Load()
	for i := 0; i < n; i++ {
		addr := f.fillDescs[(cons+uint32(i))&uint32(len(f.fillDescs)-1)]
		f.rxDescs[(prod+uint32(i))&uint32(len(f.rxDescs)-1)] = unix.XDPDesc{Addr: addr, Len: 60}
	}
	f.rxProd.Store(prod + uint32(n))
	f.pendingFill += uint32(n)
	if publishFill {
		f.fillCons.Store(cons + f.pendingFill)
		f.pendingFill = 0
	}
}

// The kernel publishes rx before fill: Receive must neither panic nor lose
// the frames whose fill slots do not look free yet, and Refill hands them
// back once they do.
func TestReceiveBeforeFillConsumerIsPublished(t *testing.T) {
	f := newFakeSocket(8)
	f.kernelReceive(8, false)
	delivered := 0
	if n := f.Receive(64, func(b [][]byte) { delivered += len(b) }); n != 8 || delivered != 8 {
		t.Fatalf("Receive = %d, delivered %d; want 8", n, delivered)
	}
	if w := f.Refill(); w != 8 {
		t.Fatalf("%d frames waiting, want 8 (fill ring looks full)", w)
	}
	f.fillCons.Store(f.fillCons.Load() + f.pendingFill)
	f.pendingFill = 0
	if w := f.Refill(); w != 0 {
		t.Fatalf("%d frames still waiting after the kernel freed the fill ring", w)
	}
	// Every frame is back in the fill ring exactly once.
	seen := map[uint64]bool{}
	for i := uint32(0); i < 8; i++ {
		a := f.fillDescs[(f.fillCons.Load()+i)&7]
		if seen[a] {
			t.Fatalf("frame %#x in the fill ring twice", a)
		}
		seen[a] = true
	}
	if f.fillProd.Load()-f.fillCons.Load() != 8 {
		t.Fatalf("fill ring holds %d frames, want 8", f.fillProd.Load()-f.fillCons.Load())
	}
}

// Many rounds of receive with the fill consumer published late or on time:
// frames in the fill ring, in the rx ring and waiting for the fill ring
// always add up to every frame.
func TestReceiveKeepsEveryFrame(t *testing.T) {
	f := newFakeSocket(16)
	for round := 0; round < 10000; round++ {
		inFill := int(f.fillProd.Load() - f.fillCons.Load() - f.pendingFill)
		if n := (round % 5) + 1; n <= inFill {
			f.kernelReceive(n, round%3 != 0)
		}
		f.Receive(4, func([][]byte) {})
		held := int(f.rxProd.Load() - f.rxCons.Load())
		total := int(f.fillProd.Load()-f.fillCons.Load()-f.pendingFill) + len(f.refill) + held
		if total != 16 {
			t.Fatalf("round %d: %d frames accounted for, want 16", round, total)
		}
	}
}

func BenchmarkReceive(b *testing.B) {
	f := newFakeSocket(2048)
	deliver := func([][]byte) {}
	b.ReportAllocs()
	for b.Loop() {
		f.kernelReceive(64, true)
		f.Receive(64, deliver)
	}
}

// The kernel keeps XDP_PACKET_HEADROOM in front of each received packet, so
// a 2048-byte frame holds a 1778-byte MTU plus its Ethernet header.
func TestMaxMTU(t *testing.T) {
	if got := MaxMTU(2048); got != 1778 {
		t.Fatalf("MaxMTU(2048) = %d, want 1778", got)
	}
	if got := MaxMTU(4096); got != 3826 {
		t.Fatalf("MaxMTU(4096) = %d, want 3826", got)
	}
}

// RxStamp is the stamp in the 8 bytes before the first frame of the last
// Receive that found any (the XDP program's metadata), and 0 for a frame
// with no room before it in its UMEM frame.
func TestRxStamp(t *testing.T) {
	f := newFakeSocket(8)
	const headroom = 256
	receive := func(stamps ...uint64) {
		t.Helper()
		cons, prod := f.fillCons.Load(), f.rxProd.Load()
		for i, st := range stamps {
			addr := f.fillDescs[(cons+uint32(i))&7]
			if st != 0 {
				addr += headroom
				binary.NativeEndian.PutUint64(f.umem[addr-stampLen:addr], st)
			}
			f.rxDescs[(prod+uint32(i))&7] = unix.XDPDesc{Addr: addr, Len: 60}
		}
		f.rxProd.Store(prod + uint32(len(stamps)))
		f.fillCons.Store(cons + uint32(len(stamps)))
		if n := f.Receive(64, func([][]byte) {}); n != len(stamps) {
			t.Fatalf("Receive took %d frames, want %d", n, len(stamps))
		}
	}
	receive(111, 222, 333)
	if got := f.RxStamp(); got != 111 {
		t.Errorf("RxStamp %d after frames stamped 111, 222, 333; want the first's", got)
	}
	if n := f.Receive(64, func([][]byte) {}); n != 0 || f.RxStamp() != 111 {
		t.Errorf("an empty Receive (%d frames) changed RxStamp to %d", n, f.RxStamp())
	}
	receive(0) // at the start of its frame: no room for a stamp
	if got := f.RxStamp(); got != 0 {
		t.Errorf("RxStamp %d for a frame with no headroom, want 0", got)
	}
}
