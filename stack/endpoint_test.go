package stack

import (
	"bytes"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

var (
	serverMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	serverV4  = netip.MustParseAddr("198.18.0.1")
	clientV4  = netip.MustParseAddr("198.18.0.2")
	serverV6  = netip.MustParseAddr("2001:2::1")
	clientV6  = netip.MustParseAddr("2001:2::2")
)

// fakeQueue records the frames the endpoint sends, or, with forward set,
// hands each batch to forward instead.
type fakeQueue struct {
	mu      sync.Mutex
	frames  [][]byte
	batch   [][]byte
	sent    chan struct{}
	forward func([][]byte) // called without the lock held
	room    int            // if set, BeginTx reserves at most this many frames
	nsent   int            // frames sent, forwarded or not
	short   int            // frames BeginTx had no room for, as nic counts them
}

func newFakeQueue() *fakeQueue { return &fakeQueue{sent: make(chan struct{}, 1024)} }

func (q *fakeQueue) BeginTx(n int) int {
	q.mu.Lock()
	if q.room > 0 {
		q.short += max(n-q.room, 0)
		n = min(n, q.room)
	}
	q.batch = make([][]byte, n)
	for i := range q.batch {
		q.batch[i] = make([]byte, 2048)
	}
	return n
}
func (q *fakeQueue) TxFrame(i int) []byte { return q.batch[i] }
func (q *fakeQueue) SetTxLen(i, n int)    { q.batch[i] = q.batch[i][:n] }
func (q *fakeQueue) EndTx() error {
	q.nsent += len(q.batch)
	if q.forward != nil {
		b := q.batch
		q.mu.Unlock()
		if len(b) > 0 {
			q.forward(b)
		}
		return nil
	}
	q.frames = append(q.frames, q.batch...)
	q.mu.Unlock()
	for range q.batch {
		q.sent <- struct{}{}
	}
	return nil
}

// txCounts is what a fakeQueue counted.
type txCounts struct{ sent, short int }

func (q *fakeQueue) counts() txCounts {
	q.mu.Lock()
	defer q.mu.Unlock()
	return txCounts{q.nsent, q.short}
}

// next waits for the next sent frame.
func (q *fakeQueue) next(t *testing.T) []byte {
	t.Helper()
	select {
	case <-q.sent:
	case <-time.After(5 * time.Second):
		t.Fatal("no frame sent within 5s")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.frames[0]
	q.frames = q.frames[1:]
	return f
}

func newTestStack(t *testing.T, trust bool) (*Stack, *fakeQueue) {
	t.Helper()
	q := newFakeQueue()
	st, err := New(Config{
		LinkAddr:        serverMAC,
		MTU:             1500,
		Addrs:           []netip.Prefix{netip.PrefixFrom(serverV4, 24), netip.PrefixFrom(serverV6, 64)},
		TrustRXChecksum: trust,
		Queues:          []TxQueue{q},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	for _, n := range []string{"tcp4", "tcp6"} {
		l, err := st.Listen(n, 80)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
	return st, q
}

// syn builds an Ethernet frame with a TCP SYN from the client to the server.
// With partial set, the TCP checksum holds only the pseudo-header sum, as a
// veth peer with TX checksum offload leaves it.
func syn(src, dst netip.Addr, dstPort uint16, partial bool) []byte {
	tcp := make([]byte, header.TCPMinimumSize)
	header.TCP(tcp).Encode(&header.TCPFields{
		SrcPort: 40000, DstPort: dstPort, SeqNum: 1000, DataOffset: header.TCPMinimumSize,
		Flags: header.TCPFlagSyn, WindowSize: 65535,
	})
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	pseudo := header.PseudoHeaderChecksum(header.TCPProtocolNumber, s, d, uint16(len(tcp)))
	if partial {
		header.TCP(tcp).SetChecksum(pseudo)
	} else {
		header.TCP(tcp).SetChecksum(^checksum.Checksum(tcp, pseudo))
	}
	return ether(src, dst, tcp, header.TCPProtocolNumber)
}

func ether(src, dst netip.Addr, payload []byte, proto tcpip.TransportProtocolNumber) []byte {
	var ip []byte
	var etype tcpip.NetworkProtocolNumber
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	if src.Is4() {
		etype = header.IPv4ProtocolNumber
		ip = make([]byte, header.IPv4MinimumSize)
		h := header.IPv4(ip)
		h.Encode(&header.IPv4Fields{TotalLength: uint16(len(ip) + len(payload)), TTL: 64, Protocol: uint8(proto), SrcAddr: s, DstAddr: d})
		h.SetChecksum(^h.CalculateChecksum())
	} else {
		etype = header.IPv6ProtocolNumber
		ip = make([]byte, header.IPv6MinimumSize)
		header.IPv6(ip).Encode(&header.IPv6Fields{PayloadLength: uint16(len(payload)), TransportProtocol: proto, HopLimit: 64, SrcAddr: s, DstAddr: d})
	}
	eth := make([]byte, header.EthernetMinimumSize)
	header.Ethernet(eth).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(clientMAC), DstAddr: tcpip.LinkAddress(serverMAC), Type: etype})
	return append(append(eth, ip...), payload...)
}

// checkSYNACK checks that frame is a SYN-ACK from server to client, framed
// for the client's MAC, with a full TCP checksum.
func checkSYNACK(t *testing.T, frame []byte, src, dst netip.Addr) {
	t.Helper()
	eth := header.Ethernet(frame)
	if eth.DestinationAddress() != tcpip.LinkAddress(clientMAC) || eth.SourceAddress() != tcpip.LinkAddress(serverMAC) {
		t.Fatalf("frame to %v from %v; want to %v from %v", eth.DestinationAddress(), eth.SourceAddress(), clientMAC, serverMAC)
	}
	var tcp header.TCP
	var s, d tcpip.Address
	if src.Is4() {
		ip := header.IPv4(frame[header.EthernetMinimumSize:])
		if !ip.IsValid(len(ip)) || !ip.IsChecksumValid() {
			t.Fatal("invalid IPv4 header")
		}
		s, d, tcp = ip.SourceAddress(), ip.DestinationAddress(), header.TCP(ip.Payload())
	} else {
		ip := header.IPv6(frame[header.EthernetMinimumSize:])
		s, d, tcp = ip.SourceAddress(), ip.DestinationAddress(), header.TCP(ip.Payload())
	}
	if s.String() != src.String() || d.String() != dst.String() {
		t.Fatalf("packet %v -> %v; want %v -> %v", s, d, src, dst)
	}
	if tcp.Flags() != header.TCPFlagSyn|header.TCPFlagAck || tcp.AckNumber() != 1001 {
		t.Fatalf("flags %v ack %d; want SYN|ACK ack 1001", tcp.Flags(), tcp.AckNumber())
	}
	if !tcp.IsChecksumValid(s, d, checksum.Checksum(tcp.Payload(), 0), uint16(len(tcp.Payload()))) {
		t.Fatal("SYN-ACK has a bad TCP checksum: frames sent through AF_XDP must carry full checksums")
	}
}

func TestSYNGetsSYNACK(t *testing.T) {
	for _, c := range []struct{ client, server netip.Addr }{{clientV4, serverV4}, {clientV6, serverV6}} {
		st, q := newTestStack(t, false)
		st.Deliver(syn(c.client, c.server, 80, false))
		checkSYNACK(t, q.next(t), c.server, c.client)
	}
}

// A veth peer with offloads on sends a partial checksum. Trusted, the SYN
// is answered; verified, it is counted as a checksum error and dropped.
func TestPartialChecksum(t *testing.T) {
	st, q := newTestStack(t, true)
	st.Deliver(syn(clientV4, serverV4, 80, true))
	checkSYNACK(t, q.next(t), serverV4, clientV4)

	st, _ = newTestStack(t, false)
	st.Deliver(syn(clientV4, serverV4, 80, true))
	if got := st.s.Stats().TCP.ChecksumErrors.Value(); got != 1 {
		t.Fatalf("verifying stack counted %d checksum errors, want 1", got)
	}
}

// The kernel owns ICMP: an echo request that reaches the netstack gets no
// answer through AF_XDP.
func TestOnlyTCPLeaves(t *testing.T) {
	st, q := newTestStack(t, false)
	icmp := make([]byte, header.ICMPv4MinimumSize)
	h := header.ICMPv4(icmp)
	h.SetType(header.ICMPv4Echo)
	h.SetChecksum(^checksum.Checksum(icmp, 0))
	st.Deliver(ether(clientV4, serverV4, icmp, header.ICMPv4ProtocolNumber))
	deadline := time.Now().Add(2 * time.Second)
	for st.Counters().TxNoTCP == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if c := st.Counters(); c.TxNoTCP != 1 || q.counts().sent != 0 {
		t.Fatalf("counters %+v, %d frames sent; want the echo reply dropped as not TCP", c, q.counts().sent)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) != 0 {
		t.Fatalf("%d frames sent", len(q.frames))
	}
}

// Malformed and random frames are counted and dropped; nothing panics.
func TestMalformedFrames(t *testing.T) {
	st, _ := newTestStack(t, false)
	good := syn(clientV4, serverV4, 80, false)
	for _, f := range [][]byte{nil, good[:10], good[:14], good[:20], append([]byte{}, good[:12]...)} {
		st.Deliver(f)
	}
	if c := st.Counters(); c.RxMalformed != 5 {
		t.Fatalf("RxMalformed = %d, want 5", c.RxMalformed)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 100000; i++ {
		f := make([]byte, rng.IntN(200))
		for j := range f {
			f[j] = byte(rng.Uint32())
		}
		if len(f) > 14 && rng.IntN(2) == 0 {
			copy(f, good[:14]) // valid Ethernet, random IP
		}
		st.Deliver(f)
	}
}

func TestNeighboursBounded(t *testing.T) {
	var n neighbours
	n.init()
	mac := []byte{2, 0, 0, 0, 0, 9}
	addr := func(i uint32) tcpip.Address {
		return tcpip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
	}
	for i := uint32(0); i < maxNeighbours+10; i++ {
		n.learn(addr(i), mac, int64(i))
	}
	if len(n.m) != maxNeighbours {
		t.Fatalf("%d entries; want the bound, %d: a full table evicts one entry, not all", len(n.m), maxNeighbours)
	}
	last := addr(maxNeighbours + 9)
	if got := n.lookup(last); !bytes.Equal([]byte(got), mac) {
		t.Fatalf("lookup of the last learned address = %v", got)
	}
	if got := n.lookup(tcpip.AddrFrom4([4]byte{198, 19, 255, 254})); got != zeroMAC {
		t.Fatalf("lookup of an unknown address = %v, want zero MAC", got)
	}
}

// Receiving a frame allocates nothing per packet beyond the netstack's own
// pools once warm.
func BenchmarkDeliverSYN(b *testing.B) {
	q := newFakeQueue()
	st, err := New(Config{LinkAddr: serverMAC, MTU: 1500, Addrs: []netip.Prefix{netip.PrefixFrom(serverV4, 24)}, Queues: []TxQueue{q}})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	// A SYN to a closed port: the netstack answers with an RST through the
	// fake queue, which drains it.
	go func() {
		for range q.sent {
			q.mu.Lock()
			q.frames = q.frames[:0]
			q.mu.Unlock()
		}
	}()
	f := syn(clientV4, serverV4, 81, false)
	b.ReportAllocs()
	for b.Loop() {
		st.Deliver(f)
	}
}

// A batch mixing a sendable segment with packets the endpoint drops sends
// the one and counts each drop once.
func TestWritePacketsMixedBatch(t *testing.T) {
	q := newFakeQueue()
	ep := newEndpoint(Config{LinkAddr: serverMAC, MTU: 1500, Queues: []TxQueue{q}})
	ep.neigh.learn(tcpip.AddrFrom4(clientV4.As4()), clientMAC, time.Now().UnixNano())
	packet := func(proto tcpip.TransportProtocolNumber, to netip.Addr) *gvstack.PacketBuffer {
		pkt := gvstack.NewPacketBuffer(gvstack.PacketBufferOptions{
			ReserveHeaderBytes: header.EthernetMinimumSize,
			Payload:            buffer.MakeWithData([]byte("payload")),
		})
		pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
		pkt.TransportProtocolNumber = proto
		pkt.EgressRoute.RemoteAddress = tcpip.AddrFrom4(to.As4())
		ep.AddHeader(pkt)
		return pkt
	}
	var pkts gvstack.PacketBufferList
	// The drops come first, so that the copy pass walks past them too.
	pkts.PushBack(packet(header.ICMPv4ProtocolNumber, clientV4))
	pkts.PushBack(packet(header.TCPProtocolNumber, netip.MustParseAddr("198.18.0.99")))
	pkts.PushBack(packet(header.TCPProtocolNumber, clientV4))
	defer pkts.DecRef()
	if n, err := ep.WritePackets(pkts); n != 3 || err != nil {
		t.Fatalf("WritePackets = %d, %v; want 3, nil", n, err)
	}
	c := ep.counters()
	if q.counts().sent != 1 || c.TxNoTCP != 1 || c.TxNoNeighbour != 1 {
		t.Fatalf("counters %+v, %d frames sent; want 1 sent, 1 not TCP, 1 without a neighbour", c, q.counts().sent)
	}
	if f := q.next(t); header.Ethernet(f).DestinationAddress() != tcpip.LinkAddress(clientMAC) {
		t.Fatalf("sent to %v, want %v", header.Ethernet(f).DestinationAddress(), clientMAC)
	}
}
