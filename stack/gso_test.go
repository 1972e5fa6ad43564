package stack

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

const (
	testMSS    = 1448
	testSeq    = 0xffff_f000 // the sequence numbers of a segment wrap
	testIPv4ID = 0xfffe      // and so do its IPv4 IDs
	tsOptLen   = 12          // NOP, NOP, timestamps: as gVisor sends them
)

// gsoPacket builds a TCP segment from the server to the client as gVisor's
// TCP hands it to a link endpoint with host GSO: the whole payload in one
// packet, GSOOptions set, and in the TCP checksum field only the
// pseudo-header sum of the whole segment (buildTCPHdr, NeedsCsum).
func gsoPacket(ep *endpoint, v6 bool, payload []byte, flags header.TCPFlags) *gvstack.PacketBuffer {
	pkt := gvstack.NewPacketBuffer(gvstack.PacketBufferOptions{
		ReserveHeaderBytes: header.EthernetMinimumSize + header.IPv6MinimumSize + header.TCPMinimumSize + tsOptLen,
		Payload:            buffer.MakeWithData(payload),
	})
	src, dst := tcpip.AddrFrom4(serverV4.As4()), tcpip.AddrFrom4(clientV4.As4())
	if v6 {
		src, dst = tcpip.AddrFrom16(serverV6.As16()), tcpip.AddrFrom16(clientV6.As16())
	}
	tcp := header.TCP(pkt.TransportHeader().Push(header.TCPMinimumSize + tsOptLen))
	tcp.Encode(&header.TCPFields{
		SrcPort: 80, DstPort: 40000, SeqNum: testSeq, AckNum: 1001,
		DataOffset: header.TCPMinimumSize + tsOptLen, Flags: flags, WindowSize: 5000,
	})
	opts := tcp[header.TCPMinimumSize:]
	header.EncodeTSOption(7, 9, opts[header.EncodeNOP(opts)+header.EncodeNOP(opts[1:]):])
	pkt.TransportProtocolNumber = header.TCPProtocolNumber
	tcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(pkt.Size())))
	gso := gvstack.GSO{NeedsCsum: true, CsumOffset: header.TCPChecksumOffset, MSS: testMSS, MaxSize: gsoMaxSize}
	if v6 {
		ip := header.IPv6(pkt.NetworkHeader().Push(header.IPv6MinimumSize))
		ip.Encode(&header.IPv6Fields{PayloadLength: uint16(pkt.Size() - header.IPv6MinimumSize), TransportProtocol: header.TCPProtocolNumber, HopLimit: 64, SrcAddr: src, DstAddr: dst})
		pkt.NetworkProtocolNumber = header.IPv6ProtocolNumber
		gso.Type, gso.L3HdrLen = gvstack.GSOTCPv6, header.IPv6MinimumSize
	} else {
		ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(pkt.Size()), ID: testIPv4ID, Flags: header.IPv4FlagDontFragment, TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: src, DstAddr: dst})
		ip.SetChecksum(^ip.CalculateChecksum())
		pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
		gso.Type, gso.L3HdrLen = gvstack.GSOTCPv4, header.IPv4MinimumSize
	}
	pkt.GSOOptions = gso
	pkt.EgressRoute.RemoteAddress = dst
	ep.AddHeader(pkt)
	return pkt
}

func gsoEndpoint(q TxQueue) *endpoint {
	ep := newEndpoint(Config{LinkAddr: serverMAC, MTU: 1500, Queues: []TxQueue{q}})
	ep.neigh.learn(tcpip.AddrFrom4(clientV4.As4()), clientMAC, time.Now().UnixNano())
	ep.neigh.learn(tcpip.AddrFrom16(clientV6.As16()), clientMAC, time.Now().UnixNano())
	return ep
}

// checkFrames checks the frames one GSO segment was cut into: full IP and
// TCP checksums, lengths, contiguous sequence numbers, fresh IPv4 IDs,
// flags, the TCP options, and the payload, byte for byte. total is the
// number of frames the whole segment takes (frames may hold only a prefix).
func checkFrames(t *testing.T, frames [][]byte, v6 bool, payload []byte, flags header.TCPFlags, total int) {
	t.Helper()
	var got []byte
	for i, f := range frames {
		eth := header.Ethernet(f)
		if eth.DestinationAddress() != tcpip.LinkAddress(clientMAC) || eth.SourceAddress() != tcpip.LinkAddress(serverMAC) {
			t.Fatalf("frame %d: Ethernet %v -> %v", i, eth.SourceAddress(), eth.DestinationAddress())
		}
		var tcp header.TCP
		var src, dst tcpip.Address
		if v6 {
			ip := header.IPv6(f[header.EthernetMinimumSize:])
			if !ip.IsValid(len(ip)) || int(ip.PayloadLength()) != len(ip)-header.IPv6MinimumSize {
				t.Fatalf("frame %d: IPv6 payload length %d in a packet of %d bytes", i, ip.PayloadLength(), len(ip))
			}
			tcp, src, dst = header.TCP(ip.Payload()), ip.SourceAddress(), ip.DestinationAddress()
		} else {
			ip := header.IPv4(f[header.EthernetMinimumSize:])
			if !ip.IsValid(len(ip)) || int(ip.TotalLength()) != len(ip) {
				t.Fatalf("frame %d: IPv4 total length %d in a packet of %d bytes", i, ip.TotalLength(), len(ip))
			}
			if !ip.IsChecksumValid() {
				t.Fatalf("frame %d: bad IPv4 header checksum", i)
			}
			if want := uint16(testIPv4ID + i); ip.ID() != want {
				t.Errorf("frame %d: IPv4 ID %#x, want %#x", i, ip.ID(), want)
			}
			tcp, src, dst = header.TCP(ip.Payload()), ip.SourceAddress(), ip.DestinationAddress()
		}
		data := tcp.Payload()
		if !tcp.IsChecksumValid(src, dst, checksum.Checksum(data, 0), uint16(len(data))) {
			t.Fatalf("frame %d: bad TCP checksum", i)
		}
		if want := uint32(testSeq + i*testMSS); tcp.SequenceNumber() != want {
			t.Errorf("frame %d: seq %#x, want %#x", i, tcp.SequenceNumber(), want)
		}
		if i < total-1 && len(data) != testMSS {
			t.Errorf("frame %d of %d: %d bytes of payload, want the MSS, %d", i, total, len(data), testMSS)
		}
		want := flags
		if i > 0 {
			want &^= header.TCPFlagCwr
		}
		if i < total-1 {
			want &^= header.TCPFlagPsh | header.TCPFlagFin
		}
		if tcp.Flags() != want {
			t.Errorf("frame %d of %d: flags %v, want %v", i, total, tcp.Flags(), want)
		}
		if tcp.AckNumber() != 1001 || tcp.WindowSize() != 5000 {
			t.Errorf("frame %d: ack %d window %d", i, tcp.AckNumber(), tcp.WindowSize())
		}
		if o := header.ParseTCPOptions(tcp.Options()); !o.TS || o.TSVal != 7 || o.TSEcr != 9 {
			t.Errorf("frame %d: options %+v, want the timestamps 7, 9", i, o)
		}
		got = append(got, data...)
	}
	if !bytes.Equal(got, payload[:len(got)]) || (len(frames) == total && len(got) != len(payload)) {
		t.Fatalf("the frames carry %d bytes that differ from the %d-byte payload", len(got), len(payload))
	}
}

// A GSO segment leaves as MSS-sized frames, each a valid TCP segment of its
// own, together carrying the segment's payload.
func TestSegmentGSO(t *testing.T) {
	for _, c := range []struct {
		name  string
		v6    bool
		size  int
		flags header.TCPFlags
	}{
		{"IPv4, not a multiple of the MSS", false, 10*testMSS + 1000, header.TCPFlagAck | header.TCPFlagPsh},
		{"IPv6, not a multiple of the MSS", true, 10*testMSS + 1000, header.TCPFlagAck | header.TCPFlagPsh},
		{"IPv4, a multiple of the MSS", false, 4 * testMSS, header.TCPFlagAck},
		{"IPv4, FIN and PSH", false, 3*testMSS + 1, header.TCPFlagAck | header.TCPFlagPsh | header.TCPFlagFin},
		{"IPv6, FIN, PSH and CWR", true, 3*testMSS + 1, header.TCPFlagAck | header.TCPFlagPsh | header.TCPFlagFin | header.TCPFlagCwr},
		{"IPv4, 64 KiB", false, gsoMaxSize - header.TCPTotalHeaderMaximumSize - 1, header.TCPFlagAck | header.TCPFlagPsh},
		{"IPv6, 64 KiB", true, gsoMaxSize - header.TCPTotalHeaderMaximumSize - 1, header.TCPFlagAck | header.TCPFlagPsh},
		// gVisor sets GSOOptions on every segment of a connection, so
		// these too carry only the pseudo-header sum.
		{"IPv4, less than the MSS", false, 100, header.TCPFlagAck | header.TCPFlagPsh},
		{"IPv6, a pure ACK", true, 0, header.TCPFlagAck},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := newFakeQueue()
			ep := gsoEndpoint(q)
			payload := make([]byte, c.size)
			rand.Read(payload)
			var pkts gvstack.PacketBufferList
			pkts.PushBack(gsoPacket(ep, c.v6, payload, c.flags))
			defer pkts.DecRef()
			if n, err := ep.WritePackets(pkts); n != 1 || err != nil {
				t.Fatalf("WritePackets = %d, %v", n, err)
			}
			want := max(1, (c.size+testMSS-1)/testMSS)
			if c := q.counts(); c.sent != want || c.short != 0 {
				t.Fatalf("%+v; want %d frames sent", c, want)
			}
			q.mu.Lock()
			frames := q.frames
			q.mu.Unlock()
			if len(frames) != want {
				t.Fatalf("%d frames, want %d", len(frames), want)
			}
			checkFrames(t, frames, c.v6, payload, c.flags, want)
		})
	}
}

// A tx ring with room for fewer frames than a batch needs sends the first
// frames and counts the rest as dropped; packets after the first are cut
// where the room ends, and a plain packet after them is dropped.
func TestSegmentGSORingShort(t *testing.T) {
	q := newFakeQueue()
	q.room = 7
	ep := gsoEndpoint(q)
	payload := make([]byte, 5*testMSS)
	rand.Read(payload)
	var pkts gvstack.PacketBufferList
	pkts.PushBack(gsoPacket(ep, false, payload, header.TCPFlagAck|header.TCPFlagPsh))
	pkts.PushBack(gsoPacket(ep, false, payload, header.TCPFlagAck|header.TCPFlagPsh))
	pkts.PushBack(gsoPacket(ep, false, nil, header.TCPFlagAck))
	defer pkts.DecRef()
	ep.WritePackets(pkts)
	if c := q.counts(); c.sent != 7 || c.short != 4 {
		t.Fatalf("%+v; want 7 frames sent, 4 dropped", c)
	}
	q.mu.Lock()
	frames := q.frames
	q.mu.Unlock()
	checkFrames(t, frames[:5], false, payload, header.TCPFlagAck|header.TCPFlagPsh, 5)
	checkFrames(t, frames[5:], false, payload, header.TCPFlagAck|header.TCPFlagPsh, 5)
}

// staticQueue is a tx queue that allocates nothing per batch.
type staticQueue struct{ frames [][]byte }

func (q *staticQueue) BeginTx(n int) int    { return min(n, len(q.frames)) }
func (q *staticQueue) TxFrame(i int) []byte { return q.frames[i][:cap(q.frames[i])] }
func (q *staticQueue) SetTxLen(i, n int)    { q.frames[i] = q.frames[i][:n] }
func (q *staticQueue) EndTx() error         { return nil }

func newStaticQueue() *staticQueue {
	q := &staticQueue{frames: make([][]byte, 64)}
	for i := range q.frames {
		q.frames[i] = make([]byte, 2048)
	}
	return q
}

// Cutting a 64 KiB segment into frames allocates nothing.
func TestSegmentGSONoAllocs(t *testing.T) {
	q := newStaticQueue()
	ep := gsoEndpoint(q)
	var pkts gvstack.PacketBufferList
	pkts.PushBack(gsoPacket(ep, false, make([]byte, 45*testMSS+255), header.TCPFlagAck|header.TCPFlagPsh))
	defer pkts.DecRef()
	if n := testing.AllocsPerRun(100, func() { ep.WritePackets(pkts) }); n != 0 {
		t.Fatalf("%v allocations per 64 KiB segment, want 0", n)
	}
}

func BenchmarkSegmentGSO(b *testing.B) {
	for _, c := range []struct {
		name string
		size int
	}{{"64KiB", 45*testMSS + 255}, {"1frame", testMSS}} {
		b.Run(c.name, func(b *testing.B) {
			q := newStaticQueue()
			ep := gsoEndpoint(q)
			var pkts gvstack.PacketBufferList
			pkts.PushBack(gsoPacket(ep, false, make([]byte, c.size), header.TCPFlagAck|header.TCPFlagPsh))
			defer pkts.DecRef()
			b.SetBytes(int64(c.size))
			b.ReportAllocs()
			for b.Loop() {
				ep.WritePackets(pkts)
			}
		})
	}
}

// A batch is bounded in frames: a backlog of GSO segments leaves a few at a
// time, and a segment of more frames than a batch leaves alone.
func TestBatcherCountsFrames(t *testing.T) {
	ep := gsoEndpoint(newFakeQueue())
	seg := func(frames int) *gvstack.PacketBuffer {
		return gsoPacket(ep, false, make([]byte, frames*testMSS), header.TCPFlagAck)
	}
	f, b, _ := writing(t, 1)
	// 30 + 30 + 4 frames, then one of 100 frames, then 1.
	for _, n := range []int{30, 30, 4, 100, 1} {
		p := seg(n)
		if err := b.WritePacket(p); err != nil {
			t.Fatal(err)
		}
		p.DecRef()
	}
	if got := waitingFrames(b); got != 165 {
		t.Fatalf("backlog of %d frames, want 165", got)
	}
	for range 3 {
		f.hold <- struct{}{}
		<-f.entered
	}
	f.hold <- struct{}{}
	deadline := time.Now().Add(5 * time.Second)
	for len(f.got()) < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var sizes []int
	for _, batch := range f.got() {
		sizes = append(sizes, len(batch))
	}
	if len(sizes) != 4 || sizes[1] != 3 || sizes[2] != 1 || sizes[3] != 1 {
		t.Fatalf("batches of %v packets; want 1, then 3 (64 frames), 1 (100 frames), 1", sizes)
	}
	if got := waitingFrames(b); got != 0 {
		t.Fatalf("backlog of %d frames after draining, want 0", got)
	}
}

func waitingFrames(b *batcher) int {
	q := &b.queues[0]
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waitingFrames
}

// gsoRecorder is a GSOSender that records what it was handed, in the same
// log as the frames sent around it.
type gsoRecorder struct {
	log  *[]string
	segs [][]byte // each segment's bytes, joined
	args [][5]int // v6 (0/1), hdrLen, mss, csumStart, csumOffset
	err  error
}

func (g *gsoRecorder) SendGSO(v6 bool, hdrLen, mss, csumStart, csumOffset int, bufs [][]byte, owner interface{ DecRef() }) error {
	defer owner.DecRef()
	if g.err != nil {
		return g.err
	}
	*g.log = append(*g.log, "gso")
	g.segs = append(g.segs, bytes.Join(bufs, nil))
	b := 0
	if v6 {
		b = 1
	}
	g.args = append(g.args, [5]int{b, hdrLen, mss, csumStart, csumOffset})
	return nil
}

func gsoSenderEndpoint(t *testing.T) (*endpoint, *gsoRecorder, *[]string) {
	t.Helper()
	log := new([]string)
	q := newFakeQueue()
	q.forward = func(frames [][]byte) { *log = append(*log, fmt.Sprintf("frames:%d", len(frames))) }
	g := &gsoRecorder{log: log}
	ep := newEndpoint(Config{LinkAddr: serverMAC, MTU: 1500, Queues: []TxQueue{q}, GSO: []GSOSender{g}})
	ep.neigh.learn(tcpip.AddrFrom4(clientV4.As4()), clientMAC, time.Now().UnixNano())
	ep.neigh.learn(tcpip.AddrFrom16(clientV6.As16()), clientMAC, time.Now().UnixNano())
	return ep, g, log
}

// With a GSO sender, a segment of more than one frame goes to it whole and
// everything else into frames, in the packets' order: the frames before a
// large segment are sent (EndTx) before it is handed over, and those after
// it after (the sender, nic.Socket, keeps them in that order).
func TestGSOSenderOrder(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		ep, g, log := gsoSenderEndpoint(t)
		big := make([]byte, 20*testMSS+7)
		rand.Read(big)
		var pkts gvstack.PacketBufferList
		pkts.PushBack(gsoPacket(ep, v6, []byte("one frame"), header.TCPFlagAck|header.TCPFlagPsh))
		pkts.PushBack(gsoPacket(ep, v6, big, header.TCPFlagAck|header.TCPFlagPsh))
		pkts.PushBack(gsoPacket(ep, v6, big, header.TCPFlagAck|header.TCPFlagPsh))
		pkts.PushBack(gsoPacket(ep, v6, nil, header.TCPFlagAck))
		pkts.PushBack(gsoPacket(ep, v6, []byte("another"), header.TCPFlagAck))
		if n, err := ep.WritePackets(pkts); n != 5 || err != nil {
			t.Fatalf("WritePackets = %d, %v", n, err)
		}
		want := []string{"frames:1", "gso", "gso", "frames:2"}
		if fmt.Sprint(*log) != fmt.Sprint(want) {
			t.Errorf("v6 %v: sent %v, want %v", v6, *log, want)
		}
		l3 := header.IPv4MinimumSize
		if v6 {
			l3 = header.IPv6MinimumSize
		}
		hdr := header.EthernetMinimumSize + l3 + header.TCPMinimumSize + tsOptLen
		wantArgs := [5]int{0, hdr, testMSS, header.EthernetMinimumSize + l3, header.TCPChecksumOffset}
		if v6 {
			wantArgs[0] = 1
		}
		for i, seg := range g.segs {
			if g.args[i] != wantArgs {
				t.Errorf("v6 %v: segment %d: (v6, hdrLen, mss, csumStart, csumOffset) = %v, want %v", v6, i, g.args[i], wantArgs)
			}
			pkt := pkts.AsSlice()[1+i]
			if want := pkt.ToView().AsSlice(); !bytes.Equal(seg, want) {
				t.Errorf("v6 %v: segment %d: %d bytes handed over, not the packet's %d", v6, i, len(seg), len(want))
			}
			if !bytes.Equal(seg[hdr:], big) {
				t.Errorf("v6 %v: segment %d: payload differs", v6, i)
			}
		}
		if c := ep.counters(); c.TxGSO != 2 || c.TxGSOErrors != 0 || len(*log) != 4 {
			t.Errorf("v6 %v: counters %+v, sent %v; want 2 GSO segments and 3 frames", v6, c, *log)
		}
		pkts.DecRef()
	}
}

// A segment the GSO sender refuses is counted and cut into frames instead,
// with the packets after it.
func TestGSOSenderError(t *testing.T) {
	ep, g, log := gsoSenderEndpoint(t)
	g.err = errors.New("no buffer space")
	var pkts gvstack.PacketBufferList
	pkts.PushBack(gsoPacket(ep, false, make([]byte, 3*testMSS), header.TCPFlagAck))
	pkts.PushBack(gsoPacket(ep, false, nil, header.TCPFlagAck))
	defer pkts.DecRef()
	if n, err := ep.WritePackets(pkts); n != 2 || err != nil {
		t.Fatalf("WritePackets = %d, %v", n, err)
	}
	if c := ep.counters(); c.TxGSOErrors != 1 || c.TxGSO != 0 {
		t.Errorf("counters %+v; want 1 GSO error", c)
	}
	if fmt.Sprint(*log) != "[frames:4]" {
		t.Errorf("sent %v, want the segment's 3 frames and the ACK's in one batch", *log)
	}
}

// nopGSO takes segments and keeps nothing.
type nopGSO struct{}

func (nopGSO) SendGSO(_ bool, _, _, _, _ int, _ [][]byte, owner interface{ DecRef() }) error {
	owner.DecRef()
	return nil
}

// Handing a 64 KiB segment to the GSO sender allocates nothing.
func TestGSOSenderNoAllocs(t *testing.T) {
	ep := newEndpoint(Config{LinkAddr: serverMAC, MTU: 1500, Queues: []TxQueue{newStaticQueue()}, GSO: []GSOSender{nopGSO{}}})
	ep.neigh.learn(tcpip.AddrFrom4(clientV4.As4()), clientMAC, time.Now().UnixNano())
	var pkts gvstack.PacketBufferList
	pkts.PushBack(gsoPacket(ep, false, make([]byte, 45*testMSS+255), header.TCPFlagAck|header.TCPFlagPsh))
	pkts.PushBack(gsoPacket(ep, false, nil, header.TCPFlagAck))
	defer pkts.DecRef()
	if n := testing.AllocsPerRun(100, func() { ep.WritePackets(pkts) }); n != 0 {
		t.Fatalf("%v allocations per 64 KiB segment and an ACK, want 0", n)
	}
}
