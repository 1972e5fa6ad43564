package stack

import (
	"runtime"
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
//
// The writer first yields its P (runtime.Gosched), once. The sendto(2) of a
// kick, when the writer makes it (nic hands batches under load to a thread
// of its own), is a raw syscall that keeps the P, so no goroutine of that P
// runs while it lasts: on a single P (the default with one queue) nothing would
// ever queue behind the writer and every packet would be a kick of its own,
// and on more Ps the connections its own loop just made runnable would
// still wait for it. After the yield, the goroutines runnable at that
// moment, other connections with a response ready, have queued their
// packets behind its own, and all leave in its batch. With nothing else
// runnable the yield returns at once, and a lone packet leaves as before.
// Measured on 1 KiB keep-alive over 32 connections, alternating runs: on
// one P 70,400 to 72,700 req/s against 57,900 to 59,300 without the yield,
// at 0.106 to 0.126 CPU-seconds per 10,000 requests against 0.166 to
// 0.170; on two Ps 66,130 and 66,477 against 47,370 and 48,872; with two
// queues 57,487 and 55,205 against 41,309 and 42,504. One connection alone
// is unchanged.
//
// A writer sends at most maxTurn batches for others; if the backlog is not
// empty by then, a goroutine of its own takes over, so that the writer (a
// connection's goroutine, a TCP processor holding its endpoint's lock) is
// not kept from its own work for as long as the load lasts.
type batcher struct {
	lower  gvstack.LinkWriter
	queues []txBacklog // indexed like the endpoint's queues: by packet hash
}

// txBacklog is one tx queue's packets waiting for its writer.
type txBacklog struct {
	mu            sync.Mutex
	writing       bool                     // a goroutine is writing to this queue
	waiting       []*gvstack.PacketBuffer  // for that writer to send, oldest first
	waitingFrames int                      // the tx frames they take
	batch         gvstack.PacketBufferList // the writer's, reused so that no write allocates
	closed        bool
	idle          sync.Cond // on mu: signalled, once closed, when the writer gives up its role
}

// Batches and the backlog are counted in tx frames, not packets: with host
// GSO one packet can be up to 46 frames (txFramesOf).
const (
	// maxBatchFrames bounds one WritePackets call: a 64 KiB response is 45
	// frames, and a GSO segment of gsoMaxSize at a 1,500-byte MTU fits.
	// A batch takes at least one packet, however many frames it is.
	maxBatchFrames = 64
	// maxBacklogFrames bounds what waits for a queue's writer; beyond it
	// packets are dropped, as a full NIC queue drops them, and TCP resends.
	maxBacklogFrames = 4096
	// maxTurn bounds the batches one writer sends for others.
	maxTurn = 4
)

func newBatcher(lower gvstack.LinkWriter, queues int) *batcher {
	b := &batcher{lower: lower, queues: make([]txBacklog, queues)}
	for i := range b.queues {
		b.queues[i].idle.L = &b.queues[i].mu
	}
	return b
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
		if q.waitingFrames >= maxBacklogFrames {
			q.mu.Unlock()
			return &tcpip.ErrNoBufferSpace{}
		}
		q.waiting = append(q.waiting, pkt.IncRef())
		q.waitingFrames += txFramesOf(pkt)
		q.mu.Unlock()
		return nil
	}
	q.writing = true
	q.mu.Unlock()

	// Only the writer touches q.batch. The caller learns whether its own
	// packet went out; the others' fate is counted by the endpoint.
	q.batch.PushBack(pkt.IncRef())
	runtime.Gosched()
	q.mu.Lock()
	b.takeWaiting(q)
	q.mu.Unlock()
	n, err := b.lower.WritePackets(q.batch)
	q.batch.Reset() // drops the batch's references
	if n > 0 {
		err = nil // the caller's packet, the batch's first, went out
	}
	if b.drain(q, maxTurn) {
		go b.drain(q, -1)
	}
	return err
}

// drain sends q's backlog in batches until it is empty, and then gives up
// the writer's role. After turns batches (never, if turns is negative) it
// stops with the role kept and reports true: the caller must hand the
// rest to another goroutine.
func (b *batcher) drain(q *txBacklog, turns int) (more bool) {
	for i := 0; ; i++ {
		q.mu.Lock()
		if len(q.waiting) == 0 {
			q.writing = false
			if q.closed {
				q.idle.Broadcast()
			}
			q.mu.Unlock()
			return false
		}
		if i == turns {
			q.mu.Unlock()
			return true
		}
		b.takeWaiting(q)
		q.mu.Unlock()
		b.lower.WritePackets(q.batch)
		q.batch.Reset()
	}
}

// takeWaiting moves the oldest waiting packets to q.batch, up to
// maxBatchFrames frames in all and at least one packet. q.mu is held.
func (b *batcher) takeWaiting(q *txBacklog) {
	frames := 0
	for _, p := range q.batch.AsSlice() {
		frames += txFramesOf(p)
	}
	k := 0
	for _, p := range q.waiting {
		f := txFramesOf(p)
		if q.batch.Len() > 0 && frames+f > maxBatchFrames {
			break
		}
		q.batch.PushBack(p)
		k++
		frames += f
		q.waitingFrames -= f
	}
	n := copy(q.waiting, q.waiting[k:])
	clear(q.waiting[n:])
	q.waiting = q.waiting[:n]
}

// Close drops what waits, refuses further packets, and returns once the
// writers at work have finished their batches. gVisor closes its queueing
// discipline so that no packet reaches the link endpoint after (nic.remove);
// without the wait, a writer's batch or the goroutine that took over its
// backlog could still be in the endpoint when xdpnet unmapped the rings,
// and fault (a CI run of TestConnectBurst, whose server aborted thousands
// of connections at exit, died so).
func (b *batcher) Close() {
	for i := range b.queues {
		q := &b.queues[i]
		q.mu.Lock()
		q.closed = true
		for _, p := range q.waiting {
			p.DecRef()
		}
		q.waiting = nil
		q.waitingFrames = 0
		for q.writing {
			q.idle.Wait()
		}
		q.mu.Unlock()
	}
}
