package nic

import "sync/atomic"

// ring is what an AF_XDP ring shares with the kernel: a producer index, a
// consumer index and a flags word, all 32 bits, and an array of descriptors
// whose length is a power of two. The indices run freely and wrap at 2^32;
// a slot is index & mask. Each index has exactly one writer, so a plain
// atomic store publishes it and an atomic load sees the other side's.
type ring[T any] struct {
	producer *atomic.Uint32
	consumer *atomic.Uint32
	flags    *atomic.Uint32
	descs    []T
	mask     uint32
}

func newRing[T any](producer, consumer, flags *atomic.Uint32, descs []T) ring[T] {
	if n := len(descs); n == 0 || n&(n-1) != 0 {
		panic("nic: ring size must be a power of two")
	}
	return ring[T]{producer: producer, consumer: consumer, flags: flags, descs: descs, mask: uint32(len(descs) - 1)}
}

// NeedWakeup reports whether the kernel asks to be woken (XDP_RING_NEED_WAKEUP)
// before it will look at this ring again.
func (r *ring[T]) NeedWakeup() bool { return r.flags.Load()&xdpRingNeedWakeup != 0 }

// Size is the number of slots.
func (r *ring[T]) Size() uint32 { return r.mask + 1 }

// xdpRingNeedWakeup is XDP_RING_NEED_WAKEUP from linux/if_xdp.h.
const xdpRingNeedWakeup = 1

// producerRing is a ring this process fills and the kernel drains: the fill
// ring and the tx ring. Only this side writes producer; only the kernel
// writes consumer.
//
// The protocol is libxdp's xsk.h: Reserve slots, Set them, Submit to publish
// the whole batch with one release store. The consumer index is read from
// shared memory only when the cached view says the ring is too full.
type producerRing[T any] struct {
	ring[T]
	cachedProd uint32 // next slot to reserve; ahead of *producer until Submit
	cachedCons uint32 // last consumer value read
}

// newProducerRing wraps shared words and descriptors as a producer ring.
func newProducerRing[T any](producer, consumer, flags *atomic.Uint32, descs []T) *producerRing[T] {
	r := &producerRing[T]{ring: newRing(producer, consumer, flags, descs)}
	r.cachedProd = producer.Load()
	r.cachedCons = consumer.Load()
	return r
}

// Free is the number of slots that can be reserved, refreshing the view of
// the consumer index.
func (r *producerRing[T]) Free() uint32 {
	r.cachedCons = r.consumer.Load()
	return r.Size() - (r.cachedProd - r.cachedCons)
}

// Reserve reserves up to n slots and returns the index of the first and how
// many it got, which is less than n when the ring is nearly full.
func (r *producerRing[T]) Reserve(n uint32) (idx, got uint32) {
	free := r.Size() - (r.cachedProd - r.cachedCons)
	if free < n {
		free = r.Free()
	}
	got = min(n, free)
	idx = r.cachedProd
	r.cachedProd += got
	return idx, got
}

// Set writes the descriptor of a reserved slot.
func (r *producerRing[T]) Set(idx uint32, d T) { r.descs[idx&r.mask] = d }

// Get reads back the descriptor of a reserved slot that is not yet submitted.
func (r *producerRing[T]) Get(idx uint32) *T { return &r.descs[idx&r.mask] }

// Cancel gives back the last n reserved slots that were not submitted.
func (r *producerRing[T]) Cancel(n uint32) { r.cachedProd -= n }

// Pending reports whether submitted slots wait for the kernel to consume
// them, refreshing the view of the consumer index.
func (r *producerRing[T]) Pending() bool { return r.Free() < r.Size() }

// Submit publishes every reserved slot to the kernel. The store is atomic,
// so the descriptors written before it are visible to the kernel when it
// sees the new producer index.
func (r *producerRing[T]) Submit() { r.producer.Store(r.cachedProd) }

// SubmitForward is Submit for a producer index that another writer may move
// forward too (nic's tx thread, while GSO segments wait): it never moves
// the index back.
func (r *producerRing[T]) SubmitForward() {
	for {
		cur := r.producer.Load()
		if int32(r.cachedProd-cur) <= 0 || r.producer.CompareAndSwap(cur, r.cachedProd) {
			return
		}
	}
}

// consumerRing is a ring the kernel fills and this process drains: the rx
// ring and the completion ring. Only the kernel writes producer; only this
// side writes consumer.
type consumerRing[T any] struct {
	ring[T]
	cachedProd uint32 // last producer value read
	cachedCons uint32 // next slot to peek; ahead of *consumer until Release
}

// newConsumerRing wraps shared words and descriptors as a consumer ring.
func newConsumerRing[T any](producer, consumer, flags *atomic.Uint32, descs []T) *consumerRing[T] {
	r := &consumerRing[T]{ring: newRing(producer, consumer, flags, descs)}
	r.cachedProd = producer.Load()
	r.cachedCons = consumer.Load()
	return r
}

// Peek takes up to n filled slots and returns the index of the first and
// how many it got. The producer index is read from shared memory only when
// the cached view is empty.
func (r *consumerRing[T]) Peek(n uint32) (idx, got uint32) {
	avail := r.cachedProd - r.cachedCons
	if avail == 0 {
		r.cachedProd = r.producer.Load()
		avail = r.cachedProd - r.cachedCons
	}
	got = min(n, avail)
	idx = r.cachedCons
	r.cachedCons += got
	return idx, got
}

// Get reads the descriptor of a peeked slot.
func (r *consumerRing[T]) Get(idx uint32) T { return r.descs[idx&r.mask] }

// Release hands every peeked slot back to the kernel with one atomic store.
func (r *consumerRing[T]) Release() { r.consumer.Store(r.cachedCons) }
