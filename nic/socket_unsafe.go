package nic

// Every unsafe line of the package lives here: the shared words of the rings
// are at kernel-given offsets in memory mapped from the socket.

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapRings maps the UMEM, registers it, sizes the four rings and maps them.
func (s *Socket) mapRings(frames, frameSize, ringSize int) error {
	umem, err := unix.Mmap(-1, 0, frames*frameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap UMEM of %d bytes: %w", frames*frameSize, err)
	}
	s.umem = umem
	s.mmaps = append(s.mmaps, umem)

	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&umem[0]))), Len: uint64(len(umem)), Size: uint32(frameSize)}
	if _, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0); errno != 0 {
		return fmt.Errorf("register UMEM: %w", errno)
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING, unix.XDP_TX_RING} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, opt, ringSize); err != nil {
			return fmt.Errorf("size ring (option %d) to %d: %w", opt, ringSize, err)
		}
	}

	var off unix.XDPMmapOffsets
	size := uint32(unsafe.Sizeof(off))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&size)), 0); errno != 0 {
		return fmt.Errorf("XDP_MMAP_OFFSETS: %w", errno)
	}

	const addrSize, descSize = uint64(unsafe.Sizeof(uint64(0))), uint64(unsafe.Sizeof(unix.XDPDesc{}))
	fill, err := s.mapRing(off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, ringSize, addrSize)
	if err != nil {
		return fmt.Errorf("map fill ring: %w", err)
	}
	comp, err := s.mapRing(off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, ringSize, addrSize)
	if err != nil {
		return fmt.Errorf("map completion ring: %w", err)
	}
	rx, err := s.mapRing(off.Rx, unix.XDP_PGOFF_RX_RING, ringSize, descSize)
	if err != nil {
		return fmt.Errorf("map rx ring: %w", err)
	}
	tx, err := s.mapRing(off.Tx, unix.XDP_PGOFF_TX_RING, ringSize, descSize)
	if err != nil {
		return fmt.Errorf("map tx ring: %w", err)
	}

	// In the fill and tx rings this process writes producer and the kernel
	// writes consumer; in the rx and completion rings the kernel writes
	// producer and this process writes consumer.
	s.fill = newProducerRing(word(fill, off.Fr.Producer), word(fill, off.Fr.Consumer), word(fill, off.Fr.Flags),
		unsafe.Slice((*uint64)(unsafe.Pointer(&fill[off.Fr.Desc])), ringSize))
	s.comp = newConsumerRing(word(comp, off.Cr.Producer), word(comp, off.Cr.Consumer), word(comp, off.Cr.Flags),
		unsafe.Slice((*uint64)(unsafe.Pointer(&comp[off.Cr.Desc])), ringSize))
	s.rx = newConsumerRing(word(rx, off.Rx.Producer), word(rx, off.Rx.Consumer), word(rx, off.Rx.Flags),
		unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&rx[off.Rx.Desc])), ringSize))
	s.tx = newProducerRing(word(tx, off.Tx.Producer), word(tx, off.Tx.Consumer), word(tx, off.Tx.Flags),
		unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&tx[off.Tx.Desc])), ringSize))
	return nil
}

func (s *Socket) mapRing(off unix.XDPRingOffset, pgoff int64, n int, descSize uint64) ([]byte, error) {
	m, err := unix.Mmap(s.fd, pgoff, int(off.Desc+uint64(n)*descSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	s.mmaps = append(s.mmaps, m)
	return m, nil
}

func word(m []byte, off uint64) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&m[off])) }

// options reads XDP_OPTIONS: whether the bind ended in zero-copy mode.
func (s *Socket) options() (zeroCopy bool, err error) {
	var opts struct{ Flags uint32 }
	size := uint32(unsafe.Sizeof(opts))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_OPTIONS,
		uintptr(unsafe.Pointer(&opts)), uintptr(unsafe.Pointer(&size)), 0); errno != 0 {
		return false, fmt.Errorf("XDP_OPTIONS: %w", errno)
	}
	return opts.Flags&unix.XDP_OPTIONS_ZEROCOPY != 0, nil
}

// statistics reads the kernel's XDP_STATISTICS for the socket.
func (s *Socket) statistics() (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	size := uint32(unsafe.Sizeof(st))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&size)), 0); errno != 0 {
		return st, fmt.Errorf("XDP_STATISTICS: %w", errno)
	}
	return st, nil
}

// kickTx asks the kernel to send what the tx ring holds: an empty sendto, as
// libxdp does. EAGAIN, EBUSY and ENOBUFS mean the kernel is busy sending and
// will come back to the ring; ENETDOWN means the link is down for now.
//
// A raw syscall, which the Go scheduler does not hear of: MSG_DONTWAIT
// never sleeps, and a syscall the scheduler knows of loses its P to another
// thread after 20 us, which in copy mode (the frames sent inside the call)
// is most kicks of a batch.
func (s *Socket) kickTx() error {
	_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.ENETDOWN:
		return nil
	}
	return fmt.Errorf("nic: queue %d: kick tx: %w", s.queue, errno)
}
