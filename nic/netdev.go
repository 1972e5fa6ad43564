package nic

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The netdev generic-netlink family (Linux 6.3+): what the kernel says of a
// device's XDP, its NAPI instances and its queues. Numbers from the kernel's
// Documentation/netlink/specs/netdev.yaml (include/uapi/linux/netdev.h).
// Reads live here; the one write, napi-set, is napiset.go's.
const (
	netdevFamily  = "netdev"
	netdevVersion = 1

	netdevCmdDevGet   = 1
	netdevCmdQueueGet = 10
	netdevCmdNAPIGet  = 11

	netdevADevIfindex          = 1
	netdevADevXDPFeatures      = 3 // u64, xdp-act flags
	netdevADevXDPZCMaxSegs     = 4 // u32
	netdevADevXDPRxMetadata    = 5 // u64, xdp-rx-metadata flags
	netdevADevXSKFeatures      = 6 // u64, xsk-flags
	netdevANAPIIfindex         = 1
	netdevANAPIID              = 2
	netdevANAPIIRQ             = 3
	netdevANAPIPID             = 4
	netdevANAPIDeferHardIRQs   = 5 // u32
	netdevANAPIGROFlushTimeout = 6 // uint, ns
	netdevANAPIIRQSuspend      = 7 // uint, ns (Linux 6.13+)
	netdevANAPIThreaded        = 8 // u32 (Linux 6.17+)
	netdevAQueueID             = 1
	netdevAQueueIfindex        = 2
	netdevAQueueType           = 3 // 0 rx, 1 tx
	netdevAQueueNAPIID         = 4

	nlaTypeMask = 0x3fff // the type without NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

// XDPFeatures is the netdev family's xdp-features: what the driver does
// natively. Zero means no native XDP: the kernel's generic XDP still works,
// after the socket buffer is built.
type XDPFeatures uint64

const (
	XDPBasic       XDPFeatures = 1 << iota // XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX
	XDPRedirect                            // XDP_REDIRECT, which AF_XDP needs
	XDPNdoXmit                             // ndo_xdp_xmit: others can redirect to it
	XDPXSKZerocopy                         // AF_XDP zero-copy
	XDPHWOffload                           // programs run on the NIC
	XDPRxSG                                // multi-buffer frames on receive
	XDPNdoXmitSG                           // multi-buffer frames through ndo_xdp_xmit
)

var xdpFeatureNames = []string{"basic", "redirect", "ndo-xmit", "xsk-zerocopy", "hw-offload", "rx-sg", "ndo-xmit-sg"}

// Names are the features set, by the kernel's names, with bit N for a bit
// this table does not know.
func (f XDPFeatures) Names() []string { return flagNames(uint64(f), xdpFeatureNames) }

// XDP receive metadata (xdp-rx-metadata-features) and AF_XDP features
// (xsk-features) by bit, as the kernel names them.
var (
	xdpRxMetadataNames = []string{"timestamp", "hash", "vlan-tag"}
	xskFeatureNames    = []string{"tx-timestamp", "tx-checksum", "tx-launch-time-fifo"}
)

func flagNames(v uint64, names []string) []string {
	out := []string{}
	for v != 0 {
		i := bits.TrailingZeros64(v)
		v &^= 1 << i
		if i < len(names) {
			out = append(out, names[i])
		} else {
			out = append(out, fmt.Sprintf("bit %d", i))
		}
	}
	return out
}

// NetdevDev is the netdev family's dev-get answer for one device.
type NetdevDev struct {
	Ifindex     uint32      `json:"ifindex"`
	XDPFeatures XDPFeatures `json:"-"`
	// XDPZCMaxSegs is the most fragments a zero-copy frame may have; 0 when
	// the kernel did not say (it says only for zero-copy drivers).
	XDPZCMaxSegs  uint32 `json:"xdp_zc_max_segs,omitempty"`
	XDPRxMetadata uint64 `json:"-"`
	XSKFeatures   uint64 `json:"-"`
}

// RxMetadata and XSK name the set bits of XDPRxMetadata and XSKFeatures.
func (d NetdevDev) RxMetadata() []string { return flagNames(d.XDPRxMetadata, xdpRxMetadataNames) }
func (d NetdevDev) XSK() []string        { return flagNames(d.XSKFeatures, xskFeatureNames) }

// NAPI is one NAPI instance as napi-get reports it. A nil field is one the
// kernel did not report: an older kernel without the attribute, a driver
// that did not name the IRQ, a NAPI that is not threaded (PID).
type NAPI struct {
	ID                uint32  `json:"id"`
	IRQ               *uint32 `json:"irq,omitempty"`
	PID               *uint32 `json:"pid,omitempty"`
	DeferHardIRQs     *uint32 `json:"defer_hard_irqs,omitempty"`
	GROFlushTimeout   *uint64 `json:"gro_flush_timeout_ns,omitempty"`
	IRQSuspendTimeout *uint64 `json:"irq_suspend_timeout_ns,omitempty"`
	Threaded          *uint32 `json:"threaded,omitempty"`
}

// NetdevQueue is one queue as queue-get reports it, with the NAPI instance
// that serves it (0: none reported).
type NetdevQueue struct {
	ID     uint32 `json:"id"`
	Rx     bool   `json:"rx"`
	NAPIID uint32 `json:"napi_id,omitempty"`
}

// ErrNetdevUnsupported wraps the answers of a kernel without the netdev
// family or without one of its operations: a fact to report, not a failure.
var ErrNetdevUnsupported = errors.New("not in this kernel")

// Netdev asks the netdev family. The zero Netdev answers every request
// with ErrNetdevUnsupported, as a kernel without the family would.
type Netdev struct {
	family uint16
	ops    map[uint32]bool
}

// OpenNetdev resolves the netdev family. A kernel without it (before 6.3)
// gives an error wrapping ErrNetdevUnsupported.
func OpenNetdev() (*Netdev, error) {
	f, err := netlink.GenlFamilyGet(netdevFamily)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("nic: netdev netlink family: %w (Linux 6.3+)", ErrNetdevUnsupported)
	}
	if err != nil {
		return nil, fmt.Errorf("nic: netdev netlink family: %w", err)
	}
	n := &Netdev{family: f.ID, ops: map[uint32]bool{}}
	for _, op := range f.Ops {
		n.ops[op.ID] = true
	}
	return n, nil
}

func (n *Netdev) request(cmd uint8, name string, dump bool, attrs ...*nl.RtAttr) ([][]byte, error) {
	if !n.ops[uint32(cmd)] {
		return nil, fmt.Errorf("nic: netdev %s: %w", name, ErrNetdevUnsupported)
	}
	// struct genlmsghdr: cmd, version, reserved (strict families refuse a
	// reserved field that is not 0).
	body := []byte{cmd, netdevVersion, 0, 0}
	for _, a := range attrs {
		body = append(body, a.Serialize()...)
	}
	msgs, err := genlRequest(n.family, dump, body)
	if err != nil {
		return nil, fmt.Errorf("nic: netdev %s: %w", name, err)
	}
	return msgs, nil
}

// genlRequest sends one generic-netlink request and gathers its answers
// until the end of the dump, or the acknowledgement of a plain request.
// vishvananda/netlink's NetlinkRequest.Execute stops at the first message
// without NLM_F_MULTI, and the netdev family's dumps (6.18) set no
// NLM_F_MULTI: it would return one queue of many.
func genlRequest(family uint16, dump bool, body []byte) ([][]byte, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval(int64(5e9))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, err
	}
	const seq = 1
	flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK)
	if dump {
		flags = unix.NLM_F_REQUEST | unix.NLM_F_DUMP
	}
	req := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(req[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(req[4:], family)
	binary.NativeEndian.PutUint16(req[6:], flags)
	binary.NativeEndian.PutUint32(req[8:], seq)
	req = append(req, body...)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out [][]byte
	buf := make([]byte, 64*1024)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, err
		}
		msgs, done, err := netlinkAnswers(buf[:n], seq)
		out = append(out, msgs...)
		if err != nil || done {
			return out, err
		}
	}
}

// netlinkAnswers splits what one recv returned into the payloads of the
// answers to request seq, and says whether the answer is complete: a
// NLMSG_DONE, or an NLMSG_ERROR (an acknowledgement when its error is 0).
func netlinkAnswers(b []byte, seq uint32) (payloads [][]byte, done bool, err error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return nil, false, err
	}
	for _, m := range msgs {
		if m.Header.Seq != seq {
			continue
		}
		switch m.Header.Type {
		case unix.NLMSG_DONE, unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno < 0 {
					return payloads, true, syscall.Errno(-errno)
				}
			}
			return payloads, true, nil
		case unix.NLMSG_NOOP:
		default:
			// A copy: the caller reads the next answers into the same buffer.
			payloads = append(payloads, append([]byte(nil), m.Data...))
		}
	}
	return payloads, false, nil
}

// Dev reads the device's XDP features (dev-get).
func (n *Netdev) Dev(ifindex int) (NetdevDev, error) {
	msgs, err := n.request(netdevCmdDevGet, "dev-get", false, nl.NewRtAttr(netdevADevIfindex, nl.Uint32Attr(uint32(ifindex))))
	if err != nil {
		return NetdevDev{}, err
	}
	if len(msgs) != 1 {
		return NetdevDev{}, fmt.Errorf("nic: netdev dev-get: %d answers", len(msgs))
	}
	return parseNetdevDev(msgs[0])
}

// NAPIs reads the device's NAPI instances (napi-get, dumped for ifindex).
// A device may have none: veth has NAPI only while XDP or GRO is on.
func (n *Netdev) NAPIs(ifindex int) ([]NAPI, error) {
	msgs, err := n.request(netdevCmdNAPIGet, "napi-get", true, nl.NewRtAttr(netdevANAPIIfindex, nl.Uint32Attr(uint32(ifindex))))
	if err != nil {
		return nil, err
	}
	var out []NAPI
	for _, m := range msgs {
		napi, idx, err := parseNAPI(m)
		if err != nil {
			return nil, err
		}
		if idx == uint32(ifindex) { // the kernel filters; an older one may not
			out = append(out, napi)
		}
	}
	return out, nil
}

// Queues reads the device's queues and the NAPI serving each (queue-get,
// dumped for ifindex).
func (n *Netdev) Queues(ifindex int) ([]NetdevQueue, error) {
	msgs, err := n.request(netdevCmdQueueGet, "queue-get", true, nl.NewRtAttr(netdevAQueueIfindex, nl.Uint32Attr(uint32(ifindex))))
	if err != nil {
		return nil, err
	}
	var out []NetdevQueue
	for _, m := range msgs {
		q, idx, err := parseNetdevQueue(m)
		if err != nil {
			return nil, err
		}
		if idx == uint32(ifindex) {
			out = append(out, q)
		}
	}
	return out, nil
}

// attrs parses a netdev answer: the generic-netlink header, then attributes.
func attrs(msg []byte, what string) ([]syscall.NetlinkRouteAttr, error) {
	if len(msg) < nl.SizeofGenlmsg {
		return nil, fmt.Errorf("nic: netdev %s: answer of %d bytes", what, len(msg))
	}
	as, err := nl.ParseRouteAttr(msg[nl.SizeofGenlmsg:])
	if err != nil {
		return nil, fmt.Errorf("nic: netdev %s: %w", what, err)
	}
	return as, nil
}

// uintAttr reads a u32, a u64, or netlink's "uint" (4 or 8 bytes as the
// value needs).
func uintAttr(a syscall.NetlinkRouteAttr, what string) (uint64, error) {
	switch len(a.Value) {
	case 4:
		return uint64(binary.NativeEndian.Uint32(a.Value)), nil
	case 8:
		return binary.NativeEndian.Uint64(a.Value), nil
	}
	return 0, fmt.Errorf("nic: netdev %s: attribute %d of %d bytes", what, a.Attr.Type&nlaTypeMask, len(a.Value))
}

func parseNetdevDev(msg []byte) (NetdevDev, error) {
	as, err := attrs(msg, "dev-get")
	if err != nil {
		return NetdevDev{}, err
	}
	var d NetdevDev
	for _, a := range as {
		t := a.Attr.Type & nlaTypeMask
		switch t {
		case netdevADevIfindex, netdevADevXDPFeatures, netdevADevXDPZCMaxSegs, netdevADevXDPRxMetadata, netdevADevXSKFeatures:
		default:
			continue
		}
		v, err := uintAttr(a, "dev-get")
		if err != nil {
			return NetdevDev{}, err
		}
		switch t {
		case netdevADevIfindex:
			d.Ifindex = uint32(v)
		case netdevADevXDPFeatures:
			d.XDPFeatures = XDPFeatures(v)
		case netdevADevXDPZCMaxSegs:
			d.XDPZCMaxSegs = uint32(v)
		case netdevADevXDPRxMetadata:
			d.XDPRxMetadata = v
		case netdevADevXSKFeatures:
			d.XSKFeatures = v
		}
	}
	return d, nil
}

func parseNAPI(msg []byte) (NAPI, uint32, error) {
	as, err := attrs(msg, "napi-get")
	if err != nil {
		return NAPI{}, 0, err
	}
	var (
		napi    NAPI
		ifindex uint32
	)
	u32 := func(v uint64) *uint32 { x := uint32(v); return &x }
	for _, a := range as {
		t := a.Attr.Type & nlaTypeMask
		if t < netdevANAPIIfindex || t > netdevANAPIThreaded {
			continue // newer than this table
		}
		v, err := uintAttr(a, "napi-get")
		if err != nil {
			return NAPI{}, 0, err
		}
		switch t {
		case netdevANAPIIfindex:
			ifindex = uint32(v)
		case netdevANAPIID:
			napi.ID = uint32(v)
		case netdevANAPIIRQ:
			napi.IRQ = u32(v)
		case netdevANAPIPID:
			napi.PID = u32(v)
		case netdevANAPIDeferHardIRQs:
			napi.DeferHardIRQs = u32(v)
		case netdevANAPIGROFlushTimeout:
			napi.GROFlushTimeout = &v
		case netdevANAPIIRQSuspend:
			napi.IRQSuspendTimeout = &v
		case netdevANAPIThreaded:
			napi.Threaded = u32(v)
		}
	}
	return napi, ifindex, nil
}

func parseNetdevQueue(msg []byte) (NetdevQueue, uint32, error) {
	as, err := attrs(msg, "queue-get")
	if err != nil {
		return NetdevQueue{}, 0, err
	}
	var (
		q       NetdevQueue
		ifindex uint32
		typ     uint64 = 1
	)
	for _, a := range as {
		t := a.Attr.Type & nlaTypeMask
		if t < netdevAQueueID || t > netdevAQueueNAPIID {
			continue
		}
		v, err := uintAttr(a, "queue-get")
		if err != nil {
			return NetdevQueue{}, 0, err
		}
		switch t {
		case netdevAQueueID:
			q.ID = uint32(v)
		case netdevAQueueIfindex:
			ifindex = uint32(v)
		case netdevAQueueType:
			typ = v
		case netdevAQueueNAPIID:
			q.NAPIID = uint32(v)
		}
	}
	q.Rx = typ == 0
	return q, ifindex, nil
}
