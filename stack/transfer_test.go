package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
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

// wire is a TxQueue that hands each batch of frames to a goroutine that
// checks them and feeds them to a client netstack, and records batch sizes.
type wire struct {
	mu       sync.Mutex
	batch    [][]byte
	out      chan [][]byte
	done     chan struct{} // closed when the client side is gone
	maxBatch int
	frames   int
}

func (w *wire) BeginTx(n int) int {
	w.mu.Lock()
	w.batch = make([][]byte, n)
	for i := range w.batch {
		w.batch[i] = make([]byte, 2048)
	}
	return n
}
func (w *wire) TxFrame(i int) []byte { return w.batch[i] }
func (w *wire) SetTxLen(i, n int)    { w.batch[i] = w.batch[i][:n] }
func (w *wire) EndTx() error {
	b := w.batch
	w.maxBatch = max(w.maxBatch, len(b))
	w.frames += len(b)
	w.mu.Unlock()
	select {
	case w.out <- b:
	case <-w.done:
	}
	return nil
}

// clientStack is a plain gVisor netstack that verifies every checksum,
// joined to the server's endpoint through a channel link.
// stall, if set, is called before each packet from the client reaches the
// server, and may sleep to delay it.
func clientStack(t *testing.T, st *Stack, w *wire, mtu int, stall func()) *gvstack.Stack {
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
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		close(w.done)
		wg.Wait()
		cs.Close()
		cs.Wait()
	})
	wg.Add(2)
	// Server to client: check each frame, strip Ethernet, inject.
	go func() {
		defer wg.Done()
		for {
			var b [][]byte
			select {
			case b = <-w.out:
			case <-w.done:
				return
			}
			for _, f := range b {
				if len(f) > header.EthernetMinimumSize+mtu {
					t.Errorf("frame of %d bytes on an MTU of %d", len(f), mtu)
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
				if stall != nil {
					stall()
				}
				st.Deliver(etherIP(src, dst, ip))
			}
			pkt.DecRef()
		}
	}()
	return cs
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

// A response of a few MiB crosses the endpoint to a netstack that verifies
// every checksum: the bytes arrive intact and no frame exceeds the MTU.
func TestBulkToVerifyingPeer(t *testing.T) {
	for _, c := range []struct {
		name     string
		server   netip.Addr
		network  string
		proto    tcpip.NetworkProtocolNumber
		mtu      int
		bodySize int
	}{
		{"IPv4", serverV4, "tcp4", ipv4.ProtocolNumber, 1500, 3<<20 + 17},
		{"IPv6", serverV6, "tcp6", ipv6.ProtocolNumber, 1500, 3<<20 + 17},
		{"IPv4 small MTU", serverV4, "tcp4", ipv4.ProtocolNumber, 600, 1<<20 + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := &wire{out: make(chan [][]byte, 4096), done: make(chan struct{})}
			st, err := New(Config{
				LinkAddr: serverMAC,
				MTU:      uint32(c.mtu),
				Addrs:    []netip.Prefix{netip.PrefixFrom(serverV4, 24), netip.PrefixFrom(serverV6, 64)},
				Queues:   []TxQueue{w},
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
			body := make([]byte, c.bodySize)
			rand.Read(body)
			go func() {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				conn.Write(body)
				conn.Close()
			}()
			cs := clientStack(t, st, w, c.mtu, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, err := gonet.DialContextTCP(ctx, cs, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(c.server.AsSlice()), Port: 80}, c.proto)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("read %d of %d bytes: %v", len(got), len(body), err)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("got %d bytes, differing from the %d sent", len(got), len(body))
			}
			if n := cs.Stats().TCP.ChecksumErrors.Value(); n != 0 {
				t.Errorf("the client counted %d TCP checksum errors", n)
			}
			if n := cs.Stats().IP.MalformedPacketsReceived.Value(); n != 0 {
				t.Errorf("the client counted %d malformed IP packets", n)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Logf("%d frames, largest batch %d", w.frames, w.maxBatch)
		})
	}
}
