package stack

import (
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Whatever arrives, the endpoint counts it once and nothing breaks: the
// fuzzer's frames go to a netstack that listens on port 80 over both
// families, and after each the netstack still answers a new SYN. `go test`
// runs the seeds; `go test -fuzz FuzzDeliver ./stack/` searches further.
func FuzzDeliver(f *testing.F) {
	good4 := syn(clientV4, serverV4, 80, false)
	good6 := syn(clientV6, serverV6, 80, false)
	for _, s := range [][]byte{nil, good4, good6, good4[:14], good4[:33], good6[:53], syn(clientV4, serverV4, 80, true)} {
		f.Add(s)
	}
	// SYN-ACKs by the port they answer; everything else is dropped.
	answered := make(chan uint16, 1024)
	q := newFakeQueue()
	q.forward = func(frames [][]byte) {
		for _, fr := range frames {
			if len(fr) < header.EthernetMinimumSize+header.IPv4MinimumSize+header.TCPMinimumSize ||
				header.Ethernet(fr).Type() != header.IPv4ProtocolNumber {
				continue
			}
			tcp := header.TCP(header.IPv4(fr[header.EthernetMinimumSize:]).Payload())
			if tcp.Flags() == header.TCPFlagSyn|header.TCPFlagAck {
				select {
				case answered <- tcp.DestinationPort():
				default:
				}
			}
		}
	}
	st, err := New(Config{
		LinkAddr: serverMAC, MTU: 1500, TrustRXChecksum: true, Queues: []TxQueue{q},
		Addrs: []netip.Prefix{netip.PrefixFrom(serverV4, 24), netip.PrefixFrom(serverV6, 64)},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(st.Close)
	for _, n := range []string{"tcp4", "tcp6"} {
		l, err := st.Listen(n, 80)
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { l.Close() })
	}
	n := 0
	f.Fuzz(func(t *testing.T, frame []byte) {
		// Twice, in one batch: DeliverBatch reads both as ACKs may be.
		st.DeliverBatch([][]byte{frame, frame})
		// A connection never used before: a SYN on a tuple the netstack
		// knows gets no SYN-ACK.
		n++
		src := netip.AddrFrom4([4]byte{198, 18, 1 + byte(n/60000%200), byte(n / 60000 / 200 % 250)})
		port := uint16(1024 + n%60000)
		st.Deliver(synFrom(src, port))
		timeout := time.After(5 * time.Second)
		for {
			select {
			case p := <-answered:
				if p == port {
					return
				}
			case <-timeout:
				t.Fatalf("after frame % x, a SYN from port %d got no SYN-ACK within 5 s", frame, port)
			}
		}
	})
}

// synFrom is a SYN from an IPv4 address and port to port 80.
func synFrom(src netip.Addr, port uint16) []byte {
	tcp := make([]byte, header.TCPMinimumSize)
	header.TCP(tcp).Encode(&header.TCPFields{
		SrcPort: port, DstPort: 80, SeqNum: 1000, DataOffset: header.TCPMinimumSize,
		Flags: header.TCPFlagSyn, WindowSize: 65535,
	})
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(serverV4.AsSlice())
	header.TCP(tcp).SetChecksum(^checksum.Checksum(tcp, header.PseudoHeaderChecksum(header.TCPProtocolNumber, s, d, uint16(len(tcp)))))
	return ether(src, serverV4, tcp, header.TCPProtocolNumber)
}
