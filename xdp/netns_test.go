//go:build linux

package xdp

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// requireRoot fails (not skips) the test without root: CI runs as root, and
// a privileged test that silently skips proves nothing.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (BPF, network namespaces, AF_XDP)")
	}
}

// newNetNS creates an anonymous network namespace, closed (and so
// destroyed, with every interface in it) when the test ends, also when it
// fails or the process dies: having no name, it leaves nothing under
// /run/netns behind and cannot collide with anything on the host.
func newNetNS(t *testing.T) netns.NsHandle {
	t.Helper()
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// unshare(2) moves this thread; it must go back to the original
		// namespace before it can run anything else. If it cannot, it
		// stays locked, and dies when this goroutine returns.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("get current netns: %w", err)}
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if rerr := netns.Set(orig); rerr != nil {
			if ns.IsOpen() {
				ns.Close()
			}
			ch <- result{err: fmt.Errorf("restore netns: %w", rerr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ns, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("new netns: %v", r.err)
	}
	t.Cleanup(func() { r.ns.Close() })
	return r.ns
}

// inNetNS runs fn on an OS thread inside ns: BPF links, AF_XDP binds and
// BPF_PROG_TEST_RUN's ingress_ifindex resolve interface indexes in the
// calling thread's namespace.
func inNetNS(ns netns.NsHandle, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Left locked: the thread dies with the goroutine.
			ch <- fmt.Errorf("restore netns: %w (after %v)", err, ferr)
			return
		}
		runtime.UnlockOSThread()
		ch <- ferr
	}()
	return <-ch
}

// newVeth creates a veth pair with the given number of queues in ns, sets
// both ends up and returns the first end's index. Names are fixed: the
// namespace is the test's own.
func newVeth(t *testing.T, ns netns.NsHandle, queues int) int {
	t.Helper()
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
		if err := h.LinkSetUp(l); err != nil {
			t.Fatalf("set %s up: %v", name, err)
		}
	}
	l, err := h.LinkByName("xhxdp0")
	if err != nil {
		t.Fatalf("find xhxdp0: %v", err)
	}
	return l.Attrs().Index
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
