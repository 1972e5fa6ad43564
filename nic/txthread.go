package nic

// The tx thread: an OS thread of the socket's own, outside the Go
// scheduler, that makes the sendto(2) which has the kernel send what the
// tx ring holds.
//
// In copy mode that syscall does the sending itself: for each frame it
// allocates an skb, copies the frame and runs the driver's transmit, and
// on veth the peer's whole receive (its TCP, its wake-up of the reader)
// runs inside it, on the caller's thread. With one queue served by one P,
// that thread is the one that runs the netstack and every connection, so
// a third of its time went to the kick (docs/profiles/intel-1k-57410a2.*)
// while a core stood idle. The tx thread runs the kicks beside it.
//
// It is a C thread (pthread_create through cgo) because a Go goroutine
// cannot wait outside the scheduler: one blocked in a raw syscall keeps
// its P, and one blocked in a syscall the runtime knows of leaves its P
// stuck until sysmon takes it back, 20 us or more, and then hands it to
// another thread. The C thread sleeps on a futex, costs the Go side
// nothing while it runs, and is woken only when it sleeps.
//
// The protocol is one word, state, in C memory:
//
//	sleeping --(Go: kick, FUTEX_WAKE)--> pending
//	running  --(Go: kick)-------------> pending
//	pending  --(thread: takes it)-----> running, then kicks until the ring is empty
//	running  --(thread: nothing left)-> sleeping, FUTEX_WAIT
//
// Go only ever moves the word to pending, and wakes the thread only when
// it found it sleeping; the thread moves it to running before it looks at
// the ring, so a kick asked for during its sendto is never lost. Stop sets
// stopped, which nothing leaves.
//
// After a kick the thread lingers for 10 us (TX_LINGER_NS), yielding its
// CPU (sched_yield) between looks at the word, before it sleeps: under load
// the next batch usually comes within that, and a futex wake-up costs the
// writer a syscall and the batch the thread's wake-up. Alternating with a
// thread that sleeps at once, 32 keep-alive connections: lingering 5, 10,
// 10, 20 and 50 us served 1.09x, 1.08x, 1.00x, 1.09x and 0.99x the
// requests at 0.89x to 1.02x the CPU, and this build 1.01x at 0.96x (one
// connection 1.03x, a new connection per request 1.03x, 64 KiB 1.02x, all
// at 0.97x to 0.98x the CPU): a few percent, in the noise of any one run.
// A busy 20 us spin without yielding served 0.90x: it took the core wrk
// needs.
//
// The thread reads the tx ring's producer, consumer and flags words and
// nothing else: the Go side still owns the ring (under txMu) and reaps the
// completion ring, and the kernel serializes the thread's sendto(2) with
// any other on the socket (xs->mutex). That includes the Go scheduler's
// epoll_wait, which polls the socket whenever it reports it ready, and in
// copy mode a poll sends what the tx ring holds (xsk_poll calls
// xsk_generic_xmit, need_wakeup or not): an idle Go thread shares the
// sending, and a busy one can spin on the mutex. A queue of two sockets,
// the tx ring on its own, took that away and measured no better
// (docs/profiles/intel-xskpoll-a8724df.txt).

/*
#cgo CFLAGS: -O2 -Wall
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

// TX_LINGER_NS is how long the thread waits for the next batch after a
// kick before it sleeps, giving its CPU away (sched_yield) meanwhile.
#define TX_LINGER_NS 10000

enum { TX_RUNNING = 0, TX_PENDING = 1, TX_SLEEPING = 2, TX_STOPPED = 3 };

// GSO_SLOTS segments of up to GSO_IOVS pieces, their virtio_net_hdr
// included, wait for the thread's send at most.
#define GSO_SLOTS 8
#define GSO_IOVS 64
#define VNET_HDR_LEN 10

struct txthread {
	uint32_t state;
	int32_t err;     // the errno that ended a kick, for the Go side; 0 if none
	uint64_t kicks;  // sendto(2) calls, written by the thread only
	uint64_t sleeps; // times it went to sleep, written by the thread only
	int fd;
	uint32_t *prod;  // the tx ring's producer: the thread publishes it while segments wait
	const uint32_t *cons, *flags;
	pthread_t thread;

	// The GSO queue (gso_fd >= 0): segments the thread sends through the
	// AF_PACKET socket gso_fd, each after the tx ring's frames before it
	// (gso_ring) and before those after it. Go writes a segment's slot and
	// then gso_prod; the thread sends it and then writes gso_cons. While
	// segments wait, Go leaves the ring's producer to the thread and
	// writes want instead: the producer with every frame placed.
	int gso_fd;
	uint32_t *want; // in Go memory (txThread.want), pinned
	uint32_t gso_prod, gso_cons;
	// Written by the thread only: segments sent, refused by the kernel,
	// and sent out of order (drain_to gave up, or frames after the
	// segment were published before it left: a bug).
	uint64_t gso_sent, gso_lost, gso_disorder;
	// A slot: the ring index the segment follows, and its pieces: the
	// header in gso_hdr, the rest in the netstack's buffers (Go memory,
	// pinned and referenced until the Go side sees gso_cons pass).
	uint32_t gso_ring[GSO_SLOTS], gso_iovcnt[GSO_SLOTS];
	unsigned char gso_hdr[GSO_SLOTS][VNET_HDR_LEN];
	struct iovec gso_iov[GSO_SLOTS][GSO_IOVS];
};

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define BEFORE(a, b) ((int32_t)((a) - (b)) < 0) // ring index a comes before b

// kick_ring is kickNow's loop (socket.go): kick while the ring asks for
// it, until the kernel has taken every frame or a kick took none (the
// kernel was busy; the Go side's next Service asks again).
static void kick_ring(struct txthread *t) {
	while (LOAD(t->flags) & 1) { // XDP_RING_NEED_WAKEUP
		uint32_t before = LOAD(t->cons);
		if (before == LOAD(t->prod))
			return;
		__atomic_store_n(&t->kicks, t->kicks + 1, __ATOMIC_RELAXED);
		if (sendto(t->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0) {
			int e = errno;
			if (e != EAGAIN && e != EBUSY && e != ENOBUFS && e != ENETDOWN) {
				__atomic_store_n(&t->err, e, __ATOMIC_RELEASE);
				return;
			}
		}
		if (LOAD(t->cons) == before)
			return;
	}
}

// publish moves the tx ring's producer forward to want, never back: Go
// publishes too, when no segment waits (publishTx), the same way.
static void publish(struct txthread *t, uint32_t want) {
	uint32_t cur = LOAD(t->prod);
	while (BEFORE(cur, want) &&
	       !__atomic_compare_exchange_n(t->prod, &cur, want, 0, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
		;
}

// drain_to kicks until the kernel has taken the ring's frames up to idx,
// yielding the CPU while a kick takes none (in zero-copy mode the driver
// sends on its own). It gives up, and the segment after those frames
// leaves before some of them, only when stopped or after GSO_DRAIN_TRIES
// rounds (a link down).
#define GSO_DRAIN_TRIES 100000
static void drain_to(struct txthread *t, uint32_t idx) {
	for (int i = 0; BEFORE(LOAD(t->cons), idx) && i < GSO_DRAIN_TRIES; i++) {
		if (LOAD(&t->state) == TX_STOPPED)
			return;
		uint32_t before = LOAD(t->cons);
		if (LOAD(t->flags) & 1) {
			__atomic_store_n(&t->kicks, t->kicks + 1, __ATOMIC_RELAXED);
			sendto(t->fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
		}
		if (LOAD(t->cons) == before)
			sched_yield();
	}
}

// send_gso sends the segments Go queued, each after the ring's frames
// before it, and then publishes the frames placed after the last. The
// send blocks while the interface's queue is full, as a kernel socket's
// writer would; a segment the kernel refuses is counted lost, and TCP
// sends it again.
static void send_gso(struct txthread *t) {
	if (__atomic_load_n(&t->gso_fd, __ATOMIC_ACQUIRE) < 0)
		return;
	uint32_t c = t->gso_cons;
	for (;;) {
		while (c != LOAD(&t->gso_prod)) {
			uint32_t i = c % GSO_SLOTS;
			uint32_t ring = t->gso_ring[i];
			publish(t, ring);
			drain_to(t, ring);
			if (BEFORE(LOAD(t->cons), ring) || BEFORE(ring, LOAD(t->prod)))
				__atomic_store_n(&t->gso_disorder, t->gso_disorder + 1, __ATOMIC_RELAXED);
			struct msghdr m = {.msg_iov = t->gso_iov[i], .msg_iovlen = t->gso_iovcnt[i]};
			if (sendmsg(t->gso_fd, &m, 0) < 0)
				__atomic_store_n(&t->gso_lost, t->gso_lost + 1, __ATOMIC_RELAXED);
			else
				__atomic_store_n(&t->gso_sent, t->gso_sent + 1, __ATOMIC_RELAXED);
			__atomic_store_n(&t->gso_cons, ++c, __ATOMIC_SEQ_CST);
		}
		// Go writes a segment's gso_prod before any want that counts
		// frames placed after it: a want read before gso_prod is
		// found unchanged holds none of those.
		uint32_t w = __atomic_load_n(t->want, __ATOMIC_SEQ_CST);
		if (c == LOAD(&t->gso_prod)) {
			publish(t, w);
			return;
		}
	}
}

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// linger waits up to TX_LINGER_NS for the state to leave running, yielding
// the CPU to whatever else may run there, and reports whether it did.
static int linger(struct txthread *t) {
	int64_t end = now_ns() + TX_LINGER_NS;
	do {
		if (LOAD(&t->state) != TX_RUNNING)
			return 1;
		sched_yield();
	} while (now_ns() < end);
	return LOAD(&t->state) != TX_RUNNING;
}

static void *txthread_run(void *arg) {
	struct txthread *t = arg;
	for (;;) {
		uint32_t s = LOAD(&t->state);
		switch (s) {
		case TX_STOPPED:
			return NULL;
		case TX_PENDING:
			if (__atomic_compare_exchange_n(&t->state, &s, TX_RUNNING, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				send_gso(t);
				kick_ring(t);
			}
			break;
		case TX_RUNNING:
			if (linger(t))
				break;
			if (__atomic_compare_exchange_n(&t->state, &s, TX_SLEEPING, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				__atomic_store_n(&t->sleeps, t->sleeps + 1, __ATOMIC_RELAXED);
			break;
		case TX_SLEEPING:
			syscall(SYS_futex, &t->state, FUTEX_WAIT_PRIVATE, TX_SLEEPING, NULL, NULL, 0);
			break;
		}
	}
}

static struct txthread *txthread_start(int fd, uint32_t *prod, const uint32_t *cons, const uint32_t *flags, int *err) {
	struct txthread *t = calloc(1, sizeof *t);
	if (!t) {
		*err = ENOMEM;
		return NULL;
	}
	t->gso_fd = -1;
	t->fd = fd;
	t->prod = prod;
	t->cons = cons;
	t->flags = flags;
	t->state = TX_SLEEPING;
	*err = pthread_create(&t->thread, NULL, txthread_run, t);
	if (*err) {
		free(t);
		return NULL;
	}
	return t;
}

// txthread_gso gives the thread a GSO queue sending through gso_fd, before
// the first segment is queued. It returns 0 or an errno.
static void txthread_gso(struct txthread *t, int gso_fd, uint32_t *want) {
	for (int i = 0; i < GSO_SLOTS; i++)
		t->gso_iov[i][0] = (struct iovec){.iov_base = t->gso_hdr[i], .iov_len = VNET_HDR_LEN};
	t->want = want;
	__atomic_store_n(t->want, LOAD(t->prod), __ATOMIC_RELEASE);
	__atomic_store_n(&t->gso_fd, gso_fd, __ATOMIC_RELEASE);
}

static void txthread_stop(struct txthread *t) {
	__atomic_store_n(&t->state, TX_STOPPED, __ATOMIC_RELEASE);
	syscall(SYS_futex, &t->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pthread_join(t->thread, NULL);
	free(t);
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The states of txThread.state; C's TX_* enum.
const (
	txRunning  = C.TX_RUNNING
	txPending  = C.TX_PENDING
	txSleeping = C.TX_SLEEPING
	txStopped  = C.TX_STOPPED
)

// futexWakePrivate is FUTEX_WAKE|FUTEX_PRIVATE_FLAG.
const futexWakePrivate = C.FUTEX_WAKE_PRIVATE

// txThread is the Go side of one socket's tx thread. The C struct is in C
// memory, so the thread may keep it; the Go side reads and writes its words
// through atomics only.
type txThread struct {
	c      *C.struct_txthread
	state  *atomic.Uint32
	err    *atomic.Int32
	kicks  *atomic.Uint64
	sleeps *atomic.Uint64

	// The GSO queue, once startGSO gave it one (gso true); the Go side
	// writes want and gsoProd, and the slots, under the socket's txMu.
	// want is in Go memory, pinned while the thread runs, so that the
	// race detector sees the Go side's stores and loads of it (it does
	// not see atomics on C memory).
	gso                           bool
	want                          *atomic.Uint32
	pin                           runtime.Pinner
	gsoProd, gsoCons              *atomic.Uint32
	gsoSent, gsoLost, gsoDisorder *atomic.Uint64
	// The Go side of each slot: the pins on the segment's pieces, which
	// the C slot points to, and the reference that keeps them from being
	// reused; released (under txMu) counts the slots given back.
	slots    [gsoSlots]gsoSlot
	released uint32
}

type gsoSlot struct {
	pin   runtime.Pinner
	owner Releaser
}

// Releaser is what holds a segment's pieces for SendGSO: the netstack's
// packet buffer, whose reference SendGSO takes over.
type Releaser = interface{ DecRef() }

// The GSO queue's C constants.
const (
	gsoSlots  = C.GSO_SLOTS
	gsoIovecs = C.GSO_IOVS
)

// startTxThread starts a tx thread for the socket fd whose tx ring has
// these shared words; they must stay mapped until stop returns.
func startTxThread(fd int, prod, cons, flags *atomic.Uint32) (*txThread, error) {
	var cerr C.int
	c := C.txthread_start(C.int(fd), (*C.uint32_t)(unsafe.Pointer(prod)), (*C.uint32_t)(unsafe.Pointer(cons)), (*C.uint32_t)(unsafe.Pointer(flags)), &cerr)
	if c == nil {
		return nil, fmt.Errorf("tx thread: %w", syscall.Errno(cerr))
	}
	return &txThread{
		c:           c,
		state:       (*atomic.Uint32)(unsafe.Pointer(&c.state)),
		err:         (*atomic.Int32)(unsafe.Pointer(&c.err)),
		kicks:       (*atomic.Uint64)(unsafe.Pointer(&c.kicks)),
		sleeps:      (*atomic.Uint64)(unsafe.Pointer(&c.sleeps)),
		gsoProd:     (*atomic.Uint32)(unsafe.Pointer(&c.gso_prod)),
		gsoCons:     (*atomic.Uint32)(unsafe.Pointer(&c.gso_cons)),
		gsoSent:     (*atomic.Uint64)(unsafe.Pointer(&c.gso_sent)),
		gsoLost:     (*atomic.Uint64)(unsafe.Pointer(&c.gso_lost)),
		gsoDisorder: (*atomic.Uint64)(unsafe.Pointer(&c.gso_disorder)),
	}, nil
}

// startGSO gives the thread a GSO queue that sends through the AF_PACKET
// socket gsoFD, before any segment is queued.
func (t *txThread) startGSO(gsoFD int) {
	t.want = new(atomic.Uint32)
	t.pin.Pin(t.want)
	C.txthread_gso(t.c, C.int(gsoFD), (*C.uint32_t)(unsafe.Pointer(t.want)))
	t.gso = true
}

// gsoWaiting reports whether queued segments wait for the thread's send.
func (t *txThread) gsoWaiting() bool { return t.gso && t.gsoProd.Load() != t.gsoCons.Load() }

// releaseGSO gives back the pieces of the segments the thread has sent:
// unpinned, and their packets' references dropped. Under txMu.
func (t *txThread) releaseGSO() { t.releaseUpTo(t.gsoCons.Load()) }

func (t *txThread) releaseUpTo(end uint32) {
	for ; t.released != end; t.released++ {
		sl := &t.slots[t.released%gsoSlots]
		sl.pin.Unpin()
		sl.owner.DecRef()
		sl.owner = nil
	}
}

// gsoFull reports whether every slot holds a segment not yet given back.
func (t *txThread) gsoFull() bool { return t.gsoProd.Load()-t.released == gsoSlots }

// queueGSO queues a segment of the virtio_net_hdr h and the pieces bufs,
// which owner holds, to be sent after the tx ring's frames up to ring, and
// wakes the thread. There must be a free slot (gsoFull) and at most
// gsoIovecs-1 pieces.
func (t *txThread) queueGSO(h [vnetHdrLen]byte, bufs [][]byte, owner Releaser, ring uint32) {
	p := t.gsoProd.Load()
	i := p % gsoSlots
	sl := &t.slots[i]
	hdr := unsafe.Slice((*byte)(unsafe.Pointer(&t.c.gso_hdr[i][0])), vnetHdrLen)
	copy(hdr, h[:])
	iov := unsafe.Slice((*unix.Iovec)(unsafe.Pointer(&t.c.gso_iov[i][0])), gsoIovecs)
	n := 1 // iov[0] is the header
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		// Pinned, the piece may be pointed to from C memory; owner's
		// reference keeps the netstack from reusing it.
		sl.pin.Pin(&b[0])
		iov[n] = unix.Iovec{Base: &b[0]}
		iov[n].SetLen(len(b))
		n++
	}
	sl.owner = owner
	t.c.gso_iovcnt[i] = C.uint32_t(n)
	t.c.gso_ring[i] = C.uint32_t(ring)
	t.gsoProd.Store(p + 1)
	t.kick()
}

// awake reports whether the thread is kicking, or about to.
func (t *txThread) awake() bool {
	s := t.state.Load()
	return s == txRunning || s == txPending
}

// kick asks the thread to kick the ring, waking it if it sleeps. It makes
// a syscall only then.
func (t *txThread) kick() {
	for {
		switch s := t.state.Load(); s {
		case txPending, txStopped:
			return
		case txRunning:
			if t.state.CompareAndSwap(s, txPending) {
				return
			}
		case txSleeping:
			if t.state.CompareAndSwap(s, txPending) {
				unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(t.state)), futexWakePrivate, 1, 0, 0, 0)
				return
			}
		}
	}
}

// wakeup measures what a batch handed to the sleeping thread waits for:
// the time from a kick that finds it asleep to the thread taking the kick
// (pending to running), the median of n trials. Each trial waits for the
// thread to fall asleep and then 200 us more, so that a CPU left idle has
// gone idle (on a VM, a halted vCPU's wake-up is the dear part). A trial
// that takes over txWakeBound counts as that. The tx ring must be empty: the
// kicks then find nothing to send. 11 trials take about 3 ms where the
// thread wakes in 40 us.
func (t *txThread) wakeup(n int) time.Duration {
	samples := make([]time.Duration, 0, n)
	for len(samples) < n {
		for start := time.Now(); t.state.Load() != txSleeping; time.Sleep(50 * time.Microsecond) {
			if time.Since(start) > txWakeBound {
				return txWakeBound // it never sleeps
			}
		}
		time.Sleep(200 * time.Microsecond)
		start := time.Now()
		t.kick()
		for t.state.Load() == txPending && time.Since(start) < txWakeBound {
		}
		samples = append(samples, min(time.Since(start), txWakeBound))
	}
	slices.Sort(samples)
	return samples[n/2]
}

// txWakeBound is the longest wake-up wakeup measures: a thread that takes
// longer never ran beside the writer (the process has one CPU).
const txWakeBound = 10 * time.Millisecond

// error is the error that ended one of the thread's kicks, if any; the
// thread goes on kicking when asked.
func (t *txThread) error() error {
	if e := t.err.Swap(0); e != 0 {
		return syscall.Errno(e)
	}
	return nil
}

// stop ends the thread and waits for it.
func (t *txThread) stop() {
	C.txthread_stop(t.c)
	if t.gso {
		t.releaseUpTo(t.gsoProd.Load()) // sent or not
	}
	t.pin.Unpin()
}
