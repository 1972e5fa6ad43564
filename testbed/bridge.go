package testbed

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// Client is one client namespace. Without Bridge the testbed's only one
// (ClientNS, ClientIf, ClientV4, ClientV6); with it, one of several hosts on
// the bridge.
type Client struct {
	NS, If string     // namespace and its veth end
	V4, V6 netip.Addr // 198.18.0.2+i and 2001:2::2+i for Clients[i]

	tb *Testbed
}

// Cmd is ClientCmd for this client's namespace.
func (c *Client) Cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return nsCmd(ctx, c.NS, name, args...)
}

// In is InClient for this client's namespace.
func (c *Client) In(fn func() error) error { return c.tb.in(c.NS, fn) }

// Dialer is ClientDialer for this client's namespace.
func (c *Client) Dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return c.tb.dialer(c.NS)
}

// HTTP is ClientHTTP for this client's namespace.
func (c *Client) HTTP() *http.Client { return httpClient(c.Dialer()) }

const maxClients = 9

// checkClients sets Options.Clients's default and checks it.
func checkClients(o *Options) error {
	switch {
	case !o.Bridge && o.Clients > 1:
		return fmt.Errorf("testbed: %d clients need Bridge", o.Clients)
	case o.Bridge && o.Clients == 0:
		o.Clients = 2
	}
	if o.Clients < 0 || o.Clients > maxClients || (o.Bridge && o.Clients < 2) {
		return fmt.Errorf("testbed: clients %d out of range 2..%d", o.Clients, maxClients)
	}
	return nil
}

// setupBridge builds, after addNamespaces made the server's and the first
// client's namespaces:
//
//	ServerNS: ServerIf ---+
//	ClientNS: ClientIf ---+-- bridge (BridgeNS)
//	ClientNS1: base-1  ---+
//	...
//
// Each veth's other end lives in BridgeNS under the same name as its peer
// (names are per namespace), enslaved to the bridge, which has no address
// and no IPv6 at all: it only switches. STP is off, so ports forward at
// once. The clients get 198.18.0.2+i and 2001:2::2+i.
func (tb *Testbed) setupBridge(clients, mtu int) error {
	base := strings.TrimSuffix(tb.ServerIf, "-s")
	prefix := strings.TrimSuffix(tb.ServerNS, "-srv")
	tb.BridgeNS = prefix + "-brg"
	if err := tb.addNS(tb.BridgeNS); err != nil {
		return err
	}
	for i := 1; i < clients; i++ {
		c := &Client{
			NS: prefix + "-cli" + strconv.Itoa(i),
			If: base + "-" + strconv.Itoa(i),
			V4: nthAddr(clientV4, i), V6: nthAddr(clientV6, i),
			tb: tb,
		}
		if err := tb.addNS(c.NS); err != nil {
			return err
		}
		tb.Clients = append(tb.Clients, c)
	}

	// The ports need no IPv6: without it they send no router or neighbour
	// solicitations of their own and run no DAD.
	if err := tb.in(tb.BridgeNS, func() error {
		for _, conf := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+conf+"/disable_ipv6", []byte("1"), 0); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("testbed: disable IPv6 in %s: %w", tb.BridgeNS, err)
	}
	hb, err := handleIn(tb.BridgeNS)
	if err != nil {
		return err
	}
	defer hb.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: base + "-b", MTU: mtu}}
	if err := hb.LinkAdd(br); err != nil {
		return fmt.Errorf("testbed: add bridge %s in %s: %w", br.Name, tb.BridgeNS, err)
	}

	type end struct {
		ns, ifname string
		v4, v6     netip.Addr
	}
	ends := []end{{tb.ServerNS, tb.ServerIf, tb.ServerV4, tb.ServerV6}}
	for _, c := range tb.Clients {
		ends = append(ends, end{c.NS, c.If, c.V4, c.V6})
	}
	deadline := time.Now().Add(readyTimeout)
	for _, e := range ends {
		if err := tb.plugIn(hb, br, e.ns, e.ifname, e.v4, e.v6, mtu, deadline); err != nil {
			return err
		}
	}
	if err := hb.LinkSetUp(br); err != nil {
		return fmt.Errorf("testbed: bridge %s up: %w", br.Name, err)
	}
	if err := waitReady(hb, br.Name, deadline); err != nil {
		return fmt.Errorf("testbed: bridge %s in %s: %w", br.Name, tb.BridgeNS, err)
	}
	if testHookSetup != nil {
		return testHookSetup(tb)
	}
	return nil
}

// plugIn makes a veth pair from ifname in ns to a port of the same name on
// the bridge, and brings both ends up with ifname's addresses.
func (tb *Testbed) plugIn(hb *netlink.Handle, br *netlink.Bridge, ns, ifname string, v4, v6 netip.Addr, mtu int, deadline time.Time) error {
	h, err := handleIn(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	brNS, err := openNS(tb.BridgeNS)
	if err != nil {
		return err
	}
	defer brNS.Close()
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name:        ifname,
			NumTxQueues: tb.Queues,
			NumRxQueues: tb.Queues,
			MTU:         mtu,
		},
		PeerName:      ifname,
		PeerNamespace: netlink.NsFd(int(brNS)),
	}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("testbed: add veth %s from %s to %s: %w", ifname, ns, tb.BridgeNS, err)
	}
	port, err := hb.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("testbed: find %s in %s: %w", ifname, tb.BridgeNS, err)
	}
	if err := hb.LinkSetMaster(port, br); err != nil {
		return fmt.Errorf("testbed: %s into bridge %s: %w", ifname, br.Name, err)
	}
	if err := hb.LinkSetUp(port); err != nil {
		return fmt.Errorf("testbed: %s up in %s: %w", ifname, tb.BridgeNS, err)
	}
	if err := tb.addrUp(h, ns, ifname, v4, v6); err != nil {
		return err
	}
	if err := waitReady(h, ifname, deadline); err != nil {
		return fmt.Errorf("testbed: %s in %s: %w", ifname, ns, err)
	}
	return nil
}

// nthAddr is a advanced by n.
func nthAddr(a netip.Addr, n int) netip.Addr {
	for range n {
		a = a.Next()
	}
	return a
}
