package stack

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// fakeLower records each WritePackets call's packets (by their first
// payload byte) and can hold a call until released, as a slow sendto does.
type fakeLower struct {
	mu      sync.Mutex
	batches [][]byte
	hold    chan struct{} // if set, WritePackets waits for a receive from it
	entered chan struct{} // signalled when a WritePackets call starts
}

func (f *fakeLower) WritePackets(pkts gvstack.PacketBufferList) (int, tcpip.Error) {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.hold != nil {
		<-f.hold
	}
	var ids []byte
	for _, p := range pkts.AsSlice() {
		ids = append(ids, p.Data().AsRange().ToSlice()[0])
	}
	f.mu.Lock()
	f.batches = append(f.batches, ids)
	f.mu.Unlock()
	return pkts.Len(), nil
}

func (f *fakeLower) got() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.batches...)
}

func testPacket(id byte, hash uint32) *gvstack.PacketBuffer {
	pkt := gvstack.NewPacketBuffer(gvstack.PacketBufferOptions{Payload: buffer.MakeWithData([]byte{id})})
	pkt.Hash = hash
	return pkt
}

// write hands the batcher a packet and drops the caller's reference, as the
// netstack does.
func write(t *testing.T, b *batcher, id byte, hash uint32) {
	t.Helper()
	pkt := testPacket(id, hash)
	defer pkt.DecRef()
	if err := b.WritePacket(pkt); err != nil {
		t.Errorf("WritePacket(%d): %v", id, err)
	}
}

// writing returns a batcher over queues queues of a fakeLower that holds
// each batch, once packet 0 (queue 0) is being written, and a channel
// closed when that write returns.
func writing(t *testing.T, queues int) (*fakeLower, *batcher, chan struct{}) {
	f := &fakeLower{hold: make(chan struct{}), entered: make(chan struct{}, 10)}
	b := newBatcher(f, queues)
	done := make(chan struct{})
	go func() {
		write(t, b, 0, 0)
		close(done)
	}()
	<-f.entered
	return f, b, done
}

// A lone packet leaves at once: it is written by the caller, before
// WritePacket returns, in a batch of its own.
func TestBatcherLonePacketLeavesAtOnce(t *testing.T) {
	f := &fakeLower{}
	b := newBatcher(f, 1)
	for i := range 3 {
		write(t, b, byte(i), 0)
		if got := f.got(); len(got) != i+1 || len(got[i]) != 1 || got[i][0] != byte(i) {
			t.Fatalf("after packet %d: batches %v; want each packet written at once, alone", i, got)
		}
	}
}

// A writer yields before it writes, so the goroutines that are runnable
// then (other connections with a response ready) queue their packets behind
// its own, and they all leave in one batch with one kick: without the yield
// no other goroutine of its P runs during the writer's sendto(2), and on
// one P every packet would be a kick of its own. One P makes the test
// deterministic.
func TestBatcherYieldBatches(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f := &fakeLower{}
	b := newBatcher(f, 1)
	const writers = 20
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() { write(t, b, byte(i), 0) })
	}
	wg.Wait()
	got := f.got()
	n := 0
	for _, batch := range got {
		n += len(batch)
	}
	// The scheduler takes a goroutine from the global queue, where the
	// writer waits, once in 61 turns even when others are runnable; so
	// allow a second batch.
	if n != writers || len(got) > 2 {
		t.Fatalf("batches %v; want the %d packets in one batch (two at most)", got, writers)
	}
}

// While one goroutine is writing (stuck in a slow sendto), packets from
// others wait, in order, and leave as one batch when that write returns;
// the other goroutines do not wait for it.
func TestBatcherStreamIsBatched(t *testing.T) {
	f, b, done := writing(t, 1) // packet 0's writer is in WritePackets
	for i := byte(1); i <= 20; i++ {
		write(t, b, i, 0) // returns at once: queued for the writer
	}
	f.hold <- struct{}{} // packet 0 sent
	<-f.entered
	f.hold <- struct{}{} // the batch of the other 20
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer did not return after sending the backlog")
	}
	got := f.got()
	if len(got) != 2 || len(got[0]) != 1 || len(got[1]) != 20 {
		t.Fatalf("batches %v; want [0] then the 20 others in one batch", got)
	}
	for i, id := range got[1] {
		if id != byte(i+1) {
			t.Fatalf("batch %v is out of order", got[1])
		}
	}
}

// A backlog of more one-frame packets than maxBatchFrames leaves in batches
// of maxBatchFrames.
func TestBatcherBatchBound(t *testing.T) {
	f, b, done := writing(t, 1)
	for i := range maxBatchFrames + 5 {
		write(t, b, byte(i), 0)
	}
	for i := range 3 {
		f.hold <- struct{}{} // batch i sent
		if i < 2 {
			<-f.entered // batch i+1 started
		}
	}
	<-done
	got := f.got()
	if len(got) != 3 || len(got[1]) != maxBatchFrames || len(got[2]) != 5 {
		t.Fatalf("batch sizes %d, %d, %d; want 1, %d, 5", len(got[0]), len(got[1]), len(got[2]), maxBatchFrames)
	}
}

// A writer sends at most maxTurn batches for others; a goroutine of its own
// sends the rest, and the writer returns to its own work.
func TestBatcherWriterHandsOff(t *testing.T) {
	f, b, done := writing(t, 1)
	for i := range maxTurn*maxBatchFrames + 10 {
		write(t, b, byte(i), 0)
	}
	for range 1 + maxTurn {
		f.hold <- struct{}{} // the writer's own packet, then its turns
		<-f.entered
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer is still sending others' packets after its turns")
	}
	f.hold <- struct{}{} // the rest, sent by the goroutine that took over
	deadline := time.Now().Add(5 * time.Second)
	for len(f.got()) < 2+maxTurn && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	got := f.got()
	if len(got) != 2+maxTurn || len(got[len(got)-1]) != 10 {
		t.Fatalf("%d batches, the last of %d packets; want %d, the last of 10", len(got), len(got[len(got)-1]), 2+maxTurn)
	}
}

// Queues do not wait for each other: with queue 0's writer stuck, a packet
// for queue 1 is written at once.
func TestBatcherQueuesIndependent(t *testing.T) {
	f, b, _ := writing(t, 2)
	go write(t, b, 1, 1)
	select {
	case <-f.entered: // queue 1's packet reached WritePackets while queue 0's is stuck
	case <-time.After(5 * time.Second):
		t.Fatal("a packet for queue 1 waited for queue 0's writer")
	}
	f.hold <- struct{}{}
	f.hold <- struct{}{}
}

// A full backlog refuses packets, as a full NIC queue drops them. Close
// releases what waits, refuses more, and returns only once the writer at
// work has finished its batch: nothing reaches the link after it.
func TestBatcherFullAndClose(t *testing.T) {
	f, b, done := writing(t, 1)
	for i := range maxBacklogFrames {
		write(t, b, byte(i), 0)
	}
	pkt := testPacket(1, 0)
	defer pkt.DecRef()
	if err := b.WritePacket(pkt); err == nil {
		t.Error("a packet beyond the backlog bound was taken")
	}
	closed := closeWhileWriting(t, b)
	close(f.hold)
	<-done
	<-closed
	if got := f.got(); len(got) != 1 || len(got[0]) != 1 || got[0][0] != 0 {
		t.Errorf("batches written %v; want only the writer's own, [[0]]", got)
	}
	if err := b.WritePacket(pkt); err == nil {
		t.Error("a packet after Close was taken")
	}
}

// closeWhileWriting calls b.Close while a batch is held in the lower
// writer, checks that it waits, and returns a channel closed when it
// returns.
func closeWhileWriting(t *testing.T, b *batcher) chan struct{} {
	t.Helper()
	closed := make(chan struct{})
	go func() {
		b.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a batch was still being written")
	case <-time.After(50 * time.Millisecond):
	}
	return closed
}

// Close also waits for the goroutine that took over a writer's backlog
// (after maxTurn batches).
func TestBatcherCloseWaitsForHandOff(t *testing.T) {
	f, b, done := writing(t, 1)
	for i := range maxTurn*maxBatchFrames + 1 {
		write(t, b, byte(i), 0)
	}
	for range maxTurn + 1 {
		f.hold <- struct{}{} // the writer's own batch and maxTurn more
		<-f.entered
	}
	<-done // the writer returned; a goroutine of its own holds the role
	closed := closeWhileWriting(t, b)
	close(f.hold)
	<-closed
}

// An idle queue's packet is written without allocating in the batcher.
func BenchmarkBatcherIdle(b *testing.B) {
	f := &countingLower{}
	bt := newBatcher(f, 1)
	pkt := testPacket(0, 0)
	defer pkt.DecRef()
	b.ReportAllocs()
	for b.Loop() {
		bt.WritePacket(pkt)
	}
}

type countingLower struct{ n int }

func (c *countingLower) WritePackets(pkts gvstack.PacketBufferList) (int, tcpip.Error) {
	c.n += pkts.Len()
	return pkts.Len(), nil
}
