package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// clientStack is a plain gVisor netstack that verifies every checksum,
// joined to the server's stack st through q and a channel link. toServer,
// if set, is called with each IP packet from the client before it reaches
// the server; it may sleep to delay it, and drops it by returning true.
// drop, if set, is called with each frame from the server, and drops it by
// returning true.
func clientStack(t *testing.T, st *Stack, q *fakeQueue, mtu int, toServer func([]byte) bool, drop func([]byte) bool) *gvstack.Stack {
	t.Helper()
	cs := gvstack.New(gvstack.Options{
		NetworkProtocols:   []gvstack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []gvstack.TransportProtocolFactory{tcp.NewProtocol},
	})
	ch := channel.New(1024, uint32(mtu), tcpip.LinkAddress(clientMAC))
	if err := cs.CreateNIC(1, ch); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{clientV4, clientV6} {
		proto := ipv4.ProtocolNumber
		if a.Is6() {
			proto = ipv6.ProtocolNumber
		}
		cs.AddProtocolAddress(1, tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}, gvstack.AddressProperties{})
	}
	cs.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}, {Destination: header.IPv6EmptySubnet, NIC: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan [][]byte, 4096)
	// Server to client: the server's batches go to a goroutine of their
	// own, so that the server never runs the client's stack on its stack.
	q.forward = func(b [][]byte) {
		select {
		case out <- b:
		case <-ctx.Done():
		}
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		cs.Close()
		cs.Wait()
	})
	wg.Add(2)
	// Check each frame, strip Ethernet, inject.
	go func() {
		defer wg.Done()
		for {
			var b [][]byte
			select {
			case b = <-out:
			case <-ctx.Done():
				return
			}
			for _, f := range b {
				if len(f) > header.EthernetMinimumSize+mtu {
					t.Errorf("frame of %d bytes on an MTU of %d", len(f), mtu)
				}
				if drop != nil && drop(f) {
					continue
				}
				proto := header.Ethernet(f).Type()
				pkt := gvstack.NewPacketBuffer(gvstack.PacketBufferOptions{Payload: buffer.MakeWithData(f[header.EthernetMinimumSize:])})
				ch.InjectInbound(proto, pkt)
				pkt.DecRef()
			}
		}
	}()
	// Client to server: add Ethernet, deliver.
	go func() {
		defer wg.Done()
		for {
			pkt := ch.ReadContext(ctx)
			if pkt == nil {
				return
			}
			ip := pkt.ToView().AsSlice()
			src, dst := clientV4, serverV4
			if pkt.NetworkProtocolNumber == ipv6.ProtocolNumber {
				src, dst = clientV6, serverV6
			}
			if pkt.NetworkProtocolNumber == ipv4.ProtocolNumber || pkt.NetworkProtocolNumber == ipv6.ProtocolNumber {
				if toServer == nil || !toServer(ip) {
					st.Deliver(etherIP(src, dst, ip))
				}
			}
			pkt.DecRef()
		}
	}()
	return cs
}

// frameTCP is the TCP header and payload of an Ethernet frame from the
// server, over IPv4 or IPv6.
func frameTCP(f []byte) header.TCP {
	if header.Ethernet(f).Type() == header.IPv4ProtocolNumber {
		return header.TCP(header.IPv4(f[header.EthernetMinimumSize:]).Payload())
	}
	return header.TCP(header.IPv6(f[header.EthernetMinimumSize:]).Payload())
}

// dialServer connects the client's netstack to port 80 of server.
func dialServer(ctx context.Context, cs *gvstack.Stack, server netip.Addr) (*gonet.TCPConn, error) {
	proto := ipv4.ProtocolNumber
	if server.Is6() {
		proto = ipv6.ProtocolNumber
	}
	return gonet.DialContextTCP(ctx, cs, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(server.AsSlice()), Port: 80}, proto)
}

// etherIP frames an IP packet from the client for the server.
func etherIP(src, dst netip.Addr, ip []byte) []byte {
	etype := header.IPv4ProtocolNumber
	if src.Is6() {
		etype = header.IPv6ProtocolNumber
	}
	eth := make([]byte, header.EthernetMinimumSize, header.EthernetMinimumSize+len(ip))
	header.Ethernet(eth).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(clientMAC), DstAddr: tcpip.LinkAddress(serverMAC), Type: etype})
	return append(eth, ip...)
}

// serverStack builds a server's netstack on q from cfg (the server's MAC,
// its addresses over both families and q filled in) and listens on port 80
// of network; both close when the test ends.
func serverStack(t *testing.T, q *fakeQueue, cfg Config, network string) (*Stack, net.Listener) {
	t.Helper()
	cfg.LinkAddr = serverMAC
	cfg.Addrs = []netip.Prefix{netip.PrefixFrom(serverV4, 24), netip.PrefixFrom(serverV6, 64)}
	cfg.Queues = []TxQueue{q}
	st, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	l, err := st.Listen(network, 80)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return st, l
}

// download serves body from a server stack on network ("tcp4" or "tcp6")
// with the given MTU to a client stack, reads it all and checks the bytes.
// toServer sees the client's packets (see clientStack). It returns both
// stacks, for their counters.
func download(t *testing.T, network string, mtu int, body []byte, toServer func([]byte) bool) (*Stack, *gvstack.Stack) {
	t.Helper()
	return lossyDownload(t, network, mtu, body, toServer, nil)
}

// lossyDownload is download with the server's frames passed through drop
// (see clientStack).
func lossyDownload(t *testing.T, network string, mtu int, body []byte, toServer func([]byte) bool, drop func([]byte) bool) (*Stack, *gvstack.Stack) {
	t.Helper()
	q := newFakeQueue()
	st, l := serverStack(t, q, Config{MTU: uint32(mtu)}, network)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		conn.Write(body)
		conn.Close()
	}()
	cs := clientStack(t, st, q, mtu, toServer, drop)
	server := serverV4
	if network == "tcp6" {
		server = serverV6
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := dialServer(ctx, cs, server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read %d of %d bytes: %v", len(got), len(body), err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("got %d bytes, differing from the %d sent", len(got), len(body))
	}
	return st, cs
}

// A response of a few MiB crosses the endpoint to a netstack that verifies
// every checksum: the bytes arrive intact and no frame exceeds the MTU.
func TestBulkToVerifyingPeer(t *testing.T) {
	for _, c := range []struct {
		name, network string
		mtu, size     int
	}{
		{"IPv4", "tcp4", 1500, 3<<20 + 17},
		{"IPv6", "tcp6", 1500, 3<<20 + 17},
		{"IPv4 small MTU", "tcp4", 600, 1<<20 + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := make([]byte, c.size)
			rand.Read(body)
			st, cs := download(t, c.network, c.mtu, body, nil)
			// With host GSO the netstack sends a few large segments
			// and the endpoint cuts them into frames.
			if segs, frames := st.TCPCounters().SegmentsOut, cs.Stats().TCP.ValidSegmentsReceived.Value(); segs*4 > frames {
				t.Errorf("the netstack sent %d segments for %d frames: no GSO", segs, frames)
			}
			if n := cs.Stats().TCP.ChecksumErrors.Value(); n != 0 {
				t.Errorf("the client counted %d TCP checksum errors", n)
			}
			if n := cs.Stats().IP.MalformedPacketsReceived.Value(); n != 0 {
				t.Errorf("the client counted %d malformed IP packets", n)
			}
		})
	}
}
