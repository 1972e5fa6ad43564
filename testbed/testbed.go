// Package testbed builds throwaway test networks: two network namespaces,
// a server and a client, joined by one veth pair with fixed addresses from
// the benchmarking ranges (198.18.0.0/15, 2001:2::/48); or, with
// Options.Bridge, the server and several clients on a Linux bridge in a
// namespace of its own.
//
// It owns the namespaces, veth pairs and bridge it creates, and the
// servers it starts in them (StartServer: their output, the wait until
// they answer, and stopping them in order), and nothing else: it never
// touches an interface of the host, never changes checksum offloads
// or other driver settings (the server must cope with veth's defaults), and
// removes everything it made when Close is called, also after a failure.
// Namespace names carry the pid of the process that made them, so Sweep can
// remove what a crashed process left behind.
//
// It does not choose the servers or run load generators; tests and
// cmd/testbed do, through StartServer, ClientCmd, InServer, InClient and
// the dial helpers. Package testbedtest has the helpers for tests, which
// take a testing.TB.
package testbed

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Options configure New. The zero value is a usable single-queue testbed.
type Options struct {
	// Queues is the number of rx and tx queues on each veth end
	// (numrxqueues/numtxqueues). Both ends get the same number because
	// native XDP on veth refuses a peer with more tx queues than its own rx
	// queues. Default 1.
	Queues int
	// Prefix starts every namespace and interface name: 1 to 7 letters,
	// digits or underscores. Default "xh".
	Prefix string
	// MTU of both veth ends; 0 leaves veth's default (1500). With Bridge,
	// of every link, the bridge's included.
	MTU int
	// Bridge puts a Linux bridge between the server and the clients, in a
	// namespace of its own (bridge.go): the server's veth and each
	// client's end on it, as hosts on one switch.
	Bridge bool
	// Clients is the number of client namespaces on the bridge, 2 to 9
	// (default 2); without Bridge, only 0 or 1.
	Clients int
}

// Fixed addresses. Each testbed lives in its own namespaces, so parallel
// testbeds cannot clash even though they all use the same addresses.
var (
	serverV4 = netip.MustParseAddr("198.18.0.1")
	clientV4 = netip.MustParseAddr("198.18.0.2")
	serverV6 = netip.MustParseAddr("2001:2::1")
	clientV6 = netip.MustParseAddr("2001:2::2")
)

const (
	v4Bits = 24
	v6Bits = 64

	// readyTimeout bounds the wait for links to come up and for IPv6
	// addresses to leave the tentative state.
	readyTimeout = 10 * time.Second

	// netnsDir is where `ip netns` keeps its bind mounts.
	netnsDir = "/run/netns"
)

// Testbed is one server namespace and one client namespace joined by a veth
// pair. Its fields are read-only after New.
type Testbed struct {
	ServerNS, ClientNS string     // network namespace names, as `ip netns` knows them
	ServerIf, ClientIf string     // veth ends: ServerIf lives in ServerNS, ClientIf in ClientNS
	ServerV4, ClientV4 netip.Addr // 198.18.0.1 and 198.18.0.2, on a /24
	ServerV6, ClientV6 netip.Addr // 2001:2::1 and 2001:2::2, on a /64, usable at once (nodad)
	Queues             int        // rx and tx queues on each veth end
	// Clients are the client namespaces, Clients[0] being ClientNS; with
	// Bridge, each on the bridge in BridgeNS with its own veth pair.
	Clients  []*Client
	BridgeNS string // "" without Bridge
	// ServerCPUs, if set, is the CPU list (taskset -c) StartServer runs
	// servers on.
	ServerCPUs string

	mu   sync.Mutex
	live []string // namespaces created and not yet deleted
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,7}$`)

// New creates the namespaces and the veth pair, sets the addresses, brings
// every link up (lo included) and returns once the veth ends are up and no
// IPv6 address is tentative. On error it removes whatever it had made.
func New(opts Options) (*Testbed, error) {
	if opts.Queues == 0 {
		opts.Queues = 1
	}
	if opts.Queues < 1 || opts.Queues > 64 {
		return nil, fmt.Errorf("testbed: queues %d out of range 1..64", opts.Queues)
	}
	if opts.Prefix == "" {
		opts.Prefix = "xh"
	}
	if !prefixRE.MatchString(opts.Prefix) {
		return nil, fmt.Errorf("testbed: prefix %q: want 1 to 7 letters, digits or underscores", opts.Prefix)
	}
	if opts.MTU != 0 && (opts.MTU < 1280 || opts.MTU > 65535) {
		return nil, fmt.Errorf("testbed: MTU %d out of range 1280..65535", opts.MTU)
	}
	if err := checkClients(&opts); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("testbed: network namespaces need root; run as root (or with sudo)")
	}

	tb := &Testbed{
		ServerV4: serverV4, ClientV4: clientV4,
		ServerV6: serverV6, ClientV6: clientV6,
		Queues: opts.Queues,
	}
	if err := tb.addNamespaces(opts.Prefix); err != nil {
		tb.Close()
		return nil, err
	}
	tb.Clients = []*Client{{NS: tb.ClientNS, If: tb.ClientIf, V4: tb.ClientV4, V6: tb.ClientV6, tb: tb}}
	setup := tb.setup
	if opts.Bridge {
		setup = func(mtu int) error { return tb.setupBridge(opts.Clients, mtu) }
	}
	if err := setup(opts.MTU); err != nil {
		if cerr := tb.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return tb, nil
}

// nsName encodes the owner pid so that Sweep can tell leftovers of dead
// processes from namespaces in use.
func nsName(prefix string, pid int, id, role string) string {
	return fmt.Sprintf("%s-%d-%s-%s", prefix, pid, id, role)
}

func (tb *Testbed) addNamespaces(prefix string) error {
	pid := os.Getpid()
	var err error
	// Retry on a name clash: the random part is short because interface
	// names are limited to 15 characters.
	for range 5 {
		id := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
		tb.ServerNS = nsName(prefix, pid, id, "srv")
		tb.ClientNS = nsName(prefix, pid, id, "cli")
		tb.ServerIf = prefix + id + "-s"
		tb.ClientIf = prefix + id + "-c"
		if err = tb.addNS(tb.ServerNS); err != nil {
			if nsExists(tb.ServerNS) {
				continue
			}
			return err
		}
		if err = tb.addNS(tb.ClientNS); err != nil {
			if nsExists(tb.ClientNS) {
				tb.Close()
				continue
			}
			return err
		}
		return nil
	}
	return err
}

func (tb *Testbed) addNS(name string) error {
	if nsExists(name) {
		return fmt.Errorf("testbed: namespace %s exists", name)
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("testbed: ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	tb.mu.Lock()
	tb.live = append(tb.live, name)
	tb.mu.Unlock()
	return nil
}

func nsExists(name string) bool {
	_, err := os.Lstat(filepath.Join(netnsDir, name))
	return err == nil
}

func (tb *Testbed) setup(mtu int) error {
	cliNS, err := openNS(tb.ClientNS)
	if err != nil {
		return err
	}
	defer cliNS.Close()
	hs, err := handleIn(tb.ServerNS)
	if err != nil {
		return err
	}
	defer hs.Close()
	hc, err := handleIn(tb.ClientNS)
	if err != nil {
		return err
	}
	defer hc.Close()

	// Created from inside the server namespace with the peer placed
	// straight into the client namespace: the veth never appears in the
	// host's namespace, so it cannot clash with or disturb anything there.
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name:        tb.ServerIf,
			NumTxQueues: tb.Queues,
			NumRxQueues: tb.Queues,
			MTU:         mtu,
		},
		PeerName:      tb.ClientIf,
		PeerNamespace: netlink.NsFd(int(cliNS)),
	}
	if err := hs.LinkAdd(veth); err != nil {
		return fmt.Errorf("testbed: add veth %s/%s: %w", tb.ServerIf, tb.ClientIf, err)
	}

	ends := []struct {
		ns, ifname string
		h          *netlink.Handle
		v4, v6     netip.Addr
	}{
		{tb.ServerNS, tb.ServerIf, hs, tb.ServerV4, tb.ServerV6},
		{tb.ClientNS, tb.ClientIf, hc, tb.ClientV4, tb.ClientV6},
	}
	for _, e := range ends {
		if err := tb.addrUp(e.h, e.ns, e.ifname, e.v4, e.v6); err != nil {
			return err
		}
	}

	deadline := time.Now().Add(readyTimeout)
	for _, e := range ends {
		if err := waitReady(e.h, e.ifname, deadline); err != nil {
			return fmt.Errorf("testbed: %s in %s: %w", e.ifname, e.ns, err)
		}
	}
	if testHookSetup != nil {
		return testHookSetup(tb)
	}
	return nil
}

// addrUp gives ifname in ns its addresses and brings it and lo up.
func (tb *Testbed) addrUp(h *netlink.Handle, ns, ifname string, v4, v6 netip.Addr) error {
	link, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("testbed: find %s in %s: %w", ifname, ns, err)
	}
	// The global addresses are added with nodad; the link-local one the
	// kernel makes on link-up would still run DAD for a second or two.
	// Nobody else is on this wire, so DAD can only waste time.
	if err := tb.in(ns, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/"+ifname+"/accept_dad", []byte("0"), 0)
	}); err != nil {
		return fmt.Errorf("testbed: disable DAD on %s in %s: %w", ifname, ns, err)
	}
	addrs := []*netlink.Addr{
		{IPNet: ipNet(v4, v4Bits)},
		{IPNet: ipNet(v6, v6Bits), Flags: unix.IFA_F_NODAD},
	}
	for _, a := range addrs {
		if err := h.AddrAdd(link, a); err != nil {
			return fmt.Errorf("testbed: add %s to %s in %s: %w", a.IPNet, ifname, ns, err)
		}
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("testbed: find lo in %s: %w", ns, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("testbed: lo up in %s: %w", ns, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("testbed: %s up in %s: %w", ifname, ns, err)
	}
	return nil
}

// testHookSetup, when set by a test, runs at the end of setup; an error
// from it exercises New's teardown.
var testHookSetup func(*Testbed) error

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}
}

// waitReady polls until the link is operationally up (a veth has carrier
// once both ends are up) and none of its IPv6 addresses is tentative.
func waitReady(h *netlink.Handle, ifname string, deadline time.Time) error {
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		why, err := notReady(h, ifname)
		if err != nil {
			return err
		}
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %s", readyTimeout, why)
		}
		time.Sleep(delay)
	}
}

func notReady(h *netlink.Handle, ifname string) (string, error) {
	link, err := h.LinkByName(ifname)
	if err != nil {
		return "", err
	}
	if st := link.Attrs().OperState; st != netlink.OperUp {
		return "link is " + st.String(), nil
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			return a.IPNet.String() + " is tentative", nil
		}
	}
	return "", nil
}

// Close deletes both namespaces; the veth pair goes with them. Processes
// still running in a namespace keep it alive (without its name) until they
// exit, so stop servers before closing. Close is idempotent: a second call
// only retries what the first could not delete.
func (tb *Testbed) Close() error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var errs []error
	var left []string
	for _, name := range tb.live {
		if err := delNS(name); err != nil {
			errs = append(errs, err)
			left = append(left, name)
		}
	}
	tb.live = left
	return errors.Join(errs...)
}

func delNS(name string) error {
	if !nsExists(name) {
		return nil
	}
	out, err := exec.Command("ip", "netns", "del", name).CombinedOutput()
	if err != nil && nsExists(name) {
		return fmt.Errorf("testbed: ip netns del %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
