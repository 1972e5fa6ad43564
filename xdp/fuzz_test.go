//go:build linux

package xdp

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
)

// reference is the steering rules in Go, as steer.c's comment and
// DESIGN.md state them, for testConfig with no socket registered and no SYN
// cookies: the verdict each frame must get.
func reference(f []byte) verdict {
	if len(f) < 14 {
		return passUnparsable
	}
	var tcp []byte
	switch binary.BigEndian.Uint16(f[12:]) {
	case etherIPv4:
		ip := f[14:]
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return passUnparsable
		}
		if ip[9] != protoTCP {
			return passNotTCP
		}
		if ip[0]&0x0f != 5 || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return passUnparsable
		}
		if tcp = ip[20:]; len(tcp) < 20 {
			return passUnparsable
		}
		if netip.AddrFrom4([4]byte(ip[16:20])) != servedV4 {
			return passNotServed
		}
	case etherIPv6:
		ip := f[14:]
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return passUnparsable
		}
		if next := ip[6]; next != protoTCP {
			if slices.Contains([]byte{0, 43, 44, 51, 60, 135, 139, 140, 253, 254}, next) {
				return passUnparsable
			}
			return passNotTCP
		}
		if tcp = ip[40:]; len(tcp) < 20 {
			return passUnparsable
		}
		if netip.AddrFrom16([16]byte(ip[24:40])) != servedV6 {
			return passNotServed
		}
	default:
		return passNotIP
	}
	if p := binary.BigEndian.Uint16(tcp[2:]); p != 80 && p != 443 {
		return passNotServed
	}
	return passNoSocket
}

// The program against its rules in Go, on every frame the fuzzer makes
// (BPF_PROG_TEST_RUN): the verdict and the one counter it moves agree.
// The seeds are the table tests' frames; `go test` runs them, and
// `go test -fuzz FuzzSteer ./xdp/` searches further.
func FuzzSteer(f *testing.F) {
	fuzzRules(f, loadTest(f), reference)
}

// fuzzRules checks the program s against rules on every frame the fuzzer
// makes, seeded with the table tests' frames and extra.
func fuzzRules(f *testing.F, s *Steering, rules func(frame []byte) verdict, extra ...[]byte) {
	for _, tc := range servedFrames {
		f.Add(tc.frame)
	}
	for _, tc := range passedFrames {
		f.Add(tc.frame)
	}
	for _, frame := range extra {
		f.Add(frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 1500 {
			return // BPF_PROG_TEST_RUN refuses under 14 bytes; the MTU bounds the rest
		}
		want := rules(frame)
		if got := runVerdict(t, s, frame, nil); got != want {
			t.Fatalf("frame % x: program %+v, rules %+v", frame, got, want)
		}
	})
}
