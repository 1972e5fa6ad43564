package stack

import (
	"log/slog"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// endpoint is the netstack's link endpoint: Ethernet over a set of AF_XDP
// queues. It does no ARP or ND of its own; the kernel keeps answering those
// on the shared addresses, and the endpoint addresses each frame it sends to
// the MAC its peer's last frame came from.
type endpoint struct {
	mac    tcpip.LinkAddress
	mtu    uint32
	caps   gvstack.LinkEndpointCapabilities
	queues []TxQueue
	gso    []gsoQueue // nil, or one per queue
	neigh  neighbours
	strays strayFilter

	dispatcher atomic.Pointer[dispatcherRef]

	// What only the endpoint knows; frames received and sent, and frames
	// the tx ring had no room for, are counted per queue by irq and nic.
	rxMalformed             atomic.Uint64
	rxACKsCoalesced         atomic.Uint64 // bare ACKs a later one in their batch stood for (DeliverBatch)
	txNoNeighbour, txNotTCP atomic.Uint64
	txGSO, txGSOErrors      atomic.Uint64
}

// gsoQueue is a queue's GSO sender and the slice its segments' pieces are
// gathered in; only the queue's writer (the batcher's) touches it.
type gsoQueue struct {
	tx   GSOSender
	bufs [][]byte
}

// dispatcherRef boxes the interface so that it can sit in an atomic.Pointer:
// every queue's loop reads it per frame, and a lock would be shared by all.
type dispatcherRef struct{ d gvstack.NetworkDispatcher }

var _ gvstack.LinkEndpoint = (*endpoint)(nil)

func newEndpoint(cfg Config) *endpoint {
	ep := &endpoint{
		mac:    tcpip.LinkAddress(cfg.LinkAddr),
		mtu:    cfg.MTU,
		queues: cfg.Queues,
	}
	ep.neigh.init()
	for _, g := range cfg.GSO {
		ep.gso = append(ep.gso, gsoQueue{tx: g, bufs: make([][]byte, 0, 64)})
	}
	if cfg.TrustRXChecksum {
		ep.caps |= gvstack.CapabilityRXChecksumOffload
	}
	return ep
}

// deliver hands one received frame to the netstack, and reports whether
// it did; now is the time it came (Unix nanoseconds), for the neighbour
// table and the strays' budget.
func (ep *endpoint) deliver(frame []byte, now int64) bool {
	if len(frame) < header.EthernetMinimumSize {
		ep.rxMalformed.Add(1)
		return false
	}
	eth := header.Ethernet(frame)
	proto := eth.Type()
	ip := frame[header.EthernetMinimumSize:]
	var src tcpip.Address
	switch proto {
	case header.IPv4ProtocolNumber:
		if len(ip) < header.IPv4MinimumSize {
			ep.rxMalformed.Add(1)
			return false
		}
		src = header.IPv4(ip).SourceAddress()
	case header.IPv6ProtocolNumber:
		if len(ip) < header.IPv6MinimumSize {
			ep.rxMalformed.Add(1)
			return false
		}
		src = header.IPv6(ip).SourceAddress()
	default:
		// The XDP program steers only IP; anything else is a bug there or a
		// stray frame, and the kernel owns it.
		ep.rxMalformed.Add(1)
		return false
	}
	ref := ep.dispatcher.Load()
	if ref == nil || ep.strays.drop(proto, ip, now) {
		return false
	}
	ep.neigh.learn(src, frame[6:12], now)

	pkt := gvstack.NewPacketBuffer(gvstack.PacketBufferOptions{
		Payload: buffer.MakeWithData(frame),
	})
	pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	ref.d.DeliverNetworkPacket(proto, pkt)
	pkt.DecRef()
	return true
}

// WritePackets sends packets out of one queue: through tx frames, and TCP
// segments larger than a frame through the queue's GSO sender when it has
// one, in their order. Packets the kernel should send instead (anything but
// TCP) and packets to a peer whose MAC is unknown are dropped and counted.
func (ep *endpoint) WritePackets(pkts gvstack.PacketBufferList) (int, tcpip.Error) {
	all := pkts.AsSlice()
	if len(all) == 0 {
		return 0, nil
	}
	// A flow's packets share a hash, so a flow stays on one queue.
	qi := all[0].Hash % uint32(len(ep.queues))
	if ep.gso == nil {
		return ep.writeFrames(ep.queues[qi], all)
	}
	// The queue's GSO sender keeps the segments in order with the frames
	// sent through the queue before and after them.
	g := &ep.gso[qi]
	start := 0
	for i, pkt := range all {
		if txFramesOf(pkt) == 1 || ep.verdict(pkt) != send {
			continue
		}
		if _, err := ep.writeFrames(ep.queues[qi], all[start:i]); err != nil {
			return start, err
		}
		if ep.sendGSO(g, pkt) {
			start = i + 1
		} else {
			start = i // cut into frames with what follows
		}
	}
	if _, err := ep.writeFrames(ep.queues[qi], all[start:]); err != nil {
		return start, err
	}
	return len(all), nil
}

// sendGSO hands pkt, a TCP segment of more than one frame, to the kernel
// whole, and reports whether it took it. A failure is counted and logged,
// and the caller cuts the segment into frames instead.
func (ep *endpoint) sendGSO(g *gsoQueue, pkt *gvstack.PacketBuffer) bool {
	g.bufs = g.bufs[:0]
	eachPiece(pkt, func(b []byte) { g.bufs = append(g.bufs, b) })
	ethLen := len(pkt.LinkHeader().Slice())
	o := pkt.GSOOptions
	err := g.tx.SendGSO(o.Type == gvstack.GSOTCPv6, pkt.HeaderSize(), int(o.MSS),
		ethLen+int(o.L3HdrLen), int(o.CsumOffset), g.bufs, pkt.IncRef())
	clear(g.bufs)
	if err != nil {
		// Logged the 1st, 2nd, 4th, 8th... time: seen, and bounded.
		if n := ep.txGSOErrors.Add(1); n&(n-1) == 0 {
			slog.Warn("GSO send failed; the segment goes out as AF_XDP frames", "err", err, "failures", n)
		}
		return false
	}
	ep.txGSO.Add(1)
	return true
}

// writeFrames copies packets into tx frames of q and sends them. A TCP
// segment handed over whole (host GSO) is cut into MSS-sized frames here;
// when the ring gives fewer frames than the packets need, the frames that
// do not fit are dropped (nic counts them), and TCP resends them.
func (ep *endpoint) writeFrames(q TxQueue, all []*gvstack.PacketBuffer) (int, tcpip.Error) {
	need := 0
	for _, pkt := range all {
		switch ep.verdict(pkt) {
		case send:
			need += txFramesOf(pkt)
		case notTCP:
			ep.txNotTCP.Add(1)
		case noNeighbour:
			ep.txNoNeighbour.Add(1)
		}
	}
	if need == 0 {
		return len(all), nil
	}
	got := q.BeginTx(need)
	i, written := 0, 0
	for _, pkt := range all {
		if i == got {
			break
		}
		if ep.verdict(pkt) != send {
			continue
		}
		if pkt.GSOOptions.Type != gvstack.GSONone {
			i += segmentPacket(q, i, got-i, pkt)
		} else {
			q.SetTxLen(i, copyPacket(q.TxFrame(i), pkt))
			i++
		}
		written++
	}
	if err := q.EndTx(); err != nil {
		return written, &tcpip.ErrAborted{}
	}
	return len(all), nil
}

// gsoMaxSize is the largest TCP segment the netstack hands the endpoint
// (host GSO): 64 KiB, the most an IPv4 packet's length field can say, as
// Linux's TSO. At a 1,500-byte MTU that is at most 46 frames, within one
// batch of the batcher (maxBatchFrames); with a smaller MSS a segment can be
// more frames than a batch, and the batcher then sends it alone. Larger
// segments would not save much more: the netstack's cost is per segment,
// and at 64 KiB it is already paid once per 45 frames.
const gsoMaxSize = 1 << 16

var _ gvstack.GSOEndpoint = (*endpoint)(nil)

// GSOMaxSize and SupportedGSO have the netstack hand TCP segments of up to
// gsoMaxSize to WritePackets, which cuts them into frames as a NIC's TSO (or
// the kernel's tcp_gso_segment) does: a CPU profile of 64 KiB responses had
// 40 % of the CPU in gVisor's path from the TCP sender to the link endpoint,
// taken once per frame. gVisor's loss recovery then has to see those
// segments as MSS-sized ones, which third_party/gvisor-patches/0002 does.
func (ep *endpoint) GSOMaxSize() uint32                 { return gsoMaxSize }
func (ep *endpoint) SupportedGSO() gvstack.SupportedGSO { return gvstack.HostGSOSupported }

// txFramesOf is how many tx frames pkt takes: ceil(payload/MSS) for a GSO
// segment, one for anything else.
func txFramesOf(pkt *gvstack.PacketBuffer) int {
	mss := int(pkt.GSOOptions.MSS)
	n := pkt.Data().Size()
	if pkt.GSOOptions.Type == gvstack.GSONone || mss == 0 || n <= mss {
		return 1
	}
	return (n + mss - 1) / mss
}

// segmentPacket cuts a TCP segment that the netstack handed over whole
// (pkt.GSOOptions set) into frames first, first+1, ... of q, at most room of
// them, and returns how many it wrote. Each frame gets the packet's
// Ethernet, IP and TCP headers followed by the next MSS of payload, and then
// its own IP length, IPv4 ID and header checksum, TCP sequence number and
// flags (CWR only on the first frame, PSH and FIN only on the last, as
// tcp_gso_segment does), and a full TCP checksum: the netstack left only the
// pseudo-header sum of the whole segment there (CHECKSUM_PARTIAL,
// GSO.NeedsCsum), also on a segment that fits one frame, and frames sent
// through AF_XDP must carry full checksums.
func segmentPacket(q TxQueue, first, room int, pkt *gvstack.PacketBuffer) int {
	ethLen := len(pkt.LinkHeader().Slice())
	l3Len := len(pkt.NetworkHeader().Slice())
	tcpLen := len(pkt.TransportHeader().Slice())
	hdrLen := ethLen + l3Len + tcpLen
	payload := pkt.Data().Size()
	mss := int(pkt.GSOOptions.MSS)
	if mss == 0 || mss > payload {
		mss = payload
	}
	total := txFramesOf(pkt)
	n := min(total, room)

	// Copy: the packet's bytes, headers then payload, in one walk over its
	// views. Frame 0 gets them as they come; every later frame starts with
	// a copy of frame 0's headers, still untouched until the fix-up below.
	views, off := pkt.AsViewList()
	hdr := q.TxFrame(first)[:hdrLen]
	frame, f, pos, end := q.TxFrame(first), 0, 0, hdrLen+mss
	for v := views.Front(); v != nil && f < n; v = v.Next() {
		b := v.AsSlice()
		if off >= len(b) {
			off -= len(b)
			continue
		}
		b, off = b[off:], 0
		for len(b) > 0 {
			if pos == end {
				q.SetTxLen(first+f, pos)
				if f++; f == n {
					break
				}
				frame = q.TxFrame(first + f)
				pos = copy(frame, hdr)
			}
			k := copy(frame[pos:end], b)
			pos += k
			b = b[k:]
		}
	}
	if f < n {
		q.SetTxLen(first+f, pos)
	}

	// Fix up each frame's headers.
	v4 := pkt.NetworkProtocolNumber == header.IPv4ProtocolNumber
	for i := range n {
		frame := q.TxFrame(first + i)
		plen := min(mss, payload-i*mss)
		ip := frame[ethLen:]
		var src, dst tcpip.Address
		if v4 {
			h := header.IPv4(ip)
			h.SetTotalLength(uint16(l3Len + tcpLen + plen))
			h.SetID(h.ID() + uint16(i))
			h.SetChecksum(0)
			h.SetChecksum(^h.CalculateChecksum())
			src, dst = h.SourceAddress(), h.DestinationAddress()
		} else {
			h := header.IPv6(ip)
			h.SetPayloadLength(uint16(l3Len - header.IPv6MinimumSize + tcpLen + plen))
			src, dst = h.SourceAddress(), h.DestinationAddress()
		}
		tcp := header.TCP(ip[l3Len : l3Len+tcpLen+plen])
		flags := tcp.Flags()
		if i > 0 {
			tcp.SetSequenceNumber(tcp.SequenceNumber() + uint32(i*mss))
			flags &^= header.TCPFlagCwr
		}
		if i < total-1 {
			flags &^= header.TCPFlagPsh | header.TCPFlagFin
		}
		tcp.SetFlags(uint8(flags))
		tcp.SetChecksum(0)
		xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(tcpLen+plen))
		xsum = checksum.Checksum(tcp[tcpLen:], xsum)
		tcp.SetChecksum(^tcp.CalculateChecksum(xsum))
	}
	return n
}

// verdict says whether pkt goes out through AF_XDP. AddHeader left a zero
// destination MAC for an unknown neighbour.
func (ep *endpoint) verdict(pkt *gvstack.PacketBuffer) txVerdict {
	if pkt.TransportProtocolNumber != header.TCPProtocolNumber {
		return notTCP
	}
	if header.Ethernet(pkt.LinkHeader().Slice()).DestinationAddress() == zeroMAC {
		return noNeighbour
	}
	return send
}

type txVerdict int

const (
	send txVerdict = iota
	notTCP
	noNeighbour
)

const zeroMAC = tcpip.LinkAddress("\x00\x00\x00\x00\x00\x00")

// copyPacket copies the packet's bytes into frame and returns their length.
func copyPacket(frame []byte, pkt *gvstack.PacketBuffer) int {
	n := 0
	eachPiece(pkt, func(b []byte) { n += copy(frame[n:], b) })
	return n
}

// eachPiece calls fn with the packet's bytes, headers then payload, piece
// by piece as its views hold them, without building a slice of them; fn
// does not escape, so the closures that call it allocate nothing.
func eachPiece(pkt *gvstack.PacketBuffer, fn func([]byte)) {
	views, off := pkt.AsViewList()
	for v := views.Front(); v != nil; v = v.Next() {
		b := v.AsSlice()
		if off >= len(b) {
			off -= len(b)
			continue
		}
		fn(b[off:])
		off = 0
	}
}

func (ep *endpoint) AddHeader(pkt *gvstack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: ep.mac,
		DstAddr: ep.neigh.lookup(pkt.EgressRoute.RemoteAddress),
		Type:    pkt.NetworkProtocolNumber,
	})
}

func (ep *endpoint) ParseHeader(pkt *gvstack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

func (ep *endpoint) Attach(d gvstack.NetworkDispatcher) {
	if d == nil {
		ep.dispatcher.Store(nil)
		return
	}
	ep.dispatcher.Store(&dispatcherRef{d})
}

func (ep *endpoint) IsAttached() bool                               { return ep.dispatcher.Load() != nil }
func (ep *endpoint) MTU() uint32                                    { return ep.mtu }
func (ep *endpoint) SetMTU(mtu uint32)                              {}
func (ep *endpoint) MaxHeaderLength() uint16                        { return header.EthernetMinimumSize }
func (ep *endpoint) LinkAddress() tcpip.LinkAddress                 { return ep.mac }
func (ep *endpoint) SetLinkAddress(tcpip.LinkAddress)               {}
func (ep *endpoint) Capabilities() gvstack.LinkEndpointCapabilities { return ep.caps }
func (ep *endpoint) ARPHardwareType() header.ARPHardwareType        { return header.ARPHardwareEther }
func (ep *endpoint) Wait()                                          {}
func (ep *endpoint) Close()                                         {}
func (ep *endpoint) SetOnCloseAction(func())                        {}

func (ep *endpoint) counters() Counters {
	return Counters{
		RxMalformed:     ep.rxMalformed.Load(),
		RxACKsCoalesced: ep.rxACKsCoalesced.Load(),
		RxStray:         ep.strays.dropped.Load(),
		TxNoNeighbour:   ep.txNoNeighbour.Load(),
		TxNoTCP:         ep.txNotTCP.Load(),
		TxGSO:           ep.txGSO.Load(),
		TxGSOErrors:     ep.txGSOErrors.Load(),
	}
}
