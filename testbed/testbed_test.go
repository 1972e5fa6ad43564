package testbed_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// TestMain fails the run if any namespace made by this process survives it.
func TestMain(m *testing.M) {
	code := m.Run()
	if left := ourNamespaces(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: namespaces left behind: %v\n", left)
		for _, n := range left {
			testbed.DelNS(n)
		}
		code = 1
	}
	os.Exit(code)
}

func ourNamespaces() []string {
	entries, _ := os.ReadDir(testbed.NetnsDir)
	var ours []string
	mark := "-" + strconv.Itoa(os.Getpid()) + "-"
	for _, e := range entries {
		if strings.Contains(e.Name(), mark) {
			ours = append(ours, e.Name())
		}
	}
	return ours
}

// ipNetnsList is what `ip netns list` shows, names only.
func ipNetnsList(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func handleIn(t *testing.T, ns string) *netlink.Handle {
	t.Helper()
	h, err := testbed.HandleIn(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func TestNewClose(t *testing.T) {
	testbedtest.RequireRoot(t)
	tb, err := testbed.New(testbed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	list := ipNetnsList(t)
	for _, ns := range []string{tb.ServerNS, tb.ClientNS} {
		if !slices.Contains(list, ns) {
			t.Errorf("ip netns list = %v, missing %s", list, ns)
		}
	}
	for _, name := range []string{tb.ServerIf, tb.ClientIf} {
		if len(name) > unix.IFNAMSIZ-1 {
			t.Errorf("interface name %q longer than %d", name, unix.IFNAMSIZ-1)
		}
	}
	if err := tb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	list = ipNetnsList(t)
	for _, ns := range []string{tb.ServerNS, tb.ClientNS} {
		if slices.Contains(list, ns) {
			t.Errorf("after Close, ip netns list = %v still has %s", list, ns)
		}
	}
	if err := tb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseAfterFailedPath closes a testbed whose test failed half-way (in a
// subtest, with namespaces deleted behind its back) and then again from
// t.Cleanup: every call must succeed.
func TestCloseAfterFailedPath(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	// Someone (a crashed helper, a human) removed one namespace already.
	if out, err := exec.Command("ip", "netns", "del", tb.ClientNS).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v: %s", err, out)
	}
	if err := tb.Close(); err != nil {
		t.Errorf("first Close: %v", err)
	}
	if err := tb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if list := ipNetnsList(t); slices.Contains(list, tb.ServerNS) || slices.Contains(list, tb.ClientNS) {
		t.Errorf("ip netns list = %v after Close", list)
	}
	// The NewT cleanup closes a third time.
}

func TestNewFailureTearsDown(t *testing.T) {
	testbedtest.RequireRoot(t)
	before := ourNamespaces()
	var made *testbed.Testbed
	testbed.SetTestHookSetup(func(tb *testbed.Testbed) error {
		made = tb
		return errors.New("injected failure")
	})
	defer testbed.SetTestHookSetup(nil)
	tb, err := testbed.New(testbed.Options{Queues: 2})
	if err == nil {
		tb.Close()
		t.Fatal("New succeeded despite the injected failure")
	}
	if made == nil {
		t.Fatalf("setup never reached the hook: %v", err)
	}
	if diff := cmp.Diff(before, ourNamespaces()); diff != "" {
		t.Errorf("namespaces after a failed New (-before +after):\n%s", diff)
	}
}

func TestBadOptions(t *testing.T) {
	testbedtest.RequireRoot(t)
	for _, opts := range []testbed.Options{
		{Prefix: "has-dash"},
		{Prefix: "muchtoolong"},
		{Queues: -1},
		{Queues: 100000},
	} {
		if tb, err := testbed.New(opts); err == nil {
			tb.Close()
			t.Errorf("New(%+v) succeeded", opts)
		}
	}
}

func TestAddresses(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{})
	for _, end := range []struct {
		ns, ifname string
		want       []string
	}{
		{tb.ServerNS, tb.ServerIf, []string{"198.18.0.1/24", "2001:2::1/64"}},
		{tb.ClientNS, tb.ClientIf, []string{"198.18.0.2/24", "2001:2::2/64"}},
	} {
		h := handleIn(t, end.ns)
		link, err := h.LinkByName(end.ifname)
		if err != nil {
			t.Fatalf("%s in %s: %v", end.ifname, end.ns, err)
		}
		if link.Type() != "veth" || link.Attrs().OperState != netlink.OperUp {
			t.Errorf("%s: type %s, state %s; want veth, up", end.ifname, link.Type(), link.Attrs().OperState)
		}
		addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range addrs {
			if a.Flags&unix.IFA_F_TENTATIVE != 0 {
				t.Errorf("%s: %s is tentative", end.ifname, a.IPNet)
			}
			if a.IP.IsLinkLocalUnicast() {
				continue
			}
			got = append(got, a.IPNet.String())
		}
		slices.Sort(got)
		if diff := cmp.Diff(end.want, got); diff != "" {
			t.Errorf("%s addresses (-want +got):\n%s", end.ifname, diff)
		}
		lo, err := h.LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		if lo.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("lo down in %s", end.ns)
		}
	}
	if tb.ServerV4 != netip.MustParseAddr("198.18.0.1") || tb.ServerV6 != netip.MustParseAddr("2001:2::1") {
		t.Errorf("server addresses %v %v", tb.ServerV4, tb.ServerV6)
	}
}

func TestInNamespace(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{})
	hasIf := func(name string) func() error {
		return func() error {
			_, err := net.InterfaceByName(name)
			return err
		}
	}
	if err := tb.InServer(hasIf(tb.ServerIf)); err != nil {
		t.Errorf("InServer: %s not visible: %v", tb.ServerIf, err)
	}
	if err := tb.InServer(hasIf(tb.ClientIf)); err == nil {
		t.Errorf("InServer: %s visible in the server namespace", tb.ClientIf)
	}
	if err := tb.InClient(hasIf(tb.ClientIf)); err != nil {
		t.Errorf("InClient: %s not visible: %v", tb.ClientIf, err)
	}
	if _, err := net.InterfaceByName(tb.ServerIf); err == nil {
		t.Errorf("%s visible from the test's own namespace", tb.ServerIf)
	}
	want := errors.New("from fn")
	if err := tb.InClient(func() error { return want }); !errors.Is(err, want) {
		t.Errorf("InClient returned %v, want fn's error", err)
	}
}

// A namespace without a name, as the xdp tests make them: InNamespace sees
// only its lo there and passes fn's error on.
func TestNewNamespace(t *testing.T) {
	ns := testbedtest.NewNamespace(t)
	var ifs []net.Interface
	err := testbed.InNamespace(ns, func() error {
		var err error
		ifs, err = net.Interfaces()
		return err
	})
	if err != nil || len(ifs) != 1 || ifs[0].Name != "lo" {
		t.Errorf("interfaces in the new namespace: %v, %v; want lo alone", ifs, err)
	}
	want := errors.New("from fn")
	if err := testbed.InNamespace(ns, func() error { return want }); !errors.Is(err, want) {
		t.Errorf("InNamespace returned %v, want fn's error", err)
	}
}

// serveHTTP serves "hello from <addr>" on a kernel listener in the server
// namespace and returns the listener's address. It fails the test if a
// request comes from anywhere but the client's addresses.
func serveHTTP(t *testing.T, tb *testbed.Testbed, addr string) string {
	t.Helper()
	l, err := tb.ServerListen("tcp", addr)
	if err != nil {
		t.Fatalf("ServerListen(%s): %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if a := peer.Addr().Unmap(); err != nil || (a != tb.ClientV4 && a != tb.ClientV6) {
			t.Errorf("request from %s, want the client's address", r.RemoteAddr)
		}
		fmt.Fprintf(w, "hello from %s", r.Host)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func TestReachable(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{})
	for _, listen := range []string{"198.18.0.1:0", "[2001:2::1]:0"} {
		t.Run(listen, func(t *testing.T) {
			addr := serveHTTP(t, tb, listen)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			c, err := tb.ClientDialer()(ctx, "tcp", addr)
			if err != nil {
				t.Fatalf("dial %s from client ns: %v", addr, err)
			}
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: raw\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("raw request: %v", err)
			}
			resp.Body.Close()
			c.Close()
			local := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			if local != tb.ClientV4 && local != tb.ClientV6 {
				t.Errorf("connection came from %v, want a client address", local)
			}

			hc := tb.ClientHTTP()
			defer hc.CloseIdleConnections()
			for range 3 { // reuses the idle connection
				resp, err := hc.Get("http://" + addr + "/")
				if err != nil {
					t.Fatalf("ClientHTTP GET: %v", err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(body) != "hello from "+addr {
					t.Fatalf("body %q, err %v", body, err)
				}
			}
		})
	}
	// Nothing here asserts that 198.18.0.1 is unreachable from the test's
	// own namespace: a host's default route may well lead to something
	// that accepts any connection (sandboxes with a transparent proxy do).
	// Hence the check on the peer's address in serveHTTP.
}

// TestNeighbours shows that ARP and ND work over the veth: after a TCP
// connection each side has a neighbour entry with the other's MAC.
func TestNeighbours(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{})
	hs, hc := handleIn(t, tb.ServerNS), handleIn(t, tb.ClientNS)
	sl, err := hs.LinkByName(tb.ServerIf)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := hc.LinkByName(tb.ClientIf)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.AddrPort{
		netip.AddrPortFrom(tb.ServerV4, 0),
		netip.AddrPortFrom(tb.ServerV6, 0),
	} {
		l, err := tb.ServerListen("tcp", a.String())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = tb.WaitTCP(ctx, l.Addr().String())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(h *netlink.Handle, link netlink.Link, family int, ip netip.Addr, mac net.HardwareAddr) {
		t.Helper()
		neighs, err := h.NeighList(link.Attrs().Index, family)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range neighs {
			if a, _ := netip.AddrFromSlice(n.IP); a.Unmap() == ip {
				if n.HardwareAddr.String() != mac.String() {
					t.Errorf("neighbour %v on %s: lladdr %v, want %v", ip, link.Attrs().Name, n.HardwareAddr, mac)
				}
				return
			}
		}
		t.Errorf("no neighbour entry for %v on %s: %v", ip, link.Attrs().Name, neighs)
	}
	check(hc, cl, netlink.FAMILY_V4, tb.ServerV4, sl.Attrs().HardwareAddr)
	check(hc, cl, netlink.FAMILY_V6, tb.ServerV6, sl.Attrs().HardwareAddr)
	check(hs, sl, netlink.FAMILY_V4, tb.ClientV4, cl.Attrs().HardwareAddr)
	check(hs, sl, netlink.FAMILY_V6, tb.ClientV6, cl.Attrs().HardwareAddr)
}

func TestWaitTCP(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{})

	// Nothing listens: WaitTCP gives up when its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := tb.WaitTCP(ctx, "198.18.0.1:9")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitTCP with no listener: %v, want a deadline error", err)
	}

	// A listener that comes up late is found.
	go func() {
		time.Sleep(200 * time.Millisecond)
		l, err := tb.ServerListen("tcp", "[2001:2::1]:8080")
		if err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { l.Close() })
	}()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.WaitTCP(ctx, "[2001:2::1]:8080"); err != nil {
		t.Errorf("WaitTCP: %v", err)
	}
}

func TestMultiQueue(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{Queues: 4})
	for _, end := range []struct{ ns, ifname string }{{tb.ServerNS, tb.ServerIf}, {tb.ClientNS, tb.ClientIf}} {
		link, err := handleIn(t, end.ns).LinkByName(end.ifname)
		if err != nil {
			t.Fatal(err)
		}
		if rx, tx := link.Attrs().NumRxQueues, link.Attrs().NumTxQueues; rx != 4 || tx != 4 {
			t.Errorf("%s: %d rx, %d tx queues; want 4, 4", end.ifname, rx, tx)
		}
	}
	// `ip netns exec` mounts the namespace's own /sys.
	out, err := tb.ServerCmd(context.Background(), "ls", "/sys/class/net/"+tb.ServerIf+"/queues").Output()
	if err != nil {
		t.Fatalf("ls queues: %v", err)
	}
	var rx []string
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "rx-") {
			rx = append(rx, f)
		}
	}
	if diff := cmp.Diff([]string{"rx-0", "rx-1", "rx-2", "rx-3"}, rx); diff != "" {
		t.Errorf("rx queues of %s (-want +got):\n%s", tb.ServerIf, diff)
	}
}

func TestCmd(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{})
	out, err := tb.ClientCmd(context.Background(), "ip", "-br", "link", "show", "dev", tb.ClientIf).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), tb.ClientIf+"@") {
		t.Errorf("ClientCmd ip link: %q, %v", out, err)
	}
	if err := tb.ServerCmd(context.Background(), "ip", "link", "show", "dev", tb.ClientIf).Run(); err == nil {
		t.Errorf("client interface visible in the server namespace")
	}
}

func TestParallelTestbeds(t *testing.T) {
	t.Parallel()
	a := testbedtest.New(t, testbed.Options{})
	b := testbedtest.New(t, testbed.Options{})
	if a.ServerNS == b.ServerNS || a.ServerIf == b.ServerIf {
		t.Fatalf("two testbeds share names: %s/%s", a.ServerNS, a.ServerIf)
	}
	// Same addresses, separate wires: b's server is not a's.
	addrA := serveHTTP(t, a, "198.18.0.1:8000")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := a.WaitTCP(ctx, addrA); err != nil {
		t.Fatal(err)
	}
	if c, err := b.ClientDialer()(ctx, "tcp", addrA); err == nil {
		c.Close()
		t.Errorf("b's client reached a's server")
	}
}

func TestSweep(t *testing.T) {
	testbedtest.RequireRoot(t)
	// A pid that is certainly dead: a child that has been reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	if testbed.PidAlive(dead) {
		t.Skipf("pid %d reused already", dead)
	}
	const prefix = "xhsweep"
	deadNS := testbed.NsName(prefix, dead, "abcdef", "srv")
	liveNS := testbed.NsName(prefix, os.Getpid(), "abcdef", "cli")
	other := "xhsweepx-" + strconv.Itoa(dead) + "-abcdef-srv" // another prefix
	for _, n := range []string{deadNS, liveNS, other} {
		if out, err := exec.Command("ip", "netns", "add", n).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", n, err, out)
		}
		t.Cleanup(func() { testbed.DelNS(n) })
	}
	deleted, err := testbed.Sweep(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{deadNS}, deleted); diff != "" {
		t.Errorf("Sweep deleted (-want +got):\n%s", diff)
	}
	if testbed.NsExists(deadNS) || !testbed.NsExists(liveNS) || !testbed.NsExists(other) {
		t.Errorf("after Sweep: dead %v, live %v, other %v; want false true true",
			testbed.NsExists(deadNS), testbed.NsExists(liveNS), testbed.NsExists(other))
	}
}

// RouteThroughClient sends everything off the link through the client end
// until undone, and undo leaves the server end as it was: no route there.
func TestRouteThroughClient(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{})
	h := handleIn(t, tb.ServerNS)
	far := map[string]netip.Addr{"203.0.113.9": tb.ClientV4, "198.19.200.1": tb.ClientV4, "2001:db8::9": tb.ClientV6}
	for dst := range far {
		if routes, err := h.RouteGet(net.ParseIP(dst)); err == nil {
			t.Fatalf("server end, before: route to %s: %+v, want none", dst, routes)
		}
	}
	undo, err := tb.RouteThroughClient()
	if err != nil {
		t.Fatal(err)
	}
	for dst, gw := range far {
		routes, err := h.RouteGet(net.ParseIP(dst))
		if err != nil {
			t.Errorf("server end, route to %s: %v", dst, err)
			continue
		}
		if len(routes) != 1 || !routes[0].Gw.Equal(gw.AsSlice()) {
			t.Errorf("server end, route to %s: %+v, want via %s", dst, routes, gw)
		}
	}
	if routes, err := h.RouteGet(net.ParseIP("198.18.0.2")); err != nil || len(routes) != 1 || routes[0].Gw != nil {
		t.Errorf("server end, route to the client: %+v, %v; want on the link", routes, err)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	for dst := range far {
		if routes, err := h.RouteGet(net.ParseIP(dst)); err == nil {
			t.Errorf("server end, after undo: route to %s: %+v, want none", dst, routes)
		}
	}
}
