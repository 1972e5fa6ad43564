package stack

import (
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/xhttpd/xhttpd/syncookie"
)

// forged is the i-th source of a flood: an address of 198.19.0.0/16 or
// 2001:2:1::/64 that no connection has.
func forged(v6 bool, i int) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 0, 1, 14: byte(i >> 8), 15: byte(i)})
	}
	return netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
}

// resetCounter counts the resets among the frames a stack sends.
func resetCounter(q *fakeQueue) *atomic.Int64 {
	var n atomic.Int64
	q.forward = func(frames [][]byte) {
		for _, f := range frames {
			if header.TCP(payloadOf(f)).Flags()&header.TCPFlagRst != 0 {
				n.Add(1)
			}
		}
	}
	return &n
}

// waitResets waits until n is want, then a moment more to see it stay.
func waitResets(t *testing.T, n *atomic.Int64, want int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); n.Load() < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if got := n.Load(); got != want {
		t.Fatalf("%d resets sent; want %d", got, want)
	}
}

// A flood of ACKs for no connection (hping3 --flood --ack --rand-source)
// reaches the listener, and draws its resets, only strayBudget a window;
// the rest is dropped before the netstack, which does not learn their
// sources as neighbours.
func TestStrayACKsBounded(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		server, network := serverV4, "tcp4"
		if v6 {
			server, network = serverV6, "tcp6"
		}
		t.Run(network, func(t *testing.T) {
			key, err := syncookie.NewKey()
			if err != nil {
				t.Fatal(err)
			}
			q := newFakeQueue()
			resets := resetCounter(q)
			st, _ := serverStack(t, q, Config{MTU: 1500, TrustRXChecksum: true, SYNCookies: &key}, network)
			now := time.Now().UnixNano()
			const flood = 10 * strayBudget
			for i := range flood {
				st.ep.deliver(cookieSegment(forged(v6, i), server, uint16(1024+i), uint32(i)<<12, uint32(i)*7919, nil, 0), now)
			}
			waitResets(t, resets, strayBudget)
			if got := st.Counters().RxStray; got != flood-strayBudget {
				t.Errorf("%d strays dropped; want %d", got, flood-strayBudget)
			}
			if n := len(st.ep.neigh.m); n != strayBudget {
				t.Errorf("%d neighbours learned; want %d, the strays handed on", n, strayBudget)
			}

			// The next window hands on as many again.
			now += int64(strayWindow)
			for i := range flood {
				st.ep.deliver(cookieSegment(forged(v6, flood+i), server, uint16(1024+i), 5, 9, nil, 0), now)
			}
			waitResets(t, resets, 2*strayBudget)
		})
	}
}

// The strays a batch brings beyond the budget are no work for the netstack,
// and DeliverBatch does not count them as taken: the loop polls on while
// work comes (package irq), and a flood of strays must not keep it spinning.
func TestDeliverBatchCountsNoStrays(t *testing.T) {
	q := newFakeQueue()
	q.forward = func([][]byte) {}
	st, _ := serverStack(t, q, Config{MTU: 1500, TrustRXChecksum: true}, "tcp4")
	var batch [][]byte
	for i := range 2 * strayBudget {
		batch = append(batch, cookieSegment(forged(false, i), serverV4, uint16(1024+i), 5, 9, nil, 0))
	}
	if took := st.DeliverBatch(batch); took != strayBudget {
		t.Errorf("DeliverBatch took %d of %d strays, want the budget, %d", took, len(batch), strayBudget)
	}
}

// A stray that is not an ACK (a RST, a bare FIN, no flag at all) is
// dropped at once, as the listener drops it, and takes nothing from the
// budget of the ACKs.
func TestStrayNonACKsDropped(t *testing.T) {
	q := newFakeQueue()
	resets := resetCounter(q)
	st, _ := serverStack(t, q, Config{MTU: 1500, TrustRXChecksum: true}, "tcp4")
	now := time.Now().UnixNano()
	flags := []header.TCPFlags{header.TCPFlagRst, header.TCPFlagFin, 0}
	for i := range 3 * strayBudget {
		f := cookieSegment(forged(false, i), serverV4, 2000, 5, 9, nil, 0)
		tcp := header.TCP(payloadOf(f))
		tcp.SetFlags(uint8(flags[i%3]))
		tcp.SetChecksum(0) // the stack trusts checksums here
		st.ep.deliver(f, now)
	}
	if got := st.Counters().RxStray; got != 3*strayBudget {
		t.Fatalf("%d strays dropped; want all %d", got, 3*strayBudget)
	}
	st.ep.deliver(cookieSegment(forged(false, 0), serverV4, 2000, 5, 9, nil, 0), now)
	waitResets(t, resets, 1)
}

// While a flood takes the whole budget, the segments of connections still
// reach the netstack: the ACK that completes a handshake the XDP program
// answered, with the request behind it, because their cookie checks, and
// the connection's later segments, because it exists.
func TestStrayFloodSparesConnections(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		client, server, network := clientV4, serverV4, "tcp4"
		if v6 {
			client, server, network = clientV6, serverV6, "tcp6"
		}
		t.Run(network, func(t *testing.T) {
			key, err := syncookie.NewKey()
			if err != nil {
				t.Fatal(err)
			}
			q := newFakeQueue()
			q.forward = func([][]byte) {}
			st, l := serverStack(t, q, Config{MTU: 1500, TrustRXChecksum: true, SYNCookies: &key}, network)
			now := time.Now().UnixNano()
			flood := func(from int) {
				for i := range 2 * strayBudget {
					st.ep.deliver(cookieSegment(forged(v6, from+i), server, uint16(1024+i), 1, 2, nil, 0), now)
				}
			}
			flood(0)
			const port, isn = 40000, 1000
			tu := syncookie.Tuple{Local: server, Remote: client, LocalPort: 80, RemotePort: port}
			cookie := key.Make(tu, isn, syncookie.Period(), syncookie.MSSIndex(1460))
			st.ep.deliver(cookieSegment(client, server, port, isn, cookie, nil, 0), now)
			st.ep.deliver(cookieSegment(client, server, port, isn, cookie, []byte("first"), header.TCPFlagPsh), now)
			c := readRequest(t, l, "first")
			defer c.Close()

			flood(2 * strayBudget)
			// Past the cookie's sequence number (by more than the three
			// its MSS index can absorb): only the connection itself lets
			// this one through.
			st.ep.deliver(cookieSegment(client, server, port, isn+5, cookie, []byte("second"), header.TCPFlagPsh), now)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			b := make([]byte, 6)
			if _, err := io.ReadFull(c, b); err != nil || string(b) != "second" {
				t.Fatalf("read %q, %v; want \"second\"", b, err)
			}
			if got := st.Counters().RxStray; got != 3*strayBudget {
				t.Errorf("%d strays dropped; want %d", got, 3*strayBudget)
			}
		})
	}
}

// BenchmarkStrayCheck is what the check costs each segment of a connection:
// the lookup in the demultiplexer that finds it.
func BenchmarkStrayCheck(b *testing.B) {
	key, err := syncookie.NewKey()
	if err != nil {
		b.Fatal(err)
	}
	q := newFakeQueue()
	q.forward = func([][]byte) {}
	st, err := New(Config{LinkAddr: serverMAC, MTU: 1500, Addrs: []netip.Prefix{netip.PrefixFrom(serverV4, 24)}, TrustRXChecksum: true, Queues: []TxQueue{q}, SYNCookies: &key})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	l, err := st.Listen("tcp4", 80)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	cookie := openByCookie(st, &key, 40000, 1000, []byte("first"))
	c, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ip := cookieSegment(clientV4, serverV4, 40000, 1005, cookie, nil, 0)[header.EthernetMinimumSize:]
	now := time.Now().UnixNano()
	b.ReportAllocs()
	for b.Loop() {
		if st.ep.strays.drop(header.IPv4ProtocolNumber, ip, now) {
			b.Fatal("a connection's segment dropped")
		}
	}
}

// AppendConnections lists the netstack's connections, exactly, and not its
// listeners: what xdpnet puts back in the XDP program's flow table.
func TestAppendConnections(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		server, client, network := serverV4, clientV4, "tcp4"
		if v6 {
			server, client, network = serverV6, clientV6, "tcp6"
		}
		t.Run(network, func(t *testing.T) {
			q := newFakeQueue()
			st, l := serverStack(t, q, Config{MTU: 1500, TrustRXChecksum: true}, network)
			if got := st.AppendConnections(nil); len(got) != 0 {
				t.Fatalf("before any connection: %v", got)
			}
			cs := clientStack(t, st, q, 1500, nil, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := dialServer(ctx, cs, server)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sc, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
			want := []Connection{{Local: netip.AddrPortFrom(server, 80), Remote: netip.AddrPortFrom(client, port)}}
			if got := st.AppendConnections(nil); !slices.Equal(got, want) {
				t.Errorf("connections %v, want %v", got, want)
			}
		})
	}
}
