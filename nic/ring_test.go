package nic

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// sharedRing is a ring's shared memory in plain Go memory; the test plays
// the kernel on the other side.
type sharedRing struct {
	prod, cons, flags atomic.Uint32
	descs             []uint64
}

func newSharedRing(size int, start uint32) *sharedRing {
	r := &sharedRing{descs: make([]uint64, size)}
	r.prod.Store(start)
	r.cons.Store(start)
	return r
}

func (m *sharedRing) producer() *producerRing[uint64] {
	return newProducerRing(&m.prod, &m.cons, &m.flags, m.descs)
}

func (m *sharedRing) consumer() *consumerRing[uint64] {
	return newConsumerRing(&m.prod, &m.cons, &m.flags, m.descs)
}

func TestRingFullAndEmpty(t *testing.T) {
	m := newSharedRing(8, 0)
	p, c := m.producer(), m.consumer()

	if _, got := c.Peek(4); got != 0 {
		t.Fatalf("Peek on empty ring got %d, want 0", got)
	}
	idx, got := p.Reserve(10)
	if got != 8 {
		t.Fatalf("Reserve(10) on empty 8-slot ring got %d, want 8", got)
	}
	for i := uint32(0); i < got; i++ {
		p.Set(idx+i, uint64(100+i))
	}
	if _, got := c.Peek(8); got != 0 {
		t.Fatalf("consumer saw %d slots before Submit", got)
	}
	p.Submit()
	if _, got := p.Reserve(1); got != 0 {
		t.Fatalf("Reserve on full ring got %d, want 0", got)
	}
	idx, got = c.Peek(3)
	if got != 3 || c.Get(idx) != 100 || c.Get(idx+2) != 102 {
		t.Fatalf("Peek(3) = %d slots starting %d", got, c.Get(idx))
	}
	if _, got := p.Reserve(1); got != 0 {
		t.Fatalf("producer got a slot the consumer has not released")
	}
	c.Release()
	if _, got := p.Reserve(5); got != 3 {
		t.Fatalf("Reserve(5) after releasing 3 got %d, want 3", got)
	}
	p.Cancel(3)
	if free := p.Free(); free != 3 {
		t.Fatalf("Free after Cancel = %d, want 3", free)
	}
}

// The indices are free-running 32-bit counters: start just below 2^32 so
// that they wrap during the test.
func TestRingWrapAround(t *testing.T) {
	m := newSharedRing(4, ^uint32(0)-5)
	p, c := m.producer(), m.consumer()
	next, want := uint64(0), uint64(0)
	for round := 0; round < 20; round++ {
		idx, got := p.Reserve(3)
		for i := uint32(0); i < got; i++ {
			p.Set(idx+i, next)
			next++
		}
		p.Submit()
		idx, got = c.Peek(4)
		for i := uint32(0); i < got; i++ {
			if v := c.Get(idx + i); v != want {
				t.Fatalf("round %d: got %d, want %d", round, v, want)
			}
			want++
		}
		c.Release()
	}
	if want != 60 {
		t.Fatalf("received %d items, want 60", want)
	}
	if m.prod.Load() > 100 {
		t.Fatalf("producer index %d did not wrap", m.prod.Load())
	}
}

func TestRingNeedWakeup(t *testing.T) {
	m := newSharedRing(4, 0)
	p := m.producer()
	if p.NeedWakeup() {
		t.Fatal("NeedWakeup with flag clear")
	}
	m.flags.Store(xdpRingNeedWakeup)
	if !p.NeedWakeup() {
		t.Fatal("NeedWakeup false with XDP_RING_NEED_WAKEUP set")
	}
}

// A million items through a small ring, producer and consumer on two
// goroutines with random batch sizes: nothing lost, duplicated or reordered.
// Run with -race to check the publication protocol.
func TestRingConcurrent(t *testing.T) {
	const items = 1_000_000
	m := newSharedRing(64, ^uint32(0)-1000)
	p, c := m.producer(), m.consumer()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for next := uint64(0); next < items; {
			idx, got := p.Reserve(uint32(1 + rng.IntN(32)))
			for i := uint32(0); i < got && next < items; i++ {
				p.Set(idx+i, next)
				next++
				if next == items {
					p.Cancel(got - i - 1)
				}
			}
			p.Submit()
		}
	}()
	rng := rand.New(rand.NewPCG(3, 4))
	for want := uint64(0); want < items; {
		idx, got := c.Peek(uint32(1 + rng.IntN(32)))
		for i := uint32(0); i < got; i++ {
			if v := c.Get(idx + i); v != want {
				t.Fatalf("got %d, want %d", v, want)
			}
			want++
		}
		c.Release()
	}
	wg.Wait()
}

func BenchmarkRingRoundTrip(b *testing.B) {
	m := newSharedRing(2048, 0)
	p, c := m.producer(), m.consumer()
	b.ReportAllocs()
	for b.Loop() {
		idx, got := p.Reserve(64)
		for i := uint32(0); i < got; i++ {
			p.Set(idx+i, uint64(i))
		}
		p.Submit()
		idx, got = c.Peek(64)
		for i := uint32(0); i < got; i++ {
			_ = c.Get(idx + i)
		}
		c.Release()
	}
}
