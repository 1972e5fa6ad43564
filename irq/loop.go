// Package irq runs one loop per NIC queue that moves received frames from
// the queue's AF_XDP socket into the netstack, and decides how the loop
// waits for work: by sleeping until the kernel signals (interrupt), and, in
// later modes, by spinning or by switching between the two as NAPI does.
//
// It owns the waiting and the per-queue loop counters. It does not own the
// rings (package nic) or what a frame means (the deliver function it is
// given).
package irq

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/nic"
)

// Mode is how a loop waits for frames.
type Mode int

const (
	// Interrupt sleeps in poll(2) until the socket has frames: no CPU while
	// idle, a wake-up's latency on every burst.
	Interrupt Mode = iota
)

func (m Mode) String() string {
	switch m {
	case Interrupt:
		return "interrupt"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode reads a -mode flag.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "interrupt":
		return Interrupt, nil
	}
	return 0, fmt.Errorf("mode %q: want interrupt", s)
}

// DefaultBudget is the most frames a loop takes from the rx ring in one
// round, NAPI's default weight.
const DefaultBudget = 64

// Loop moves frames from one socket to a deliver function.
type Loop struct {
	sock    *nic.Socket
	deliver func(frame []byte)
	mode    Mode
	budget  int
	stopFD  int           // eventfd: written by Stop, polled with the socket
	done    chan struct{} // closed when Run returns

	wakeups atomic.Uint64
	frames  atomic.Uint64
	rounds  atomic.Uint64
}

// New makes a loop for sock. deliver gets every received frame and must copy
// what it keeps.
func New(sock *nic.Socket, mode Mode, budget int, deliver func(frame []byte)) (*Loop, error) {
	if budget <= 0 {
		return nil, fmt.Errorf("irq: budget %d: want > 0", budget)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("irq: queue %d: eventfd: %w", sock.Queue(), err)
	}
	return &Loop{sock: sock, deliver: deliver, mode: mode, budget: budget, stopFD: efd, done: make(chan struct{})}, nil
}

// Run processes frames until Stop. It returns nil after Stop, or the error
// that stopped it.
func (l *Loop) Run() error {
	defer close(l.done)
	fds := []unix.PollFd{
		{Fd: int32(l.sock.FD()), Events: unix.POLLIN},
		{Fd: int32(l.stopFD), Events: unix.POLLIN},
	}
	for {
		for {
			n := l.sock.Receive(l.budget, l.deliver)
			if n == 0 {
				break
			}
			l.rounds.Add(1)
			l.frames.Add(uint64(n))
		}
		// poll(2) on an AF_XDP socket also does what need_wakeup asks: it
		// wakes the driver to take fill ring entries and, in copy mode,
		// sends what the tx ring holds. It returns at once if frames
		// arrived since the ring was last found empty. Frames still
		// waiting for the fill ring must not wait for traffic that may
		// need them to arrive, so then the sleep is short.
		timeout := -1
		if l.sock.Refill() > 0 {
			timeout = 1
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		_, err := unix.Poll(fds, timeout)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("irq: queue %d: poll: %w", l.sock.Queue(), err)
		}
		l.wakeups.Add(1)
		if fds[1].Revents != 0 {
			return nil
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			return fmt.Errorf("irq: queue %d: socket poll events %#x", l.sock.Queue(), fds[0].Revents)
		}
	}
}

// Stop makes Run return, waits for it, and releases the loop. Run must have
// been started; Stop may be called once, from any goroutine.
func (l *Loop) Stop() {
	one := [8]byte{1} // an eventfd counter increment of 1, little-endian
	unix.Write(l.stopFD, one[:])
	<-l.done
	unix.Close(l.stopFD)
}

// Stats is what a loop has counted.
type Stats struct {
	Mode    Mode
	Wakeups uint64 // returns from poll(2)
	Rounds  uint64 // non-empty passes over the rx ring
	Frames  uint64 // frames delivered
}

// Stats reads the loop's counters.
func (l *Loop) Stats() Stats {
	return Stats{Mode: l.mode, Wakeups: l.wakeups.Load(), Rounds: l.rounds.Load(), Frames: l.frames.Load()}
}
