package irq

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sleeper is how a loop sleeps until its socket has frames.
type sleeper interface {
	// sleep returns when the descriptor may be readable, when timeout
	// (if not 0) has passed, or, with stopped, once close was called.
	sleep(timeout time.Duration) (stopped bool, err error)
	// close makes a sleep under way, and every later one, return stopped.
	// It may be called from any goroutine, once.
	close()
}

// netpoller sleeps in the Go runtime's netpoller, on a duplicate of the
// socket's descriptor, rather than in poll(2). A goroutine blocked in
// poll(2) keeps its thread and, for a while, its P: the runtime's sysmon
// takes the P back after 20 us, which keeps sysmon itself waking every
// 20 us, and the loop wakes without a P and waits for one. On this
// project's 2-vCPU VMs, where a context switch costs 10 to 25 us, that was
// 292 context switches and 150 sysmon sleeps per 5 MiB download against
// the kernel stack's 67 and 37. Parked in the netpoller, the loop's
// goroutine gives its P up at once and is woken like any other.
//
// Before parking it polls the socket once with a zero timeout, as a raw
// syscall: that is the readiness check, and it does what need_wakeup asks
// of poll(2) (it wakes a zero-copy driver for the fill ring and, in copy
// mode, sends what the tx ring holds).
type netpoller struct {
	f     *os.File
	rc    syscall.RawConn
	fds   [1]unix.PollFd
	zero  unix.Timespec         // pollNow's timeout
	ready func(fd uintptr) bool // n.check, bound once: a method value allocates
	err   error                 // what check saw, for sleep
	// closed is set before f is closed: RawConn's error for a closed
	// file is internal/poll's, which os does not export.
	closed atomic.Bool
}

func newNetpoller(fd int) (*netpoller, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	// The duplicate shares the open file with fd: the socket becomes
	// non-blocking for both, which its users never block on anyway.
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(dup), "xsk")
	// Only a file in the netpoller takes deadlines.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("the Go netpoller does not take the descriptor: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	n := &netpoller{f: f, rc: rc}
	n.fds[0] = unix.PollFd{Fd: int32(dup), Events: unix.POLLIN}
	n.ready = n.check
	return n, nil
}

func (n *netpoller) sleep(timeout time.Duration) (bool, error) {
	if timeout > 0 {
		n.f.SetReadDeadline(time.Now().Add(timeout))
	}
	n.err = nil
	err := n.rc.Read(n.ready)
	if timeout > 0 {
		n.f.SetReadDeadline(time.Time{})
	}
	switch {
	case n.closed.Load():
		return true, nil
	case err == nil:
		return false, n.err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false, nil
	}
	return false, err
}

// check is the netpoller's readiness test: poll(2) with a zero timeout.
// Run reads the ring itself; an error event ends its sleep and is
// reported.
func (n *netpoller) check(uintptr) bool {
	n.fds[0].Revents = 0
	got, errno := pollNow(n.fds[:], &n.zero)
	switch {
	case errno == unix.EINTR:
		return false
	case errno != 0:
		n.err = fmt.Errorf("poll: %w", errno)
		return true
	case got == 0:
		return false
	case n.fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0:
		n.err = fmt.Errorf("socket poll events %#x", n.fds[0].Revents)
	}
	return true
}

func (n *netpoller) close() {
	n.closed.Store(true)
	n.f.Close()
}
