//go:build linux

package xdp

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/testbed"
)

// testXSK is the least AF_XDP socket the kernel lets into an XSKMAP: a
// UMEM with fill and completion rings and an rx ring, bound in copy mode.
// Its rings are never mapped; the steering tests only need the redirect
// verdict, not the frames (package nic owns the real thing).
type testXSK struct {
	fd   int
	umem []byte
}

const (
	testFrameSize  = 4096
	testFrames     = 16
	testRingFrames = 16
)

// newUnboundXSK creates the socket and its UMEM without binding it.
func newUnboundXSK() (*testXSK, error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket(AF_XDP): %w", err)
	}
	x := &testXSK{fd: fd}
	x.umem, err = unix.Mmap(-1, 0, testFrames*testFrameSize,
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("mmap umem: %w", err)
	}
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&x.umem[0]))),
		Len:  uint64(len(x.umem)),
		Size: testFrameSize,
	}
	// x/sys/unix has no typed setsockopt for struct xdp_umem_reg.
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0)
	if errno != 0 {
		x.Close()
		return nil, fmt.Errorf("setsockopt(XDP_UMEM_REG): %w", errno)
	}
	for _, opt := range []struct {
		name string
		opt  int
	}{
		{"XDP_UMEM_FILL_RING", unix.XDP_UMEM_FILL_RING},
		{"XDP_UMEM_COMPLETION_RING", unix.XDP_UMEM_COMPLETION_RING},
		{"XDP_RX_RING", unix.XDP_RX_RING},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt.opt, testRingFrames); err != nil {
			x.Close()
			return nil, fmt.Errorf("setsockopt(%s): %w", opt.name, err)
		}
	}
	return x, nil
}

// newXSK creates a socket bound to queue of ifindex in copy mode. Call it
// in the interface's namespace.
func newXSK(ifindex, queue int) (*testXSK, error) {
	x, err := newUnboundXSK()
	if err != nil {
		return nil, err
	}
	sa := &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(ifindex), QueueID: uint32(queue)}
	if err := unix.Bind(x.fd, sa); err != nil {
		x.Close()
		return nil, fmt.Errorf("bind AF_XDP socket to ifindex %d queue %d: %w", ifindex, queue, err)
	}
	return x, nil
}

func (x *testXSK) Close() {
	if x.fd >= 0 {
		unix.Close(x.fd)
		x.fd = -1
	}
	if x.umem != nil {
		unix.Munmap(x.umem)
		x.umem = nil
	}
}

// newTestXSK is newXSK in ns, closed when the test ends.
func newTestXSK(t *testing.T, ns netns.NsHandle, ifindex, queue int) *testXSK {
	t.Helper()
	var x *testXSK
	err := testbed.InNamespace(ns, func() error {
		var err error
		x, err = newXSK(ifindex, queue)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)
	return x
}

// stats reads the socket's XDP_STATISTICS.
func (x *testXSK) stats() (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	size := uint32(unsafe.Sizeof(st))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(x.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return st, fmt.Errorf("getsockopt(XDP_STATISTICS): %w", errno)
	}
	return st, nil
}
