package nic

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// GSOTx sends TCP segments larger than one frame whole, for the kernel to
// cut into frames: through the interface's TSO when it has one, and its
// software GSO otherwise. AF_XDP has no such offload (each of its
// descriptors is one frame on the wire), so a 64 KiB response over AF_XDP
// alone is 45 frames, each a trip through the driver; on veth in copy mode,
// each is an sk_buff through the peer's whole receive path. GSOTx is an
// AF_PACKET socket that receives nothing (protocol 0), bound to the
// interface, with a virtio_net_hdr before each packet (PACKET_VNET_HDR,
// the contract of tap devices and virtio). It goes through the interface's
// qdisc: PACKET_QDISC_BYPASS would skip it, but its __dev_direct_xmit
// drops a packet that validate_xmit_skb had to segment (writev fails with
// ENOBUFS), as it must on a veth whose peer runs an XDP program.
//
// One goroutine at a time may call SendGSO: its iovec array is reused. The
// socket blocks: when the qdisc or the socket's send buffer is full, the
// writer waits, as a kernel socket's writer would.
type GSOTx struct {
	fd  int
	hdr [vnetHdrLen]byte
	iov []unix.Iovec
	msg unix.Msghdr
}

// vnetHdrLen is struct virtio_net_hdr without num_buffers.
const vnetHdrLen = 10

// virtio_net_hdr values (include/uapi/linux/virtio_net.h).
const (
	vnetNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnetGSOTCPv4  = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	vnetGSOTCPv6  = 4 // VIRTIO_NET_HDR_GSO_TCPV6
)

// maxIovecs bounds the pieces of one segment, the header included: the
// kernel's UIO_MAXIOV.
const maxIovecs = 1024

// OpenGSOTx opens the socket on the interface with index ifindex.
func OpenGSOTx(ifindex int) (*GSOTx, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("gso tx: AF_PACKET socket: %w", err)
	}
	t := &GSOTx{fd: fd, iov: make([]unix.Iovec, 0, 64)}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("gso tx: PACKET_VNET_HDR: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("gso tx: bind to ifindex %d: %w", ifindex, err)
	}
	return t, nil
}

// SendGSO writes one Ethernet frame carrying a TCP segment of more than
// mss bytes of payload, made of the pieces in bufs, in one sendmsg(2). The
// frame's headers take hdrLen bytes, its TCP header starts at csumStart and
// holds the pseudo-header's checksum at csumStart+csumOffset; the kernel
// cuts the payload into mss-sized frames, with their own headers and full
// checksums, as it does its own TCP's.
func (t *GSOTx) SendGSO(v6 bool, hdrLen, mss, csumStart, csumOffset int, bufs [][]byte) error {
	if len(bufs) > maxIovecs-1 {
		return fmt.Errorf("gso tx: segment in %d pieces, more than %d", len(bufs), maxIovecs-1)
	}
	t.hdr = vnetHeader(v6, hdrLen, mss, csumStart, csumOffset)
	t.iov = append(t.iov[:0], unix.Iovec{Base: &t.hdr[0], Len: vnetHdrLen})
	for _, b := range bufs {
		if len(b) > 0 {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			t.iov = append(t.iov, v)
		}
	}
	// First without blocking and without telling the Go scheduler: a
	// send that blocks no one is better off keeping its P, since the
	// scheduler hands the P of a syscall longer than 20 us to another
	// thread, and on veth this one runs the peer's receive of every frame
	// (about half of sysmon's wake-ups and the thread hand-offs they cause
	// in a CPU profile of one large download). Only a full queue makes the
	// writer wait, in a syscall the scheduler knows of.
	t.msg.Iov = &t.iov[0]
	t.msg.SetIovlen(len(t.iov))
	_, _, e := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(t.fd), uintptr(unsafe.Pointer(&t.msg)), unix.MSG_DONTWAIT)
	if e == unix.EAGAIN || e == unix.ENOBUFS {
		_, _, e = unix.Syscall(unix.SYS_SENDMSG, uintptr(t.fd), uintptr(unsafe.Pointer(&t.msg)), 0)
	}
	t.msg.Iov = nil
	clear(t.iov) // the pieces are the netstack's: hold no pointer to them
	if e != 0 {
		return fmt.Errorf("gso tx: writev: %w", e)
	}
	return nil
}

// vnetHeader is the virtio_net_hdr before a segment SendGSO sends.
func vnetHeader(v6 bool, hdrLen, mss, csumStart, csumOffset int) [vnetHdrLen]byte {
	var h [vnetHdrLen]byte
	h[0] = vnetNeedsCsum
	h[1] = vnetGSOTCPv4
	if v6 {
		h[1] = vnetGSOTCPv6
	}
	binary.NativeEndian.PutUint16(h[2:], uint16(hdrLen))
	binary.NativeEndian.PutUint16(h[4:], uint16(mss))
	binary.NativeEndian.PutUint16(h[6:], uint16(csumStart))
	binary.NativeEndian.PutUint16(h[8:], uint16(csumOffset))
	return h
}

// Close closes the socket.
func (t *GSOTx) Close() error { return unix.Close(t.fd) }
