//go:build linux

package xdp

import (
	"encoding/binary"
	"net/netip"
)

// Hand-built frames for BPF_PROG_TEST_RUN. XDP does not check checksums,
// so none are computed.

var (
	macDst = []byte{0x02, 0, 0, 0, 0, 0x01}
	macSrc = []byte{0x02, 0, 0, 0, 0, 0x02}
)

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherARP  = 0x0806
	etherVLAN = 0x8100
	etherQinQ = 0x88a8

	protoHopByHop = 0
	protoICMP     = 1
	protoTCP      = 6
	protoUDP      = 17
	protoFragment = 44
	protoICMPv6   = 58
)

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func ether(etherType uint16, payload []byte) []byte {
	return cat(macDst, macSrc, be16(etherType), payload)
}

// vlan is an 802.1Q (or 802.1ad) tag: TPID, TCI, then the inner ethertype.
func vlan(tpid, id, inner uint16, payload []byte) []byte {
	return cat(macDst, macSrc, be16(tpid), be16(id), be16(inner), payload)
}

type ip4Opts struct {
	options  []byte // appended after the fixed header; IHL grows to match (pad to 4 bytes)
	flagsOff uint16 // flags (DF 0x4000, MF 0x2000) and fragment offset in 8-byte units
	version  uint8  // 0 means 4
}

func ipv4(proto uint8, src, dst netip.Addr, payload []byte, o ip4Opts) []byte {
	hlen := 20 + len(o.options)
	version := o.version
	if version == 0 {
		version = 4
	}
	h := make([]byte, 20, hlen)
	h[0] = version<<4 | uint8(hlen/4)
	binary.BigEndian.PutUint16(h[2:], uint16(hlen+len(payload)))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	binary.BigEndian.PutUint16(h[6:], o.flagsOff)
	h[8] = 64
	h[9] = proto
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return cat(h, o.options, payload)
}

func ipv6(next uint8, src, dst netip.Addr, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 6 << 4
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = next
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return cat(h, payload)
}

// ipv6ExtHeader is an 8-byte extension header (hop-by-hop with PadN, or
// a fragment header) followed by next.
func ipv6ExtHeader(kind, next uint8, payload []byte) []byte {
	h := make([]byte, 8)
	h[0] = next
	switch kind {
	case protoHopByHop:
		h[2], h[3] = 1, 4 // PadN option filling the header
	case protoFragment:
		binary.BigEndian.PutUint16(h[2:], 0x0001) // offset 0, M flag
		binary.BigEndian.PutUint32(h[4:], 0xdecafbad)
	}
	return cat(h, payload)
}

// tcpSYN is a 20-byte TCP header without options.
func tcpSYN(src, dst uint16) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], src)
	binary.BigEndian.PutUint16(h[2:], dst)
	binary.BigEndian.PutUint32(h[4:], 1)
	h[12] = 5 << 4
	h[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(h[14:], 65535)
	return h
}

func udp(src, dst uint16, payload []byte) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:], src)
	binary.BigEndian.PutUint16(h[2:], dst)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return cat(h, payload)
}

// icmpEcho is an ICMP (typ 8) or ICMPv6 (typ 128) echo request.
func icmpEcho(typ uint8) []byte {
	return []byte{typ, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'}
}

// icmpv6NS is a neighbour solicitation for target.
func icmpv6NS(target netip.Addr) []byte {
	h := make([]byte, 8)
	h[0] = 135
	a := target.As16()
	return cat(h, a[:])
}

func arpRequest(sender, target netip.Addr) []byte {
	h := []byte{0, 1, 0x08, 0x00, 6, 4, 0, 1}
	s, d := sender.As4(), target.As4()
	return cat(h, macSrc, s[:], make([]byte, 6), d[:])
}
