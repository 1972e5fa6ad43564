package testbed

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// The flood's SYNs and ACKs are valid: checksums, flags, the SYNs' MSS
// option and the ACKs' none, addresses in the client's range.
func TestFloodFrames(t *testing.T) {
	for _, o := range []FloodOptions{
		{Dst: serverV4, Port: 80}, {Dst: serverV4, Port: 80, RandomSources: true},
		{Dst: serverV6, Port: 443}, {Dst: serverV6, Port: 443, RandomSources: true},
		{Dst: serverV4, Port: 80, RandomSources: true, ACK: true}, {Dst: serverV6, Port: 80, RandomSources: true, ACK: true},
	} {
		src := map[bool]netip.Addr{true: clientV4, false: clientV6}[o.Dst.Is4()]
		f := newFloodFrame([]byte{2, 0, 0, 0, 0, 2}, []byte{2, 0, 0, 0, 0, 1}, o, src)
		ports, acks := map[uint16]bool{}, map[uint32]bool{}
		for range 100 {
			f.next()
			var src, dst tcpip.Address
			var tcp header.TCP
			if o.Dst.Is4() {
				ip := header.IPv4(f.b[14:])
				if !ip.IsValid(len(ip)) || !ip.IsChecksumValid() {
					t.Fatalf("%+v: bad IPv4 header % x", o, f.b[14:34])
				}
				src, dst, tcp = ip.SourceAddress(), ip.DestinationAddress(), header.TCP(ip.Payload())
			} else {
				ip := header.IPv6(f.b[14:])
				if !ip.IsValid(len(ip)) {
					t.Fatalf("%+v: bad IPv6 header", o)
				}
				src, dst, tcp = ip.SourceAddress(), ip.DestinationAddress(), header.TCP(ip.Payload())
			}
			s, _ := netip.AddrFromSlice(src.AsSlice())
			if want := netip.MustParsePrefix(map[bool]string{true: "198.18.0.0/15", false: "2001:2::/48"}[o.Dst.Is4()]); !want.Contains(s) {
				t.Errorf("%+v: source %v outside %v", o, s, want)
			}
			if !o.RandomSources && s != map[bool]netip.Addr{true: clientV4, false: clientV6}[o.Dst.Is4()] {
				t.Errorf("%+v: source %v, want the client's", o, s)
			}
			flags := header.TCPFlagSyn
			if o.ACK {
				flags = header.TCPFlagAck
			}
			if dst.String() != o.Dst.String() || tcp.DestinationPort() != o.Port || tcp.Flags() != flags {
				t.Errorf("%+v: to %v port %d flags %v", o, dst, tcp.DestinationPort(), tcp.Flags())
			}
			if !tcp.IsChecksumValid(src, dst, checksum.Checksum(tcp.Payload(), 0), uint16(len(tcp.Payload()))) {
				t.Fatalf("%+v: bad TCP checksum", o)
			}
			if o.ACK {
				if len(tcp.Options()) != 0 {
					t.Errorf("%+v: options % x on an ACK", o, tcp.Options())
				}
			} else if opts := header.ParseSynOptions(tcp.Options(), false); opts.MSS != 1460 {
				t.Errorf("%+v: MSS %d", o, opts.MSS)
			}
			ports[tcp.SourcePort()] = true
			acks[tcp.AckNumber()] = true
		}
		if len(ports) < 90 {
			t.Errorf("%+v: %d source ports in 100 frames", o, len(ports))
		}
		if o.ACK && len(acks) < 90 {
			t.Errorf("%+v: %d acknowledgement numbers in 100 ACKs", o, len(acks))
		}
	}
}
