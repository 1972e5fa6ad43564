//go:build linux

package xdp

import (
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// newVeth creates a namespace of the test's own, closed when it ends, with
// a veth pair with the given number of queues in it, both ends up, and
// returns the namespace and the first end's index. Names are fixed: the
// namespace is the test's own.
func newVeth(t *testing.T, queues int) (netns.NsHandle, int) {
	t.Helper()
	ns := testbedtest.NewNamespace(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in netns: %v", err)
	}
	defer h.Close()
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: "xhxdp0", NumTxQueues: queues, NumRxQueues: queues},
		PeerName:  "xhxdp1",
	}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth pair: %v", err)
	}
	for _, name := range []string{"xhxdp0", "xhxdp1"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatalf("find %s: %v", name, err)
		}
		// No IPv6 on the pair: an end that comes up sends MLD reports
		// and router solicitations, which the program attached to the
		// other end counts, and a test reading its counters around a
		// run of its own (runVerdict) finds them there now and then.
		if err := testbed.InNamespace(ns, func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0)
		}); err != nil {
			t.Fatalf("disable IPv6 on %s: %v", name, err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatalf("set %s up: %v", name, err)
		}
	}
	l, err := h.LinkByName("xhxdp0")
	if err != nil {
		t.Fatalf("find xhxdp0: %v", err)
	}
	return ns, l.Attrs().Index
}

// attachedVeth is newVeth with the program attached in mode to the first
// end, detached when the test ends.
func attachedVeth(t *testing.T, queues int, mode Mode) (netns.NsHandle, int, *Steering) {
	t.Helper()
	ns, ifindex := newVeth(t, queues)
	s, err := attachIn(ns, ifindex, mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return ns, ifindex, s
}

// linkXDP returns the XDP state netlink reports for ifindex in ns.
func linkXDP(t *testing.T, ns netns.NsHandle, ifindex int) *netlink.LinkXdp {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in netns: %v", err)
	}
	defer h.Close()
	l, err := h.LinkByIndex(ifindex)
	if err != nil {
		t.Fatalf("link %d: %v", ifindex, err)
	}
	if l.Attrs().Xdp == nil {
		return &netlink.LinkXdp{}
	}
	return l.Attrs().Xdp
}
