package stack

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/xhttpd/xhttpd/syncookie"
)

// ack builds the ACK that completes a handshake: sequence number 1001 (the
// client's ISN was 1000), acknowledging cookie.
func ack(src, dst netip.Addr, cookie uint32) []byte {
	tcp := make([]byte, header.TCPMinimumSize)
	header.TCP(tcp).Encode(&header.TCPFields{
		SrcPort: 40000, DstPort: 80, SeqNum: 1001, AckNum: cookie + 1, DataOffset: header.TCPMinimumSize,
		Flags: header.TCPFlagAck, WindowSize: 65535,
	})
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	header.TCP(tcp).SetChecksum(^checksum.Checksum(tcp, header.PseudoHeaderChecksum(header.TCPProtocolNumber, s, d, uint16(len(tcp)))))
	return ether(src, dst, tcp, header.TCPProtocolNumber)
}

// A handshake whose SYN-ACK the XDP program sent (the netstack never saw the
// SYN) completes when the ACK's cookie checks, and only then.
func TestSYNCookieACKAccepted(t *testing.T) {
	key, err := syncookie.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		network        string
		client, server netip.Addr
	}{{"tcp4", clientV4, serverV4}, {"tcp6", clientV6, serverV6}} {
		t.Run(c.network, func(t *testing.T) {
			q := newFakeQueue()
			st, err := New(Config{
				LinkAddr:        serverMAC,
				MTU:             1500,
				Addrs:           []netip.Prefix{netip.PrefixFrom(serverV4, 24), netip.PrefixFrom(serverV6, 64)},
				TrustRXChecksum: true,
				Queues:          []TxQueue{q},
				SYNCookies:      &key,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			l, err := st.Listen(c.network, 80)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				if conn, err := l.Accept(); err == nil {
					accepted <- conn
				}
			}()

			tu := syncookie.Tuple{Local: c.server, Remote: c.client, LocalPort: 80, RemotePort: 40000}
			cookie := key.Make(tu, 1000, syncookie.Period(), syncookie.MSSIndex(1460))

			// A wrong cookie: reset, nothing accepted.
			st.Deliver(ack(c.client, c.server, cookie+12345))
			if rst := header.TCP(payloadOf(q.next(t))); rst.Flags()&header.TCPFlagRst == 0 {
				t.Fatalf("a wrong cookie got flags %v, want RST", rst.Flags())
			}
			select {
			case conn := <-accepted:
				t.Fatalf("a wrong cookie was accepted: %v", conn.RemoteAddr())
			case <-time.After(100 * time.Millisecond):
			}

			st.Deliver(ack(c.client, c.server, cookie))
			select {
			case conn := <-accepted:
				defer conn.Close()
				if got := conn.RemoteAddr().String(); got != netip.AddrPortFrom(c.client, 40000).String() {
					t.Errorf("accepted a connection from %s", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the ACK with a good cookie was not accepted")
			}
		})
	}
}

// payloadOf is the transport payload of an IPv4 or IPv6 Ethernet frame.
func payloadOf(frame []byte) []byte {
	ip := frame[header.EthernetMinimumSize:]
	if header.IPVersion(ip) == header.IPv4Version {
		return header.IPv4(ip).Payload()
	}
	return header.IPv6(ip).Payload()
}
