// Package nic is xhttpd's user-space NIC driver: one AF_XDP socket per NIC
// queue, its UMEM, and the four rings it shares with the kernel (fill, rx,
// tx, completion). It owns bind negotiation (zero-copy first, copy mode as
// the fallback), need_wakeup, and the frame bookkeeping that lets the hot
// path run without heap allocation.
//
// It does not own the XDP program that steers frames to the sockets (package
// xdp), the loops that decide when to look at the rings (package irq), or
// what a frame means (package stack).
package nic

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/xhttpd/xhttpd/internal/enum"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// BindMode says how the socket asks for zero-copy.
type BindMode int

const (
	// BindAuto lets the kernel try zero-copy and fall back to copy mode.
	BindAuto BindMode = iota
	// BindZeroCopy fails when the driver cannot do zero-copy.
	BindZeroCopy
	// BindCopy always copies between the driver's buffers and the UMEM.
	BindCopy
)

var bindModeNames = []string{BindAuto: "auto", BindZeroCopy: "zerocopy", BindCopy: "copy"}

// ParseBindMode reads "auto", "zerocopy" or "copy".
func ParseBindMode(s string) (BindMode, error) {
	return enum.Parse[BindMode](bindModeNames, s, "bind mode")
}

func (m BindMode) String() string { return enum.Name(bindModeNames, m, "BindMode") }

// UnmarshalText is ParseBindMode, for flag.TextVar and configuration files.
func (m *BindMode) UnmarshalText(b []byte) error {
	return enum.Unmarshal(bindModeNames, b, "bind mode", m)
}

// MarshalText is the mode's name.
func (m BindMode) MarshalText() ([]byte, error) { return enum.Marshal(bindModeNames, m, "bind mode") }

// Config describes one socket.
type Config struct {
	Ifindex int
	Queue   int
	// Frames is the number of UMEM frames; half feed the fill ring, half
	// are for transmit. Each ring has Frames/2 slots. Default
	// DefaultFrames.
	Frames int
	// FrameSize is 2048 or 4096 bytes; default 2048, room for a 1500-byte
	// MTU frame.
	FrameSize int
	Bind      BindMode
	TxKicks   TxKicks
}

// TxKicks says who makes the syscall that has the kernel send the frames
// placed in the tx ring.
type TxKicks int

const (
	// TxKicksAuto is TxKicksThread in copy mode where the thread wakes
	// quickly or a kick is dear (txThreadPays), and TxKicksWriter
	// otherwise and in zero-copy mode, where a kick only wakes the
	// driver.
	TxKicksAuto TxKicks = iota
	// TxKicksThread hands batches to a thread of the socket's own
	// (txthread.go), except a small batch while that thread sleeps
	// (txHandOff).
	TxKicksThread
	// TxKicksWriter has whoever placed the frames kick at once.
	TxKicksWriter
)

var txKicksNames = []string{TxKicksAuto: "auto", TxKicksThread: "thread", TxKicksWriter: "writer"}

// ParseTxKicks reads "auto", "thread" or "writer".
func ParseTxKicks(s string) (TxKicks, error) { return enum.Parse[TxKicks](txKicksNames, s, "tx kicks") }

func (k TxKicks) String() string { return enum.Name(txKicksNames, k, "TxKicks") }

// UnmarshalText is ParseTxKicks, for flag.TextVar and configuration files.
func (k *TxKicks) UnmarshalText(b []byte) error {
	return enum.Unmarshal(txKicksNames, b, "tx kicks", k)
}

// MarshalText is the setting's name.
func (k TxKicks) MarshalText() ([]byte, error) { return enum.Marshal(txKicksNames, k, "tx kicks") }

// txThreadMinBatch is the smallest batch that wakes a sleeping tx thread,
// and the smallest round of received frames after which every batch goes
// to the thread. Waking the thread costs the writer a futex wake and
// delays the batch by the thread's wake-up (5 to 10 us here); kicking at
// once costs the writer the whole send, 3 to 4 us a frame on veth. A lone
// response of a frame or two to a lone request leaves at once, as it did
// before the thread. A larger batch, any batch while the thread is kicking
// anyway, and any batch while the queue receives rounds of several frames
// (a load, whose responses come in many small batches) are the thread's.
// Alternating runs on 1 KiB over 32 keep-alive connections: handing the
// thread only batches of 16 frames or more served 0.87x the requests of
// batches of 4 or more, and every batch 1.08x; but every batch at one
// connection cost it 0.87x its rate, its p50 41 to 52 us. Adding the
// rounds' test to batches of 4 or more: 1.00x at 32 connections, 1.06x
// at one (the rounds' test is what keeps a load's small batches off the
// writers when the thread naps between them).
const txThreadMinBatch = 4

// txHandOff says whether a batch of frames just placed in the tx ring goes
// to the tx thread, given whether the thread is awake and the frames the
// queue's last round received (rxRound).
func txHandOff(frames int, threadAwake bool, rxRound uint32) bool {
	return threadAwake || frames >= txThreadMinBatch || rxRound >= txThreadMinBatch
}

// DefaultFrames is the UMEM frames per socket unless told otherwise: rings
// of 8,192 slots, 32 MiB of UMEM with 2 KiB frames. The fill ring must hold
// every frame that can arrive between two rounds of the queue's loop: with
// rings of 2,048, a burst of 10,000 connects at once lost 7,588 SYNs to an
// empty fill ring, and the last connection waited 3.7 s for its SYN's
// retransmission; with 8,192, in a quiet run, none was lost and all were
// up within 1 s. A larger burst than the ring holds still depends on how
// fast the loop drains it.
const DefaultFrames = 16384

// MaxFrames bounds Frames: 2 GiB of UMEM per queue with 2 KiB frames, more
// than any burst needs.
const MaxFrames = 1 << 20

// CheckFrames reports whether n UMEM frames can make a socket: twice a power
// of two (each ring takes half), at least 4, at most MaxFrames.
func CheckFrames(n int) error {
	if half := n / 2; n%2 != 0 || half < 2 || half&(half-1) != 0 || n > MaxFrames {
		return fmt.Errorf("frames %d: want twice a power of two, 4 to %d", n, MaxFrames)
	}
	return nil
}

// DefaultFrameSize is the UMEM frame size Open uses unless told otherwise.
const DefaultFrameSize = 2048

// xdpPacketHeadroom is XDP_PACKET_HEADROOM: the kernel keeps this much of
// every frame in front of the packet it writes there.
const xdpPacketHeadroom = 256

// MaxMTU is the largest MTU whose frames, Ethernet header included, fit in
// a UMEM frame of frameSize bytes after the kernel's headroom; the kernel
// drops larger ones (rx_dropped).
func MaxMTU(frameSize int) int { return frameSize - xdpPacketHeadroom - 14 }

func (c *Config) setDefaults() error {
	if c.Frames == 0 {
		c.Frames = DefaultFrames
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.FrameSize != 2048 && c.FrameSize != 4096 {
		return fmt.Errorf("frame size %d: want 2048 or 4096", c.FrameSize)
	}
	if err := CheckFrames(c.Frames); err != nil {
		return err
	}
	return nil
}

// Socket is one AF_XDP socket bound to one NIC queue.
//
// Receive is for a single goroutine (the queue's loop); the transmit methods
// may be called from any goroutine and serialize on the socket's tx lock.
type Socket struct {
	fd        int
	queue     int
	zeroCopy  bool
	frameSize uint64
	umem      []byte
	mmaps     [][]byte

	fill   *producerRing[uint64]
	rx     *consumerRing[unix.XDPDesc]
	refill []uint64 // received frames not yet back in the fill ring
	batch  [][]byte // the frames of one Receive, reused
	// rxRound is how many frames the last Receive that found any took:
	// the load the tx thread's policy reads (txHandOff).
	rxRound atomic.Uint32
	// rxStamp is the XDP program's stamp of the last Receive's first
	// frame (RxStamp).
	rxStamp int64

	txMu     sync.Mutex
	tx       *producerRing[unix.XDPDesc]
	comp     *consumerRing[uint64]
	txFrames *freeFrames
	txIdx    uint32 // first slot of the batch between BeginTx and EndTx
	txN      uint32 // slots in that batch
	txSent   uint64 // frames placed in the tx ring, under txMu
	txDrops  uint64 // frames BeginTx could not place, under txMu
	// txKick is kickTx, the syscall that has the kernel send; the tests
	// that play the kernel replace it.
	txKick func() error
	// txThread kicks for the writers (TxKicks); nil when they kick.
	// txWake is its wake-up and txKickCost a writer's kick, when
	// TxKicksAuto measured them.
	txThread   *txThread
	txWake     time.Duration
	txKickCost time.Duration
	txKicks    uint64 // kicks by the writers, under txMu
	// gsoTx sends segments larger than a frame (SendGSO), through the tx
	// thread's queue when there is a thread; nil without AttachGSO.
	gsoTx *GSOTx
}

// Open creates a socket, registers its UMEM, maps its rings, hands every
// receive frame to the kernel through the fill ring, and binds it to the
// queue.
func Open(cfg Config) (*Socket, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("nic: queue %d: %w", cfg.Queue, err)
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("nic: queue %d: AF_XDP socket: %w", cfg.Queue, err)
	}
	s := &Socket{fd: fd, queue: cfg.Queue, frameSize: uint64(cfg.FrameSize)}
	s.txKick = s.kickTx
	if err := s.setup(cfg); err != nil {
		s.Close()
		return nil, fmt.Errorf("nic: queue %d: %w", cfg.Queue, err)
	}
	return s, nil
}

func (s *Socket) setup(cfg Config) error {
	half := cfg.Frames / 2
	if err := s.mapRings(cfg.Frames, cfg.FrameSize, half); err != nil {
		return err
	}
	// Frames [0, half) circulate between the fill and rx rings; frames
	// [half, Frames) between the tx and completion rings. Keeping them
	// apart means receive and transmit never contend for one allocator.
	idx, got := s.fill.Reserve(uint32(half))
	if got != uint32(half) {
		return fmt.Errorf("fill ring took %d of %d frames", got, half)
	}
	for i := uint32(0); i < got; i++ {
		s.fill.Set(idx+i, uint64(i)*s.frameSize)
	}
	s.fill.Submit()
	s.refill = make([]uint64, 0, half)
	s.batch = make([][]byte, 0, half)
	s.txFrames = newFreeFrames(uint64(half)*s.frameSize, half, s.frameSize)

	flags := uint16(unix.XDP_USE_NEED_WAKEUP)
	switch cfg.Bind {
	case BindZeroCopy:
		flags |= unix.XDP_ZEROCOPY
	case BindCopy:
		flags |= unix.XDP_COPY
	}
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(cfg.Ifindex), QueueID: uint32(cfg.Queue)}
	// EBUSY: another socket holds the queue. When that socket belonged to a
	// process that just died, the kernel frees it a moment later, from a
	// work queue; a restart should not fail for that.
	err := unix.Bind(s.fd, sa)
	for wait := 5 * time.Millisecond; errors.Is(err, unix.EBUSY) && wait < 2*time.Second; wait *= 2 {
		time.Sleep(wait)
		err = unix.Bind(s.fd, sa)
	}
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("bind ifindex %d: queue %d is taken by another AF_XDP socket: %w", cfg.Ifindex, cfg.Queue, err)
		}
		if errors.Is(err, unix.EOPNOTSUPP) && cfg.Bind == BindZeroCopy {
			drv := "the driver"
			if ifc, ierr := net.InterfaceByIndex(cfg.Ifindex); ierr == nil {
				if d, derr := Driver(ifc.Name); derr == nil {
					drv = fmt.Sprintf("%s's driver, %s,", ifc.Name, d)
				}
			}
			return fmt.Errorf("bind ifindex %d: %s has no zero-copy AF_XDP (-bind copy or auto serves it in copy mode): %w", cfg.Ifindex, drv, err)
		}
		return fmt.Errorf("bind ifindex %d: %w", cfg.Ifindex, err)
	}
	zc, err := s.options()
	if err != nil {
		return err
	}
	s.zeroCopy = zc
	if cfg.TxKicks == TxKicksThread || (cfg.TxKicks == TxKicksAuto && !zc) {
		t, err := startTxThread(s.fd, s.tx.producer, s.tx.consumer, s.tx.flags)
		if err != nil {
			return err
		}
		s.txThread = t
		if cfg.TxKicks == TxKicksAuto {
			s.txKickCost = s.kickCost(txKickTrials)
			s.txWake = t.wakeup(txWakeTrials)
			if !txThreadPays(s.txWake, s.txKickCost) {
				t.stop()
				s.txThread = nil
			}
		}
	}
	return nil
}

// txWakeTrials and txKickTrials are how many wake-ups of the tx thread
// and kicks of the empty ring TxKicksAuto times.
const (
	txWakeTrials = 11
	txKickTrials = 101
)

// txThreadMaxWake is the slowest wake-up of the tx thread at which
// TxKicksAuto keeps it whatever a kick costs. The thread pays where
// handing it a batch is cheap against the kick the writer would make
// itself: on the Intel machines (Firecracker), whose thread woke in 5 to
// 10 us, it took 32 keep-alive connections from 0.70x the kernel stack's
// rate to 0.86x. On an AMD machine under Firecracker (its halted vCPUs
// waking in 30 to 70 us, a 1-CPU process never, as the measuring writer
// holds the CPU) the writers' own kicks served 1.21x the thread's
// requests at 0.88x its CPU, and more at one connection and at a new
// connection per request (docs/measured.md, "Who kicks").
const txThreadMaxWake = 20 * time.Microsecond

// txThreadMinKick is the cheapest kick of the empty ring at which
// TxKicksAuto keeps the thread however slowly it wakes. Where
// entering the kernel is dear, the writer's kick, which in copy mode sends
// the frames inside it (on veth, the peer's receive too), costs the one P
// more than the thread's wake-ups do: on an AMD machine in a PVM guest
// (PTI, a null syscall 1.16 us against 0.15 us under Firecracker; an empty
// kick 1.4 to 1.5 us; the thread woke in 85 to 95 us) the writers served
// 0.61x to 0.88x the thread's new connections a second at up to 1.55x the
// CPU, the same keep-alive requests, and 1.09x the 64 KiB responses and
// lone downloads (docs/measured.md, "Who kicks").
const txThreadMinKick = 700 * time.Nanosecond

// txThreadPays says whether TxKicksAuto keeps the tx thread, given its
// measured wake-up and the measured cost of a writer's kick. A thread that
// never woke within txWakeBound never runs beside the writers.
func txThreadPays(wake, kick time.Duration) bool {
	return wake <= txThreadMaxWake || (kick >= txThreadMinKick && wake < txWakeBound)
}

// kickCost measures what a writer's kick costs where the kernel finds
// nothing to send: the median of n kicks of the empty tx ring, each a
// kernel entry and the socket's mutex.
func (s *Socket) kickCost(n int) time.Duration {
	samples := make([]time.Duration, n)
	for i := range samples {
		start := time.Now()
		s.txKick()
		samples[i] = time.Since(start)
	}
	slices.Sort(samples)
	return samples[n/2]
}

// TxThread reports whether a thread of the socket's own kicks its tx ring
// (Config.TxKicks).
func (s *Socket) TxThread() bool { return s.txThread != nil }

// TxThreadWake is the tx thread's wake-up as TxKicksAuto measured it, or 0
// when it was not measured (other settings, zero-copy mode).
func (s *Socket) TxThreadWake() time.Duration { return s.txWake }

// TxKickCost is a writer's kick of the empty tx ring as TxKicksAuto
// measured it, or 0 when it was not measured.
func (s *Socket) TxKickCost() time.Duration { return s.txKickCost }

// FD is the socket's file descriptor, for the XSKMAP and for sleeping on.
func (s *Socket) FD() int { return s.fd }

// Queue is the NIC queue the socket is bound to.
func (s *Socket) Queue() int { return s.queue }

// ZeroCopy reports whether the driver bound the socket in zero-copy mode.
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// Receive hands up to budget received frames to deliver, in one call, and
// then gives the frames back to the kernel through the fill ring. deliver
// must copy what it keeps: the bytes are reused as soon as it returns, and
// so is the slice. Receive returns the number of frames delivered. It is
// for one goroutine.
func (s *Socket) Receive(budget int, deliver func(frames [][]byte)) int {
	idx, got := s.rx.Peek(uint32(budget))
	if got == 0 {
		s.Refill()
		return 0
	}
	s.rxRound.Store(got)
	s.rxStamp = s.stamp(s.rx.Get(idx).Addr)
	s.batch = s.batch[:0]
	for i := uint32(0); i < got; i++ {
		d := s.rx.Get(idx + i)
		s.batch = append(s.batch, s.umem[d.Addr:d.Addr+uint64(d.Len)])
		s.refill = append(s.refill, d.Addr&^(s.frameSize-1))
	}
	deliver(s.batch)
	clear(s.batch) // hold no view of the UMEM between rounds
	s.rx.Release()
	s.Refill()
	return int(got)
}

// stampLen is the length of the stamp the XDP program writes in a frame's
// metadata, just before its data (xdp/steer.c, stamp).
const stampLen = 8

// RxStamp is when the XDP program steered the first frame of the last
// Receive that found any, in CLOCK_MONOTONIC nanoseconds: how long the
// frames of a round waited in the rx ring is the clock at pickup minus
// this. A frame with no stamp (a driver without room for XDP metadata)
// holds whatever its headroom held before, zeros from mmap or an older
// frame's stamp: the caller takes a stamp later than its clock, or older
// than it can be, for none. Only the loop's goroutine may call it.
func (s *Socket) RxStamp() int64 { return s.rxStamp }

// stamp reads the stamp before the frame at addr, or 0 when the frame has
// no room before it.
func (s *Socket) stamp(addr uint64) int64 {
	if addr&(s.frameSize-1) < stampLen {
		return 0
	}
	return int64(binary.NativeEndian.Uint64(s.umem[addr-stampLen : addr]))
}

// Refill moves received frames back to the fill ring and reports how many
// are still waiting for room there. The kernel publishes the rx producer
// index just before the fill consumer index (xsk_flush), so for a moment
// the rx ring can hold frames whose fill slots do not look free yet; those
// wait here, in a slice that never grows past the receive frames.
func (s *Socket) Refill() (waiting int) {
	if len(s.refill) == 0 {
		return 0
	}
	idx, got := s.fill.Reserve(uint32(len(s.refill)))
	for i := uint32(0); i < got; i++ {
		s.fill.Set(idx+i, s.refill[i])
	}
	if got > 0 {
		s.fill.Submit()
		s.refill = s.refill[:copy(s.refill, s.refill[got:])]
	}
	return len(s.refill)
}

// FillNeedsWakeup reports whether the driver waits for a syscall before it
// takes more fill ring entries (need_wakeup). A loop that never sleeps in
// poll(2) must then call WakeRx.
func (s *Socket) FillNeedsWakeup() bool { return s.fill.NeedWakeup() }

// WakeRx is the syscall need_wakeup asks for on the receive side: an empty,
// non-blocking recvfrom(2), as libxdp does it.
func (s *Socket) WakeRx() error {
	_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case 0, unix.EAGAIN, unix.EBUSY, unix.ENETDOWN:
		return nil
	}
	return fmt.Errorf("nic: queue %d: wake rx: %w", s.queue, errno)
}

// Service is the transmit-side work a queue's loop does every round: it
// reclaims the frames the kernel has sent and the GSO segments the tx
// thread has, and, if frames wait in the tx ring and the kernel asks for
// it, kicks the kernel again (an earlier kick may have found it busy).
func (s *Socket) Service() error {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	s.reapCompletions()
	if t := s.txThread; t != nil && t.gso {
		t.releaseGSO()
	}
	if s.tx.Pending() {
		return s.flushTx(0)
	}
	return nil
}

// TxPending reports whether frames wait in the tx ring for the kernel to
// send them: a kick can find the kernel busy (in copy mode it sends a
// limited batch per syscall), and then someone must kick again.
func (s *Socket) TxPending() bool {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	return s.tx.Pending()
}

// SetBusyPoll asks the kernel to busy-poll the driver's queue when this
// socket is polled (SO_PREFER_BUSY_POLL, SO_BUSY_POLL for usecs, and
// SO_BUSY_POLL_BUDGET), for loops that poll instead of sleeping. Drivers
// without NAPI busy polling ignore it; an error means the kernel refused the
// options, and the socket works as before.
func (s *Socket) SetBusyPoll(usecs, budget int) error {
	for _, o := range []struct{ opt, val int }{
		{unix.SO_PREFER_BUSY_POLL, 1},
		{unix.SO_BUSY_POLL, usecs},
		{unix.SO_BUSY_POLL_BUDGET, budget},
	} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, o.opt, o.val); err != nil {
			return fmt.Errorf("nic: queue %d: busy-poll socket option %d: %w", s.queue, o.opt, err)
		}
	}
	return nil
}

// BeginTx locks the transmit side, reclaims completed frames and reserves
// up to n tx slots with a frame each. It returns how many it reserved, which
// is less than n when the ring or the frames run out; the rest count as
// drops. Write each frame with TxFrame and SetTxLen, then call EndTx.
func (s *Socket) BeginTx(n int) int {
	s.txMu.Lock()
	s.reapCompletions()
	want := min(uint32(n), uint32(s.txFrames.Len()))
	idx, got := s.tx.Reserve(want)
	for i := uint32(0); i < got; i++ {
		addr, _ := s.txFrames.Alloc()
		s.tx.Set(idx+i, unix.XDPDesc{Addr: addr})
	}
	s.txIdx, s.txN = idx, got
	s.txSent += uint64(got)
	s.txDrops += uint64(uint32(n) - got)
	return int(got)
}

// TxFrame is the buffer of the i-th frame reserved by BeginTx.
func (s *Socket) TxFrame(i int) []byte {
	addr := s.tx.Get(s.txIdx + uint32(i)).Addr
	return s.umem[addr : addr+s.frameSize]
}

// SetTxLen sets the length of the i-th frame reserved by BeginTx.
func (s *Socket) SetTxLen(i, n int) { s.tx.Get(s.txIdx + uint32(i)).Len = uint32(n) }

// EndTx publishes the batch, has the kernel send it, and unlocks the
// transmit side.
func (s *Socket) EndTx() error {
	defer s.txMu.Unlock()
	if s.txN == 0 {
		return nil
	}
	n := s.txN
	s.txN = 0
	return s.flushTx(int(n))
}

// publishTx makes the frames placed in the tx ring visible to the kernel
// and reports false, unless GSO segments wait in the tx thread's queue:
// then the frames must not overtake them, the thread publishes them after
// the segments (want), and publishTx reports true. want is stored before
// the queue is looked at, so that a thread emptying the queue meanwhile
// either reads it or is seen to be done; and the caller then kicks the
// thread, which makes it look at want again. Called with txMu held.
func (s *Socket) publishTx() (threadPublishes bool) {
	t := s.txThread
	if t == nil || !t.gso {
		s.tx.Submit()
		return false
	}
	t.want.Store(s.tx.cachedProd)
	if t.gsoWaiting() {
		return true
	}
	s.tx.SubmitForward()
	return false
}

// flushTx publishes the frames placed in the tx ring (publishTx) and has
// the kernel send what the ring holds, after a batch of frames placed
// there (none when the loop services the ring): through the tx thread
// when it takes the batch (txHandOff) or publishes it, or else at once
// (kickNow). Called with txMu held.
func (s *Socket) flushTx(frames int) error {
	threadPublishes := s.publishTx()
	t := s.txThread
	if t == nil {
		return s.kickNow()
	}
	if !threadPublishes && !txHandOff(frames, t.awake(), s.rxRound.Load()) {
		return s.kickNow()
	}
	t.kick()
	if err := t.error(); err != nil {
		return fmt.Errorf("nic: queue %d: kick tx (tx thread): %w", s.queue, err)
	}
	return nil
}

// AttachGSO has the socket send segments larger than a frame (SendGSO)
// through g, which it then owns: Close closes it. With a tx thread, the
// thread sends them.
func (s *Socket) AttachGSO(g *GSOTx) {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	if t := s.txThread; t != nil {
		t.startGSO(g.fd)
	}
	s.gsoTx = g
}

// SendGSO sends one Ethernet frame holding a TCP segment of more than mss
// bytes of payload, as GSOTx.SendGSO does, after every frame placed in the
// tx ring before it and before every frame placed after it: a flow's
// packets leave in their order. The pieces, bufs, are owner's, and SendGSO
// takes over one reference to it, which it drops once it is done with
// them, error or not.
//
// With a tx thread, the segment goes to the thread's queue and the thread
// sends it (send_gso in txthread.go), straight from the pieces, pinned
// until then: the send, which on veth runs the peer's receive of every
// frame, was three quarters of the netstack's thread's time under 32
// connections fetching 64 KiB (docs/profiles/intel-64k-148b209.*). When
// the queue is full the caller waits for a slot. Without a thread, for a
// segment in more pieces than a slot holds, and when the queue is quiet
// (gsoHandOff), the caller kicks the ring until the kernel has taken
// every frame in it, and sends the segment itself, holding the transmit
// side meanwhile. SendGSO may be called from any goroutine.
func (s *Socket) SendGSO(v6 bool, hdrLen, mss, csumStart, csumOffset int, bufs [][]byte, owner Releaser) error {
	defer func() {
		if owner != nil {
			owner.DecRef()
		}
	}()
	g := s.gsoTx
	if g == nil {
		return fmt.Errorf("nic: queue %d: no GSO sender", s.queue)
	}
	s.txMu.Lock()
	t := s.txThread
	if t != nil && t.gso {
		t.releaseGSO()
		if pieces(bufs) < gsoIovecs && gsoHandOff(t.awake() || t.gsoWaiting(), s.rxRound.Load()) {
			for spins := 0; t.gsoFull(); spins++ {
				if spins < 16 {
					runtime.Gosched()
				} else {
					time.Sleep(20 * time.Microsecond)
				}
				t.releaseGSO()
			}
			t.queueGSO(vnetHeader(v6, hdrLen, mss, csumStart, csumOffset), bufs, owner, s.tx.cachedProd)
			owner = nil // the slot's now
			err := t.error()
			s.txMu.Unlock()
			if err != nil {
				return fmt.Errorf("nic: queue %d: kick tx (tx thread): %w", s.queue, err)
			}
			return nil
		}
		// The writer's to send, after the segments queued before it and
		// the frames the thread would have published after them.
		for t.gsoWaiting() {
			runtime.Gosched()
		}
		t.releaseGSO()
		s.tx.SubmitForward()
	}
	// Under txMu: the frames placed after the segment wait for it, and
	// GSOTx takes one sender at a time.
	defer s.txMu.Unlock()
	if err := s.drainTx(); err != nil {
		return err
	}
	return g.SendGSO(v6, hdrLen, mss, csumStart, csumOffset, bufs)
}

// gsoHandOff says whether a GSO segment goes to the tx thread, given
// whether the thread is awake or has segments queued (busy), and the frames
// the queue's last round received (rxRound). As with txHandOff's frames, a
// segment to a quiet queue leaves at once, on its writer's goroutine: a
// single download's segments each waited for the sleeping thread's
// wake-up, and one 1 MiB download ran at 0.87x the rate of a build that
// sent every segment on its writer (452 against 519 MB/s, 30 each,
// alternating).
func gsoHandOff(busy bool, rxRound uint32) bool {
	return busy || rxRound >= txThreadMinBatch
}

// pieces counts the non-empty slices of bufs.
func pieces(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		if len(b) > 0 {
			n++
		}
	}
	return n
}

// drainTx kicks on the caller's goroutine, whether or not the tx thread
// was to, until the kernel has taken every frame in the ring: a packet the
// caller sends next by other means cannot overtake them. A sendto(2) of
// the thread's under way makes it wait for that one (the kernel's
// xs->mutex). Called with txMu held.
func (s *Socket) drainTx() error {
	if !s.tx.Pending() {
		return nil
	}
	return s.kickNow()
}

// kickNow kicks the kernel while the tx ring asks for it, until the kernel
// has taken every frame or a kick takes none. In copy mode a kick sends at
// most a budget of frames (32 unless XDP_MAX_TX_SKB_BUDGET raised it) and
// returns, so a batch larger than that needs several; in zero-copy mode a
// kick only wakes the driver, which sends on its own. Called with txMu
// held.
func (s *Socket) kickNow() error {
	for s.tx.NeedWakeup() {
		s.txKicks++
		before := s.tx.consumer.Load()
		if err := s.txKick(); err != nil {
			return err
		}
		if !s.tx.Pending() || s.tx.consumer.Load() == before {
			return nil
		}
	}
	return nil
}

// reapCompletions returns the frames the kernel has finished sending.
// Called with txMu held.
func (s *Socket) reapCompletions() {
	idx, got := s.comp.Peek(s.comp.Size())
	for i := uint32(0); i < got; i++ {
		s.txFrames.Free(s.comp.Get(idx + i))
	}
	if got > 0 {
		s.comp.Release()
	}
}

// Stats is what a socket has counted, its own and the kernel's.
type Stats struct {
	unix.XDPStatistics
	TxFrames uint64 // frames placed in the tx ring
	TxDrops  uint64 // frames not sent for want of a tx slot or frame
	// Kicks of the tx ring (sendto(2) calls) by the writers and by the tx
	// thread, and the tx thread's naps: one wake-up each.
	TxKicks, TxThreadKicks, TxThreadSleeps uint64
	// GSO segments the tx thread sent, those the kernel refused, and
	// those it sent out of order with the tx ring's frames: before some
	// frames placed ahead of them had left (the kernel took none for a
	// long while: a link down) or after frames placed behind them were
	// published (a bug).
	TxGSOSent, TxGSOLost, TxGSODisorder uint64
}

// Stats reads the kernel's XDP_STATISTICS and the socket's own counters.
func (s *Socket) Stats() (Stats, error) {
	st, err := s.statistics()
	if err != nil {
		return Stats{}, fmt.Errorf("nic: queue %d: %w", s.queue, err)
	}
	s.txMu.Lock()
	out := Stats{XDPStatistics: st, TxFrames: s.txSent, TxDrops: s.txDrops, TxKicks: s.txKicks}
	if t := s.txThread; t != nil {
		out.TxThreadKicks, out.TxThreadSleeps = t.kicks.Load(), t.sleeps.Load()
		out.TxGSOSent, out.TxGSOLost, out.TxGSODisorder = t.gsoSent.Load(), t.gsoLost.Load(), t.gsoDisorder.Load()
	}
	s.txMu.Unlock()
	return out, nil
}

// Close unmaps the rings and the UMEM and closes the socket. The socket must
// be out of any XSKMAP and no goroutine may be using it.
func (s *Socket) Close() error {
	var errs []error
	s.txMu.Lock() // the thread ends before the sockets and the ring it kicks
	if s.txThread != nil {
		s.txThread.stop()
		s.txThread = nil
	}
	if s.gsoTx != nil {
		errs = append(errs, s.gsoTx.Close())
		s.gsoTx = nil
	}
	s.txMu.Unlock()
	if s.fd >= 0 {
		errs = append(errs, unix.Close(s.fd))
		s.fd = -1
	}
	for _, m := range s.mmaps {
		errs = append(errs, unix.Munmap(m))
	}
	s.mmaps = nil
	return errors.Join(errs...)
}
