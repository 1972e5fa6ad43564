package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// floodFor is how long each flood of TestSYNFlood lasts. Under hping3
// from the client's own address on the Intel machines, the client lost
// 10 of about 3,800 connections over 8 runs (a SYN or SYN-ACK dropped
// where the flood overflows veth's rings, and its retransmission comes
// after 1 s): 5 s floods rested the 99 % on about 400 connections, and
// one run in seven of the whole suite lost 4 of 382. 10 s doubles the
// connections a run rests on.
const floodFor = 10 * time.Second

// v6FloodRate paces TestSYNFlood's IPv6 flood: about what the one thread
// of the testbed's flooder sent on the AMD machines the test was written
// on, 12 times the 20,000 SYNs a second the netstack takes on a 2-CPU
// machine before the XDP program answers them (-syn-rate). On the Intel
// machines the same thread sends 450,000 to 700,000 a second, more than
// the server end's veth ring takes: the ring overflows before the XDP
// program sees a frame (the client end's TX dropped counter), and up to
// 5 % of the client's SYNs were lost with the flood's: the test measured
// the flooder's machine. The full-rate figures are in the README ("Bursts,
// floods, loss") and docs/measured.md ("SYN floods").
const v6FloodRate = 250_000

// A SYN flood at full rate on port 80, while a client opens new connections
// one after another, each with a GET: hping3 from the client's own address
// (its kernel answers each cookie SYN-ACK with a RST) and from random
// addresses, over IPv4; the testbed's AF_PACKET flooder from random
// addresses over IPv6. At least 99% of the client's connections are
// established and answered within a second, and the XDP program, not the
// netstack, answered the flood. With every SYN left to the netstack, one
// hping3 let no client in (docs/measured.md, "SYN floods").
func TestSYNFlood(t *testing.T) {
	tb := floodTestbed(t)
	runFloods(t, tb, synCookies,
		floodCase{"IPv4, hping3 from the client's address", "198.18.0.1:80", hping3(tb, "--syn")},
		floodCase{"IPv4, hping3 from random addresses", "198.18.0.1:80", hping3(tb, "--syn", "--rand-source")},
		floodCase{"IPv6, random addresses", "[2001:2::1]:80", v6Flood(t, tb, false)})
}

// An ACK flood on port 80 from random addresses, hping3 --flood --ack
// --rand-source over IPv4 and the testbed's flooder over IPv6, while a
// client opens new connections as in TestSYNFlood: at least 99 % of them
// are answered within a second, and the XDP program, which drops segments
// of flows it does not know beyond a budget (xdp.Strays), took the flood.
// Before 6eb2078 the netstack took each forged ACK to its listener, and no
// client got in (docs/measured.md, "ACK floods").
func TestACKFlood(t *testing.T) {
	tb := floodTestbed(t)
	runFloods(t, tb, strays,
		floodCase{"IPv4, hping3", "198.18.0.1:80", hping3(tb, "--ack", "--rand-source")},
		floodCase{"IPv6", "[2001:2::1]:80", v6Flood(t, tb, true)})
}

// A floodCase is one flood of a test: its name, the address its clients
// connect to, and the flood, which runs until its context ends.
type floodCase struct {
	name, target string
	flood        func(ctx context.Context) error
}

// runFloods runs each case's floodPhases as a subtest.
func runFloods(t *testing.T, tb *testbed.Testbed, taker floodTaker, cases ...floodCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { floodPhases(t, tb, c.target, c.flood, taker) })
	}
}

// v6Flood returns the testbed's flood of SYNs, or of ACKs, from random
// addresses over IPv6, paced at v6FloodRate.
func v6Flood(t *testing.T, tb *testbed.Testbed, ack bool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		n, err := tb.Flood(ctx, testbed.FloodOptions{Dst: tb.ServerV6, Port: 80, RandomSources: true, Rate: v6FloodRate, ACK: ack})
		t.Logf("IPv6 flood: %d segments", n)
		return err
	}
}

// floodTestbed is a testbed with its client end in NAPI mode and xhttpd
// serving a site with its metrics on adminAddr, for a flood from hping3.
func floodTestbed(t *testing.T) *testbed.Testbed {
	t.Helper()
	testbedtest.RequireRoot(t)
	if _, err := exec.LookPath("hping3"); err != nil {
		t.Fatal("hping3 is missing (make test installs it)")
	}
	tb := testbedtest.New(t, testbed.Options{})
	clientNAPI(t, tb)
	s := newSite(t)
	startServer(t, tb, s.dir, "-admin", adminAddr)
	return tb
}

// A floodTaker is the counter that shows who took a flood's segments:
// at least 10,000 of them must be counted there during a phase.
type floodTaker struct{ what, name, label, value string }

var (
	synCookies = floodTaker{"SYNs the XDP program answered", "xhttpd_xdp_frames_total", "verdict", "syn_cookie"}
	strays     = floodTaker{"segments of no flow the XDP program dropped", "xhttpd_xdp_frames_total", "verdict", "stray"}
)

// floodPhases runs floodPhase until it meets the 99 %. A phase that misses
// it while veth dropped frames before any program saw them (vethDrops) runs
// once more: hping3 from the client's own address overflows the server
// end's ring on the Intel machines (the client end's tx_dropped grew by
// 17,000 to 924,000 in a phase), and the client's segments go with the
// flood's, outside xhttpd. A miss without such drops, or a second miss,
// fails. (CI runs missed up to 15 of 1,130 under the random-source SYN
// flood without drops: the client's next connection from a port whose RST
// the XDP program had dropped reached the old connection, until gVisor
// patch 0025.)
func floodPhases(t *testing.T, tb *testbed.Testbed, target string, flood func(ctx context.Context) error, taker floodTaker) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ok, tries, drops := floodPhase(t, tb, target, flood, taker)
		if ok*100 >= tries*99 {
			return
		}
		if drops == 0 || attempt == 2 {
			t.Fatalf("%d of %d connections answered within 1 s under the flood, want 99%% (veth dropped %d frames meanwhile)", ok, tries, drops)
		}
		t.Logf("%d of %d connections answered within 1 s while veth dropped %d frames before any program saw them: once more", ok, tries, drops)
	}
}

// floodPhase floods for floodFor while four clients make connections, and
// returns how many connections were answered within 1 s, how many were
// tried, and the frames veth dropped meanwhile.
func floodPhase(t *testing.T, tb *testbed.Testbed, target string, flood func(ctx context.Context) error, taker floodTaker) (ok, tries int, drops uint64) {
	t.Helper()
	taken := metric(t, tb, adminAddr, taker.name, taker.label, taker.value)
	dropped := vethDrops(t, tb)
	before := tcpEvents(t, tb)
	ctx, cancel := context.WithTimeout(context.Background(), floodFor)
	defer cancel()
	flooded := make(chan error, 1)
	go func() { flooded <- flood(ctx) }()
	time.Sleep(500 * time.Millisecond) // the flood is on

	// Four clients connect one after another each, so that the 99 %
	// rests on a few hundred connections, not on the one SYN in 66 that
	// a single client could lose to chance.
	dial := tb.ClientDialer()
	var mu sync.Mutex
	var worst time.Duration
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				err := testbed.ProbeHTTP(context.Background(), dial, target)
				took := time.Since(start)
				if ctx.Err() != nil && err != nil {
					return // cut short by the end of the flood's window
				}
				mu.Lock()
				tries++
				worst = max(worst, took)
				if err == nil && took <= time.Second {
					ok++
				} else {
					t.Logf("connection %d: %v after %v", tries, err, took)
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if err := <-flooded; err != nil {
		t.Fatalf("flood: %v", err)
	}
	taken = metric(t, tb, adminAddr, taker.name, taker.label, taker.value) - taken
	drops = vethDrops(t, tb) - dropped
	t.Logf("%d of %d connections answered within 1 s, the slowest in %v; %s: %v; veth dropped %d frames", ok, tries, worst, taker.what, taken, drops)
	after := tcpEvents(t, tb)
	var events []string
	for _, e := range floodEvents {
		events = append(events, fmt.Sprintf("%s %v", e, after[e]-before[e]))
	}
	t.Logf("the netstack meanwhile: %s", strings.Join(events, ", "))
	if tries < 20 {
		t.Fatalf("only %d connections tried in %v", tries, floodFor)
	}
	if taken < 10000 {
		t.Errorf("%s: %v; want at least 10,000 (the flood did not reach xhttpd, or the netstack took it)", taker.what, taken)
	}
	return ok, tries, drops
}

// floodEvents are the netstack's counters (xhttpd_tcp_events_total) that
// tell where a connection a flood made late was lost, if in the netstack.
var floodEvents = []string{"passive_open", "syn_cookie_valid", "syn_cookie_invalid", "ack_dropped_listen_full", "syn_dropped_listen_full", "open_failed", "dropped", "reset"}

// tcpEvents reads the floodEvents counters from the server's metrics.
func tcpEvents(t *testing.T, tb *testbed.Testbed) map[string]float64 {
	t.Helper()
	m := make(map[string]float64)
	for _, e := range floodEvents {
		m[e] = metric(t, tb, adminAddr, "xhttpd_tcp_events_total", "event", e)
	}
	return m
}

// vethDrops is what both ends of the testbed's veth pair have dropped so
// far (tx_dropped and rx_dropped): frames lost in veth itself, a ring full
// before the receiving end's XDP program or stack saw them.
func vethDrops(t *testing.T, tb *testbed.Testbed) uint64 {
	t.Helper()
	var sum uint64
	for _, end := range []struct {
		cmd func(context.Context, string, ...string) *exec.Cmd
		ifc string
	}{{tb.ClientCmd, tb.ClientIf}, {tb.ServerCmd, tb.ServerIf}} {
		for _, c := range []string{"tx_dropped", "rx_dropped"} {
			// `ip netns exec` mounts the namespace's sysfs.
			out, err := end.cmd(context.Background(), "cat", "/sys/class/net/"+end.ifc+"/statistics/"+c).Output()
			if err != nil {
				t.Fatalf("%s %s: %v", end.ifc, c, err)
			}
			n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
			if err != nil {
				t.Fatalf("%s %s: %q", end.ifc, c, out)
			}
			sum += n
		}
	}
	return sum
}

// hping3 returns a flood by hping3 at full rate on port 80 of 198.18.0.1
// from the client namespace, with the given flags, until its context ends.
func hping3(tb *testbed.Testbed, flags ...string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		args := append([]string{"hping3", "--flood", "-p", "80", "-q"}, flags...)
		if cpu, ok := ctx.Value(floodCPU{}).(int); ok {
			args = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, args...)
		}
		cmd := tb.ClientCmd(ctx, args[0], append(args[1:], tb.ServerV4.String())...)
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			return nil // killed at the end, as meant
		}
		return &floodError{err, strings.TrimSpace(string(out))}
	}
}

// floodCPU is the context key of the CPU a flood is pinned to.
type floodCPU struct{}

// onEveryCPU runs one flood per CPU, each pinned to its CPU (hping3 only),
// until ctx ends: the XDP program's stray budget is per CPU, and on veth
// the program runs on the sender's CPU, so one flooder spends one CPU's
// budget and leaves a client on the other its own.
func onEveryCPU(flood func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		errs := make(chan error, runtime.NumCPU())
		for cpu := range runtime.NumCPU() {
			go func() { errs <- flood(context.WithValue(ctx, floodCPU{}, cpu)) }()
		}
		var err error
		for range runtime.NumCPU() {
			err = errors.Join(err, <-errs)
		}
		return err
	}
}

type floodError struct {
	err error
	out string
}

func (e *floodError) Error() string { return "hping3 stopped early: " + e.err.Error() + ": " + e.out }

// A keep-alive connection that the XDP program's flow table has lost (an
// idle one evicted by newer flows) is put back by xdpnet's keeper once the
// program drops strays: under an ACK flood its next request is answered
// within a few of its client's retransmissions, not when the flood ends.
// The test empties the table, as eviction would, before the flood, and
// floods from every CPU, so that no CPU's budget of strays is left to let
// the connection back in by itself.
func TestACKFloodSparesIdleConnection(t *testing.T) {
	tb := floodTestbed(t)
	c, err := tb.ClientDialer()(context.Background(), "tcp", "198.18.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	get := func() (time.Duration, error) {
		start := time.Now()
		c.SetDeadline(start.Add(8 * time.Second))
		if _, err := io.WriteString(c, "GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start), err
	}
	if _, err := get(); err != nil {
		t.Fatal(err)
	}
	if n := emptyFlowTable(t, tb); n == 0 {
		t.Fatal("the flow table was empty: the connection should be in it")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	flooded := make(chan error, 1)
	go func() { flooded <- onEveryCPU(hping3(tb, "--ack", "--rand-source"))(ctx) }()
	time.Sleep(500 * time.Millisecond) // the flood spends the budget
	took, err := get()
	cancel()
	if ferr := <-flooded; ferr != nil {
		t.Fatal(ferr)
	}
	if err != nil {
		t.Fatalf("request on the idle connection under the flood: %v", err)
	}
	// The keeper ticks once a second; the client retransmits after about
	// 0.2, 0.6, 1.4 and 3 s.
	t.Logf("request on the idle connection answered in %v under the flood", took)
	if took > 4*time.Second {
		t.Errorf("request on the idle connection answered in %v under the flood, want within 4 s: its flow was not put back", took)
	}
}

// emptyFlowTable deletes every flow from the table of the XDP program
// attached to the server end, and returns how many there were.
func emptyFlowTable(t *testing.T, tb *testbed.Testbed) int {
	t.Helper()
	id, ok := xdpProgID(t, tb)
	if !ok {
		t.Fatalf("no XDP program on %s", tb.ServerIf)
	}
	prog, err := ebpf.NewProgramFromID(id)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := info.MapIDs()
	for _, mid := range ids {
		mp, err := ebpf.NewMapFromID(mid)
		if err != nil {
			t.Fatal(err)
		}
		defer mp.Close()
		if mi, err := mp.Info(); err != nil || mi.Name != "flows" {
			continue
		}
		var keys [][]byte
		key := make([]byte, mp.KeySize())
		for it := mp.Iterate(); it.Next(&key, new([]byte)); {
			keys = append(keys, slices.Clone(key))
		}
		for _, k := range keys {
			if err := mp.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				t.Fatal(err)
			}
		}
		return len(keys)
	}
	t.Fatalf("program %d has no flow table", id)
	return 0
}
