package stack

import (
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// batcher is the netstack's queueing discipline: it decides when packets
// reach the link endpoint, and so when the kernel is kicked.
//
// The netstack writes one packet at a time, from whichever goroutine sends
// (a connection's writer, or the TCP processor acting on an ACK). A packet
// that finds its tx queue idle is written at once by its own goroutine: a
// lone response leaves without waiting for anyone. A packet that finds
// another goroutine writing to the queue is left in the queue's backlog, and
// the writer, when its write returns, sends the whole backlog as one batch:
// one copy pass and one kick for many packets. Under load the kicks thus
// batch themselves, with no timer and no goroutine of their own (flat
// combining), and the batch grows with the load, as NAPI's budget does.
type batcher struct {
	lower  gvstack.LinkWriter
	queues []txBacklog // indexed like the endpoint's queues: by packet hash
}

// txBacklog is one tx queue's packets waiting for its writer.
type txBacklog struct {
	mu      sync.Mutex
	writing bool                     // a goroutine is writing to this queue
	waiting []*gvstack.PacketBuffer  // for that writer to send, oldest first
	batch   gvstack.PacketBufferList // the writer's, reused so that no write allocates
	closed  bool
	_       [32]byte // keep each queue's lock on a cache line of its own
}

const (
	// maxBatch bounds one WritePackets call: a 64 KiB response is 45
	// frames.
	maxBatch = 64
	// maxBacklog bounds what waits for a queue's writer; beyond it packets
	// are dropped, as a full NIC queue drops them, and TCP resends.
	maxBacklog = 4096
)

func newBatcher(lower gvstack.LinkWriter, queues int) *batcher {
	return &batcher{lower: lower, queues: make([]txBacklog, queues)}
}

var _ gvstack.QueueingDiscipline = (*batcher)(nil)

// WritePacket sends pkt now if its queue is idle, and otherwise leaves it
// to the goroutine writing to that queue.
func (b *batcher) WritePacket(pkt *gvstack.PacketBuffer) tcpip.Error {
	q := &b.queues[pkt.Hash%uint32(len(b.queues))]
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return &tcpip.ErrClosedForSend{}
	case q.writing:
		if len(q.waiting) >= maxBacklog {
			q.mu.Unlock()
			return &tcpip.ErrNoBufferSpace{}
		}
		q.waiting = append(q.waiting, pkt.IncRef())
		q.mu.Unlock()
		return nil
	}
	q.writing = true
	q.mu.Unlock()

	// Only the writer touches q.batch.
	q.batch.PushBack(pkt.IncRef())
	for {
		b.lower.WritePackets(q.batch)
		q.batch.Reset() // drops the batch's references
		q.mu.Lock()
		if len(q.waiting) == 0 {
			q.writing = false
			q.mu.Unlock()
			return nil
		}
		k := min(len(q.waiting), maxBatch)
		for _, p := range q.waiting[:k] {
			q.batch.PushBack(p)
		}
		n := copy(q.waiting, q.waiting[k:])
		clear(q.waiting[n:])
		q.waiting = q.waiting[:n]
		q.mu.Unlock()
	}
}

// Close drops what waits and refuses further packets.
func (b *batcher) Close() {
	for i := range b.queues {
		q := &b.queues[i]
		q.mu.Lock()
		q.closed = true
		for _, p := range q.waiting {
			p.DecRef()
		}
		q.waiting = nil
		q.mu.Unlock()
	}
}
