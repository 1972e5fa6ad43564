// Package stack runs xhttpd's TCP/IP: one gVisor netstack whose single NIC is
// a link endpoint over every AF_XDP queue of the interface. The netstack
// takes the interface's own addresses, so the host and the server share
// them; the XDP program decides which segments come here.
//
// It owns the netstack's settings, the link endpoint (Ethernet framing, the
// choice of tx queue, neighbours learned from received frames), and Listen.
// It does not own the sockets (package nic), the loops that feed frames in
// (package irq, which calls Deliver), or HTTP.
package stack

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/xhttpd/xhttpd/syncookie"
)

const nicID = 1

// Config describes the netstack for one interface.
type Config struct {
	LinkAddr net.HardwareAddr // the interface's MAC: source of every frame sent
	MTU      uint32           // the interface's MTU
	Addrs    []netip.Prefix   // the interface's addresses the server answers on
	// TrustRXChecksum skips verification of received TCP checksums. Only for
	// drivers whose frames were checked already or never crossed a wire
	// (veth: the peer's stack wrote them and may have left only the
	// pseudo-header sum, with offload on).
	TrustRXChecksum bool
	Queues          []TxQueue // transmit goes out on one of these
	// GSO, when set, has one sender per queue (indexed like Queues, and
	// ordered with that queue: *nic.Socket is both) that hands TCP
	// segments larger than a frame to the kernel whole, to be cut there
	// (or by the NIC's TSO); without it the endpoint cuts them into frames
	// itself.
	GSO []GSOSender
	// SYNCookies, when set, is the key of the SYN cookies the XDP program
	// answers floods with; the listeners accept the handshakes it
	// completes (see useSYNCookies).
	SYNCookies *syncookie.Key
	// DelayedACK is how long the ACK of received data may wait for an
	// answer to carry it; 0 means DefaultDelayedACK, negative acknowledges
	// at once. It sets a global of the patched gVisor: every stack of a
	// process must use one value.
	DelayedACK time.Duration
	// MaxTimeWait bounds the connections in TIME-WAIT; one more closes at
	// once. 0 means DefaultMaxTimeWait, negative no bound. Like DelayedACK,
	// it sets a global of the patched gVisor.
	MaxTimeWait int
}

// TxQueue is the transmit side of one NIC queue, as *nic.Socket has it:
// BeginTx reserves up to n frames, each is written with TxFrame and
// SetTxLen, and EndTx sends them.
type TxQueue interface {
	BeginTx(n int) int
	TxFrame(i int) []byte
	SetTxLen(i, n int)
	EndTx() error
}

// GSOSender sends one Ethernet frame holding a TCP segment of more than
// mss bytes of payload, in pieces, for the kernel to cut into frames of
// mss bytes (as *nic.Socket does): hdrLen bytes of headers, the TCP header
// at csumStart with the pseudo-header's checksum at csumStart+csumOffset.
// The segment leaves after the frames its queue's EndTx sent before the
// call and before those sent after it. The pieces are owner's (the
// packet's), and SendGSO takes over a reference to it, which it drops
// (DecRef) when it no longer needs them, whether it sent them or not.
type GSOSender interface {
	SendGSO(v6 bool, hdrLen, mss, csumStart, csumOffset int, bufs [][]byte, owner interface{ DecRef() }) error
}

// Stack is a netstack bound to one interface's queues.
type Stack struct {
	s  *gvstack.Stack
	ep *endpoint
}

// New builds the netstack, with every TCP setting chosen here rather than
// left to gVisor's defaults.
func New(cfg Config) (*Stack, error) {
	if len(cfg.Queues) == 0 {
		return nil, errors.New("stack: no queues")
	}
	if len(cfg.LinkAddr) != 6 {
		return nil, fmt.Errorf("stack: link address %v is not Ethernet", cfg.LinkAddr)
	}
	s := gvstack.New(gvstack.Options{
		NetworkProtocols:   []gvstack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []gvstack.TransportProtocolFactory{tcp.NewProtocol},
	})
	if err := setTCPOptions(s); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.SYNCookies != nil {
		useSYNCookies(*cfg.SYNCookies)
	}
	tcp.DelayedACK = cmp.Or(cfg.DelayedACK, DefaultDelayedACK)
	tcp.MaxTimeWait = max(cmp.Or(cfg.MaxTimeWait, DefaultMaxTimeWait), 0)
	ep := newEndpoint(cfg)
	ep.strays.stack, ep.strays.key = s, cfg.SYNCookies
	// The batcher decides when packets reach the endpoint: at once when
	// their queue is idle, in batches when it is busy.
	if err := s.CreateNICWithOptions(nicID, ep, gvstack.NICOptions{QDisc: newBatcher(ep, len(cfg.Queues))}); err != nil {
		s.Close()
		return nil, fmt.Errorf("stack: create NIC: %s", err)
	}
	for _, p := range cfg.Addrs {
		proto := ipv4.ProtocolNumber
		if p.Addr().Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{
			Protocol:          proto,
			AddressWithPrefix: tcpip.AddrFromSlice(p.Addr().AsSlice()).WithPrefix(),
		}
		pa.AddressWithPrefix.PrefixLen = p.Bits()
		if err := s.AddProtocolAddress(nicID, pa, gvstack.AddressProperties{}); err != nil {
			s.Close()
			return nil, fmt.Errorf("stack: add address %v: %s", p, err)
		}
	}
	// Every destination is on the link: the netstack only ever answers
	// peers that sent it a segment, and the endpoint sends each answer to
	// the MAC that segment came from, router or host.
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	return &Stack{s: s, ep: ep}, nil
}

// DefaultDelayedACK is how long a received request's ACK may wait for the
// response to carry it (gVisor patch 0006): Linux's minimum delayed-ACK
// time, TCP_DELACK_MIN. Upstream gVisor acknowledges at once, so every
// keep-alive request cost the server two frames, a pure ACK and the
// response, where the kernel sends one. Two full segments unacknowledged,
// out-of-order data, FINs and handshakes are still acknowledged at once.
const DefaultDelayedACK = 40 * time.Millisecond

// DefaultMaxTimeWait is how many connections may be in TIME-WAIT at once
// (gVisor patch 0007), as Linux's net.ipv4.tcp_max_tw_buckets bounds its
// own. A server that closes first keeps each connection there for 60 s,
// and gVisor keeps a whole endpoint and a timer for it where Linux keeps a
// timewait socket of about 200 bytes: a heap profile after a run of new
// connections per request held 81 MB with 16,384 in TIME-WAIT, 5 KB each.
// They also cost the connections that follow: a SYN whose ports match one
// goes through its endpoint before the listener, and every collection
// marks them all. With 16,384, a new connection per request (wrk, 32 at a
// time) cost 90 to 168 us of server CPU, with a p99 of 12 to 17 ms; with
// 2,048 or 1,024, 63 to 129 us (77 or less in half the runs, level with
// the kernel stack) and 4.4 to 8 ms (alternating runs, docs/measured.md,
// "New connection per request"). Linux's own default on these machines,
// 131,072 timewait sockets, is about 26 MB, the memory of 5,000 of these
// endpoints. Past
// the bound a connection closes at once, as Linux's do when the table is
// full, and a retransmitted FIN from its peer gets a reset.
const DefaultMaxTimeWait = 2048

// maxReceiveBuffer is the most a connection's receive buffer grows to. With
// auto-tuning on, a listener offers the window scale that covers it.
const maxReceiveBuffer = 4 << 20

// SACK is whether the netstack's connections use selective
// acknowledgements when the peer offers them (setTCPOptions); the XDP
// program's cookie SYN-ACKs offer them alike.
const SACK = true

// CookieWndScale is the window scale the netstack's listeners offer in a
// SYN-ACK, for the XDP program to offer the same in the cookie SYN-ACKs it
// sends (gVisor patch 0032): the connection the cookie's ACK opens scales
// its receive window by it.
func CookieWndScale() int { return tcp.FindWndScale(seqnum.Size(maxReceiveBuffer)) }

func setTCPOptions(s *gvstack.Stack) error {
	opts := []tcpip.SettableTransportProtocolOption{
		// SACK and RACK, as Linux peers have them, to recover from loss
		// without waiting for timeouts.
		ptr(tcpip.TCPSACKEnabled(SACK)),
		ptr(tcpip.TCPRecovery(tcpip.TCPRACKLossDetection)),
		// NewReno, not CUBIC (Linux's default). gVisor's CUBIC grows the
		// window in congestion avoidance by (target-cwnd)/cwnd per ACK and
		// truncates the sum to an integer on every call, so increments
		// under one segment are lost, and after a loss the window regrows
		// mostly by the clock: 5 MiB under 3 % loss took about 620 ms with
		// CUBIC and 150 ms with NewReno on the testbed (the kernel: 63 ms).
		// Without loss the two measure the same.
		ptr(tcpip.CongestionControlOption("reno")),
		// The send buffer starts at 128 KiB and grows with the congestion
		// window (gVisor's auto-tuning: twice cwnd times the MSS) up to
		// 4 MiB, as Linux's starts small and grows. A client that stops
		// reading holds no more than the start: 1,000 of them held 1.1 GB
		// with a 1 MiB start, 222 MB with this one; 64 KiB responses and
		// 5 MiB downloads measured the same either way.
		&tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 128 << 10, Max: 4 << 20},
		// Requests are small: a modest receive buffer that can grow.
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 128 << 10, Max: maxReceiveBuffer},
		ptr(tcpip.TCPModerateReceiveBufferOption(true)),
		// No Nagle: a response is written whole, and waiting for an ACK
		// before sending its tail only adds latency.
		ptr(tcpip.TCPDelayEnabled(false)),
	}
	for _, o := range opts {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			return fmt.Errorf("stack: TCP option %T: %s", o, err)
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// Deliver hands one received Ethernet frame to the netstack. It copies the
// bytes, so the frame can go back to the fill ring when it returns. It is
// safe to call from every queue's loop at once.
func (st *Stack) Deliver(frame []byte) { st.ep.deliver(frame, time.Now().UnixNano()) }

// Listen listens on a TCP port of the interface's addresses. network is
// "tcp4" or "tcp6"; an IPv6 listener takes only IPv6.
func (st *Stack) Listen(network string, port uint16) (net.Listener, error) {
	proto := ipv4.ProtocolNumber
	switch network {
	case "tcp4":
	case "tcp6":
		proto = ipv6.ProtocolNumber
	default:
		return nil, fmt.Errorf("stack: listen: network %q: want tcp4 or tcp6", network)
	}
	var wq waiter.Queue
	ep, terr := st.s.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, fmt.Errorf("stack: listen %s/%d: %s", network, port, terr)
	}
	if proto == ipv6.ProtocolNumber {
		ep.SocketOptions().SetV6Only(true)
	}
	if terr := ep.Bind(tcpip.FullAddress{NIC: nicID, Port: port}); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("stack: bind %s/%d: %s", network, port, terr)
	}
	// Linux's default somaxconn.
	if terr := ep.Listen(4096); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("stack: listen %s/%d: %s", network, port, terr)
	}
	return gonet.NewTCPListener(st.s, &wq, ep), nil
}

// Counters is what the link endpoint has counted.
type Counters struct {
	RxMalformed            uint64
	RxACKsCoalesced        uint64 // bare ACKs left out for a later one of their batch (DeliverBatch)
	RxStray                uint64 // segments for no connection dropped before the netstack (stray.go)
	TxNoNeighbour, TxNoTCP uint64 // answers not sent: peer MAC unknown; not TCP (the kernel owns ICMP, ND, MLD)
	TxGSO, TxGSOErrors     uint64 // segments handed to the GSO senders whole; refused ones (cut into frames instead)
}

// Counters reads the endpoint's counters.
func (st *Stack) Counters() Counters { return st.ep.counters() }

// A Connection is a TCP connection's four-tuple, seen from the server.
type Connection struct{ Local, Remote netip.AddrPort }

// AppendConnections appends the netstack's TCP connections, in any state
// (handshakes under way and TIME-WAIT included, listeners not), to dst and
// returns it. It reads the demultiplexer's keys under its read lock
// (gVisor patch 0027), touching no endpoint: for the XDP program's flow
// table (xdpnet), once a second while a flood lasts.
func (st *Stack) AppendConnections(dst []Connection) []Connection {
	var ids []gvstack.TransportEndpointID
	for _, proto := range []tcpip.NetworkProtocolNumber{header.IPv4ProtocolNumber, header.IPv6ProtocolNumber} {
		ids = st.s.AppendTransportEndpointIDs(ids[:0], proto, header.TCPProtocolNumber)
		for _, id := range ids {
			if id.RemotePort == 0 {
				continue // a listener
			}
			dst = append(dst, Connection{
				Local:  netip.AddrPortFrom(addr(id.LocalAddress), id.LocalPort),
				Remote: netip.AddrPortFrom(addr(id.RemoteAddress), id.RemotePort),
			})
		}
	}
	return dst
}

// TCPCounters is what the netstack's TCP has counted, for the metrics:
// connections, and how it recovered from loss.
type TCPCounters struct {
	PassiveOpens, Current         uint64 // connections accepted from a SYN; now established
	Resets, Timedout              uint64 // established connections reset; timed out
	ListenOverflowSynDrop         uint64 // SYNs dropped for a full accept queue
	ListenOverflowAckDrop         uint64 // handshakes' last ACKs dropped for a full accept queue
	SynCookiesSent, SynCookiesIn  uint64 // SYN cookies sent; valid ones received
	SynCookiesInvalid             uint64 // ACKs to a listener whose cookie failed the check (answered with a RST)
	FailedOpens                   uint64 // handshakes that failed or were given up
	Dropped                       uint64 // packets the netstack dropped, for any reason
	SegmentsIn, SegmentsOut       uint64
	InvalidSegments, Checksum     uint64 // segments dropped as malformed; for a bad checksum
	Retransmits                   uint64 // segments sent again
	FastRecovery, SACKRecovery    uint64 // recoveries entered
	TLPRecovery, Timeouts         uint64 // tail loss probes; retransmission timeouts
	SpuriousRecovery, SpuriousRTO uint64 // recoveries later found needless
	ReorderSeen                   uint64 // connections that found segments delivered out of order
	TimeWait, TimeWaitOverflows   uint64 // connections in TIME-WAIT now; closed at once past MaxTimeWait
}

// TCPCounters reads the netstack's TCP counters.
func (st *Stack) TCPCounters() TCPCounters {
	t := st.s.Stats().TCP
	return TCPCounters{
		PassiveOpens:          t.PassiveConnectionOpenings.Value(),
		Current:               t.CurrentEstablished.Value(),
		Resets:                t.EstablishedResets.Value(),
		Timedout:              t.EstablishedTimedout.Value(),
		ListenOverflowSynDrop: t.ListenOverflowSynDrop.Value(),
		ListenOverflowAckDrop: t.ListenOverflowAckDrop.Value(),
		SynCookiesSent:        t.ListenOverflowSynCookieSent.Value(),
		SynCookiesIn:          t.ListenOverflowSynCookieRcvd.Value(),
		SynCookiesInvalid:     t.ListenOverflowInvalidSynCookieRcvd.Value(),
		FailedOpens:           t.FailedConnectionAttempts.Value(),
		Dropped:               st.s.Stats().DroppedPackets.Value(),
		SegmentsIn:            t.ValidSegmentsReceived.Value(),
		SegmentsOut:           t.SegmentsSent.Value(),
		InvalidSegments:       t.InvalidSegmentsReceived.Value(),
		Checksum:              t.ChecksumErrors.Value(),
		Retransmits:           t.Retransmits.Value(),
		FastRecovery:          t.FastRecovery.Value(),
		SACKRecovery:          t.SACKRecovery.Value(),
		TLPRecovery:           t.TLPRecovery.Value(),
		Timeouts:              t.Timeouts.Value(),
		SpuriousRecovery:      t.SpuriousRecovery.Value(),
		SpuriousRTO:           t.SpuriousRTORecovery.Value(),
		ReorderSeen:           t.ReorderSeen.Value(),
		TimeWait:              t.CurrentTimeWait.Value(),
		TimeWaitOverflows:     t.TimeWaitOverflow.Value(),
	}
}

// Close tears the netstack down: connections are aborted.
func (st *Stack) Close() {
	st.s.Close()
	st.s.Wait()
}
