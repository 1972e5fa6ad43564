package e2e

import (
	"math/rand/v2"
	"net"
	"testing"
	"time"

	axdp "github.com/asavie/xdp"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/xhttpd/xhttpd/testbed"
)

// peer is a raw AF_XDP endpoint on the client end of the testbed, built on
// asavie/xdp, an AF_XDP library independent of xhttpd's own: it sends
// crafted frames and reads every frame that comes back, past the client's
// kernel.
type peer struct {
	prog *axdp.Program
	sock *axdp.Socket
	mac  net.HardwareAddr // the client end's
	dst  net.HardwareAddr // the server end's
}

func newPeer(t *testing.T, tb *testbed.Testbed) *peer {
	t.Helper()
	p := &peer{}
	if err := tb.InServer(func() error {
		ifc, err := net.InterfaceByName(tb.ServerIf)
		p.dst = ifc.HardwareAddr
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err := tb.InClient(func() error {
		ifc, err := net.InterfaceByName(tb.ClientIf)
		if err != nil {
			return err
		}
		p.mac = ifc.HardwareAddr
		if p.prog, err = axdp.NewProgram(1); err != nil {
			return err
		}
		if err := p.prog.Attach(ifc.Index); err != nil {
			return err
		}
		if p.sock, err = axdp.NewSocket(ifc.Index, 0, nil); err != nil {
			return err
		}
		return p.prog.Register(0, p.sock.FD())
	})
	if err != nil {
		t.Fatalf("AF_XDP peer on the client end: %v", err)
	}
	t.Cleanup(func() {
		tb.InClient(func() error {
			ifc, _ := net.InterfaceByName(tb.ClientIf)
			p.prog.Detach(ifc.Index)
			return nil
		})
		p.sock.Close()
		p.prog.Close()
	})
	p.sock.Fill(p.sock.GetDescs(p.sock.NumFreeFillSlots()))
	return p
}

func (p *peer) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	for len(frames) > 0 {
		if _, _, err := p.sock.Poll(0); err != nil {
			t.Fatal(err)
		}
		descs := p.sock.GetDescs(min(len(frames), p.sock.NumFreeTxSlots()))
		for i := range descs {
			descs[i].Len = uint32(copy(p.sock.GetFrame(descs[i]), frames[i]))
		}
		frames = frames[p.sock.Transmit(descs):]
	}
}

// recv returns the first frame for which match is true, within 5 s.
func (p *peer) recv(t *testing.T, match func([]byte) bool) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p.sock.Fill(p.sock.GetDescs(p.sock.NumFreeFillSlots()))
		n, _, err := p.sock.Poll(100)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range p.sock.Receive(n) {
			if f := p.sock.GetFrame(d); match(f) {
				return append([]byte(nil), f...)
			}
		}
	}
	t.Fatal("no matching frame within 5s")
	return nil
}

// tcp4 builds a TCP segment from the client to the server with the given
// flags, and IPv4 options when withOptions is set.
func (p *peer) tcp4(srcPort, dstPort uint16, flags header.TCPFlags, withOptions bool) []byte {
	src, dst := tcpip.AddrFrom4([4]byte{198, 18, 0, 2}), tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
	tcp := make([]byte, header.TCPMinimumSize)
	header.TCP(tcp).Encode(&header.TCPFields{SrcPort: srcPort, DstPort: dstPort, SeqNum: 7, DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 65535})
	header.TCP(tcp).SetChecksum(^checksum.Checksum(tcp, header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(tcp)))))
	ihl := header.IPv4MinimumSize
	var opts header.IPv4OptionsSerializer
	if withOptions {
		opts = header.IPv4OptionsSerializer{&header.IPv4SerializableRouterAlertOption{}}
		ihl += int(opts.Length())
	}
	ip := make([]byte, ihl)
	h := header.IPv4(ip)
	h.Encode(&header.IPv4Fields{TotalLength: uint16(ihl + len(tcp)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: src, DstAddr: dst, Options: opts})
	h.SetChecksum(^h.CalculateChecksum())
	eth := make([]byte, header.EthernetMinimumSize)
	header.Ethernet(eth).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(p.mac), DstAddr: tcpip.LinkAddress(p.dst), Type: header.IPv4ProtocolNumber})
	return append(append(eth, ip...), tcp...)
}

// tcp6 builds the same segment over IPv6, with a hop-by-hop extension
// header (one PadN option) before TCP when withExtHeader is set.
func (p *peer) tcp6(srcPort, dstPort uint16, flags header.TCPFlags, withExtHeader bool) []byte {
	src, dst := tcpip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 15: 2}), tcpip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 15: 1})
	tcp := make([]byte, header.TCPMinimumSize)
	header.TCP(tcp).Encode(&header.TCPFields{SrcPort: srcPort, DstPort: dstPort, SeqNum: 7, DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 65535})
	header.TCP(tcp).SetChecksum(^checksum.Checksum(tcp, header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(tcp)))))
	payload, next := tcp, header.TCPProtocolNumber
	if withExtHeader {
		// Next header TCP, length 0 (8 bytes), PadN of 4 bytes.
		hbh := []byte{uint8(header.TCPProtocolNumber), 0, 1, 4, 0, 0, 0, 0}
		payload, next = append(hbh, tcp...), tcpip.TransportProtocolNumber(header.IPv6HopByHopOptionsExtHdrIdentifier)
	}
	ip := make([]byte, header.IPv6MinimumSize)
	header.IPv6(ip).Encode(&header.IPv6Fields{PayloadLength: uint16(len(payload)), TransportProtocol: next, HopLimit: 64, SrcAddr: src, DstAddr: dst})
	eth := make([]byte, header.EthernetMinimumSize)
	header.Ethernet(eth).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(p.mac), DstAddr: tcpip.LinkAddress(p.dst), Type: header.IPv6ProtocolNumber})
	return append(append(eth, ip...), payload...)
}

// tcpReply matches a TCP segment, over IPv4 or IPv6, from the server's port
// to ours with the given flags.
func tcpReply(srcPort, dstPort uint16, flags header.TCPFlags) func([]byte) bool {
	return func(f []byte) bool {
		if len(f) < header.EthernetMinimumSize {
			return false
		}
		var tcp header.TCP
		switch ip := f[header.EthernetMinimumSize:]; header.Ethernet(f).Type() {
		case header.IPv4ProtocolNumber:
			h := header.IPv4(ip)
			if len(ip) < header.IPv4MinimumSize || !h.IsValid(len(ip)) || h.TransportProtocol() != header.TCPProtocolNumber {
				return false
			}
			tcp = h.Payload()
		case header.IPv6ProtocolNumber:
			h := header.IPv6(ip)
			if len(ip) < header.IPv6MinimumSize || h.TransportProtocol() != header.TCPProtocolNumber {
				return false
			}
			tcp = h.Payload()
		default:
			return false
		}
		return len(tcp) >= header.TCPMinimumSize && tcp.SourcePort() == srcPort && tcp.DestinationPort() == dstPort && tcp.Flags()&flags == flags
	}
}

// Crafted frames from a raw AF_XDP peer: a SYN to port 80 is answered by
// the netstack; the same SYN with IPv4 options, or behind an IPv6 extension
// header, is left to the kernel, which has no listener there and resets it; a flood of malformed frames changes
// nothing, and the server still answers afterwards.
func TestCraftedFrames(t *testing.T) {
	tb, _, _ := serve(t)
	p := newPeer(t, tb)

	p.send(t, p.tcp4(40001, 80, header.TCPFlagSyn, false))
	p.recv(t, tcpReply(80, 40001, header.TCPFlagSyn|header.TCPFlagAck))

	p.send(t, p.tcp4(40002, 80, header.TCPFlagSyn, true))
	p.recv(t, tcpReply(80, 40002, header.TCPFlagRst))

	// The same over IPv6: plain, the netstack answers; behind a
	// hop-by-hop header, the program leaves it to the kernel.
	p.send(t, p.tcp6(40011, 80, header.TCPFlagSyn, false))
	p.recv(t, tcpReply(80, 40011, header.TCPFlagSyn|header.TCPFlagAck))
	p.send(t, p.tcp6(40012, 80, header.TCPFlagSyn, true))
	p.recv(t, tcpReply(80, 40012, header.TCPFlagRst))

	good := p.tcp4(40003, 80, header.TCPFlagSyn, false)
	rng := rand.New(rand.NewPCG(9, 9))
	var junk [][]byte
	for i := 0; i < 5000; i++ {
		f := append([]byte(nil), good[:rng.IntN(len(good)+1)]...)
		if len(f) > header.EthernetMinimumSize && rng.IntN(2) == 0 {
			// Keep the addresses and ports, so that the frame is steered,
			// and scramble a byte of the IP or TCP header.
			f[header.EthernetMinimumSize+rng.IntN(len(f)-header.EthernetMinimumSize)] = byte(rng.Uint32())
		}
		junk = append(junk, f)
	}
	p.send(t, junk...)

	p.send(t, p.tcp4(40004, 80, header.TCPFlagSyn, false))
	p.recv(t, tcpReply(80, 40004, header.TCPFlagSyn|header.TCPFlagAck))
}
