package nic

import (
	"math/rand/v2"
	"testing"
)

// A million random alloc/free cycles: at the end every frame is free
// exactly once, none lost, none duplicated, each where it started.
func TestFramesNoneLost(t *testing.T) {
	const count, size, base = 1024, 2048, 1 << 20
	f := newFreeFrames(base, count, size)
	rng := rand.New(rand.NewPCG(7, 8))
	held := make([]uint64, 0, count)
	for i := 0; i < 1_000_000; i++ {
		if rng.IntN(2) == 0 || len(held) == count {
			if len(held) == 0 {
				continue
			}
			j := rng.IntN(len(held))
			f.Free(held[j])
			held[j] = held[len(held)-1]
			held = held[:len(held)-1]
			continue
		}
		addr, ok := f.Alloc()
		if !ok {
			t.Fatalf("cycle %d: Alloc failed with %d of %d held", i, len(held), count)
		}
		held = append(held, addr)
	}
	for _, a := range held {
		f.Free(a)
	}
	if f.Len() != count {
		t.Fatalf("%d frames free at the end, want %d", f.Len(), count)
	}
	seen := make(map[uint64]bool)
	for i := 0; i < count; i++ {
		a, _ := f.Alloc()
		if seen[a] || a < base || a >= base+count*size || (a-base)%size != 0 {
			t.Fatalf("bad or duplicate frame address %#x", a)
		}
		seen[a] = true
	}
	if _, ok := f.Alloc(); ok {
		t.Fatal("Alloc succeeded with every frame taken")
	}
}

func TestFramesDoubleFreePanics(t *testing.T) {
	f := newFreeFrames(0, 2, 2048)
	defer func() {
		if recover() == nil {
			t.Fatal("freeing a frame that was never taken did not panic")
		}
	}()
	f.Free(0)
}

func BenchmarkFramesAllocFree(b *testing.B) {
	f := newFreeFrames(0, 4096, 2048)
	b.ReportAllocs()
	for b.Loop() {
		a, _ := f.Alloc()
		f.Free(a)
	}
}
