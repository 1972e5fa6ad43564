// Package syncookie computes the SYN cookies with which xhttpd answers a SYN
// flood. Its XDP program (xdp/steer.c) answers the SYNs of a flood itself
// with these cookies, before they cost the netstack anything, and the
// netstack's listener (wired in package stack) accepts the ACKs that complete
// such handshakes by checking the same cookie. The C program mirrors this
// file; a test in package xdp runs the program and checks its cookies here.
//
// The cookie has gVisor's layout (tcp listenContext.createCookie), so that
// the listener's own checks (age, MSS index) apply unchanged:
//
//	cookie = H(tuple, 0, 0) + isn + ts<<24 + ((H(tuple, ts, 1) + mssIndex) & 0xffffff)
//
// where isn is the client's initial sequence number, ts counts 64-second
// periods of CLOCK_MONOTONIC (the clock an XDP program reads), and H is
// SipHash-2-4 under one of two secret keys over the tuple and ts. A cookie is
// good for two to three periods, as in gVisor.
package syncookie

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"

	"golang.org/x/sys/unix"
)

// MSSTable holds the client MSS values a cookie can carry, in two bits: the
// largest entry not above the client's MSS is encoded. It is gVisor's table;
// the listener decodes the index with its own copy.
var MSSTable = [4]uint16{536, 1300, 1440, 1460}

// MSSIndex is the index in MSSTable encoded for a client that announced mss
// (0 when it announced none).
func MSSIndex(mss uint16) uint32 {
	for i := len(MSSTable) - 1; i > 0; i-- {
		if mss >= MSSTable[i] {
			return uint32(i)
		}
	}
	return 0
}

// Key is the secret: two SipHash-2-4 keys of two 64-bit words each.
type Key [2][2]uint64

// NewKey returns a random key.
func NewKey() (Key, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Key{}, fmt.Errorf("syncookie: random key: %w", err)
	}
	var k Key
	for i := range 4 {
		k[i/2][i%2] = binary.LittleEndian.Uint64(b[i*8:])
	}
	return k, nil
}

// Tuple is a connection seen from the server: local is the served address.
// Both addresses are of one family; IPv4-mapped addresses count as IPv4.
type Tuple struct {
	Local, Remote         netip.Addr
	LocalPort, RemotePort uint16
}

// Hash is H(t, ts, i): the low 32 bits of SipHash-2-4 under key i of the
// words (ports and ts), (local, remote) for IPv4, or (local high, local low,
// remote high, remote low) for IPv6, each address word big-endian.
func (k *Key) Hash(t Tuple, ts uint32, i int) uint32 {
	var m [5]uint64
	m[0] = uint64(t.LocalPort)<<48 | uint64(t.RemotePort)<<32 | uint64(ts)
	l, r := t.Local.Unmap(), t.Remote.Unmap()
	n := 2
	if l.Is4() {
		a, b := l.As4(), r.As4()
		m[1] = uint64(binary.BigEndian.Uint32(a[:]))<<32 | uint64(binary.BigEndian.Uint32(b[:]))
	} else {
		a, b := l.As16(), r.As16()
		m[1] = binary.BigEndian.Uint64(a[:8])
		m[2] = binary.BigEndian.Uint64(a[8:])
		m[3] = binary.BigEndian.Uint64(b[:8])
		m[4] = binary.BigEndian.Uint64(b[8:])
		n = 5
	}
	return uint32(sipHash24(k[i], m[:n]))
}

const (
	tsShift  = 24
	tsMask   = 0xff
	hashMask = 1<<tsShift - 1
	maxAge   = 2 // periods; gVisor's maxTSDiff
)

// Make returns the cookie for a SYN with sequence number isn from t, at
// period ts, carrying mssIndex (0-3).
func (k *Key) Make(t Tuple, isn, ts, mssIndex uint32) uint32 {
	return k.Hash(t, 0, 0) + isn + ts<<tsShift + (k.Hash(t, ts, 1)+mssIndex)&hashMask
}

// Check reports whether cookie, acknowledged by an ACK whose sequence
// number is isn+1, was made by Make for t no more than two periods before
// ts, and returns the MSS index it carries. It is gVisor's check.
func (k *Key) Check(t Tuple, cookie, isn, ts uint32) (mssIndex uint32, ok bool) {
	v := cookie - k.Hash(t, 0, 0) - isn
	made := v >> tsShift
	if (ts-made)&tsMask > maxAge {
		return 0, false
	}
	idx := (v - k.Hash(t, made, 1)) & hashMask
	if idx >= uint32(len(MSSTable)) {
		return 0, false
	}
	return idx, true
}

// Period is the current ts: CLOCK_MONOTONIC seconds / 64, the clock
// bpf_ktime_get_ns reads.
func Period() uint32 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("syncookie: clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
	return PeriodAt(uint64(ts.Sec))
}

// PeriodAt is the ts of a CLOCK_MONOTONIC reading in seconds.
func PeriodAt(sec uint64) uint32 { return uint32(sec>>6) & tsMask }

// sipHash24 is SipHash-2-4 of the message whose 8-byte little-endian words
// are m.
func sipHash24(k [2]uint64, m []uint64) uint64 {
	v0 := k[0] ^ 0x736f6d6570736575
	v1 := k[1] ^ 0x646f72616e646f6d
	v2 := k[0] ^ 0x6c7967656e657261
	v3 := k[1] ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	for _, w := range m {
		v3 ^= w
		round()
		round()
		v0 ^= w
	}
	b := uint64(len(m)*8) << 56
	v3 ^= b
	round()
	round()
	v0 ^= b
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}
