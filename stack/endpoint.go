package stack

import (
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
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
	neigh  neighbours

	dispatcher atomic.Pointer[dispatcherRef]

	rxFrames, rxMalformed             atomic.Uint64
	txFrames, txNoNeighbour, txNotTCP atomic.Uint64
	txRingFull                        atomic.Uint64
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
	if cfg.TrustRXChecksum {
		ep.caps |= gvstack.CapabilityRXChecksumOffload
	}
	return ep
}

func (ep *endpoint) deliver(frame []byte) {
	ep.rxFrames.Add(1)
	if len(frame) < header.EthernetMinimumSize {
		ep.rxMalformed.Add(1)
		return
	}
	eth := header.Ethernet(frame)
	proto := eth.Type()
	ip := frame[header.EthernetMinimumSize:]
	var src tcpip.Address
	switch proto {
	case header.IPv4ProtocolNumber:
		if len(ip) < header.IPv4MinimumSize {
			ep.rxMalformed.Add(1)
			return
		}
		src = header.IPv4(ip).SourceAddress()
	case header.IPv6ProtocolNumber:
		if len(ip) < header.IPv6MinimumSize {
			ep.rxMalformed.Add(1)
			return
		}
		src = header.IPv6(ip).SourceAddress()
	default:
		// The XDP program steers only IP; anything else is a bug there or a
		// stray frame, and the kernel owns it.
		ep.rxMalformed.Add(1)
		return
	}
	ref := ep.dispatcher.Load()
	if ref == nil {
		return
	}
	ep.neigh.learn(src, frame[6:12])

	pkt := gvstack.NewPacketBuffer(gvstack.PacketBufferOptions{
		Payload: buffer.MakeWithData(frame),
	})
	pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	ref.d.DeliverNetworkPacket(proto, pkt)
	pkt.DecRef()
}

// WritePackets copies packets into tx frames of one queue and sends them.
// Packets the kernel should send instead (anything but TCP) and packets to a
// peer whose MAC is unknown are dropped and counted.
func (ep *endpoint) WritePackets(pkts gvstack.PacketBufferList) (int, tcpip.Error) {
	all := pkts.AsSlice()
	sendable := 0
	for _, pkt := range all {
		switch ep.verdict(pkt) {
		case send:
			sendable++
		case notTCP:
			ep.txNotTCP.Add(1)
		case noNeighbour:
			ep.txNoNeighbour.Add(1)
		}
	}
	if sendable == 0 {
		return len(all), nil
	}
	// A flow's packets share a hash, so a flow stays on one queue.
	q := ep.queues[all[0].Hash%uint32(len(ep.queues))]
	got := q.BeginTx(sendable)
	i := 0
	for _, pkt := range all {
		if i == got {
			break
		}
		if ep.verdict(pkt) != send {
			continue
		}
		q.SetTxLen(i, copyPacket(q.TxFrame(i), pkt))
		i++
	}
	err := q.EndTx()
	ep.txFrames.Add(uint64(got))
	if got < sendable {
		ep.txRingFull.Add(uint64(sendable - got))
	}
	if err != nil {
		return got, &tcpip.ErrAborted{}
	}
	return len(all), nil
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

// copyPacket copies the packet's views into frame, without building a slice
// of them, and returns its length.
func copyPacket(frame []byte, pkt *gvstack.PacketBuffer) int {
	n := 0
	views, off := pkt.AsViewList()
	for v := views.Front(); v != nil; v = v.Next() {
		b := v.AsSlice()
		if off >= len(b) {
			off -= len(b)
			continue
		}
		n += copy(frame[n:], b[off:])
		off = 0
	}
	return n
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
		RxFrames:      ep.rxFrames.Load(),
		RxMalformed:   ep.rxMalformed.Load(),
		TxFrames:      ep.txFrames.Load(),
		TxNoNeighbour: ep.txNoNeighbour.Load(),
		TxNoTCP:       ep.txNotTCP.Load(),
		TxRingFull:    ep.txRingFull.Load(),
	}
}
