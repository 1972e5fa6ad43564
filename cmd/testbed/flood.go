package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
)

const floodUsage = "testbed flood -xhttpd PATH [-servers hybrid,kernel] [-floods own,random,v6,own6,ack,ack6] [-duration 10s] [-base PATH] [-v] [-- extra xhttpd flags]"

// floodKinds are the floods flood knows: four of SYNs, two of ACKs;
// defaultFloods those it runs unless told (own6 is for comparing servers
// at one rate, -v6-rate, under a flood from the client's own address).
var (
	floodKinds    = []string{"own", "random", "v6", "own6", "ack", "ack6"}
	defaultFloods = "own,random,v6,ack,ack6"
)

var floodLegends = map[string]string{
	"own":    "hping3 --flood --syn from the client's own IPv4 address (its kernel answers each SYN-ACK with a RST)",
	"random": "hping3 --flood --syn --rand-source, IPv4",
	"v6":     "the testbed's AF_PACKET flooder (testbed.Flood), IPv6, random sources",
	"own6":   "the testbed's AF_PACKET flooder (testbed.Flood), IPv6, from the client's own address (its kernel answers each SYN-ACK with a RST), as hping3 --syn does over IPv4 but at -v6-rate",
	"ack":    "hping3 --flood --ack --rand-source, IPv4",
	"ack6":   "the testbed's AF_PACKET flooder (testbed.Flood), ACKs, IPv6, random sources",
}

// flood measures what a flood costs the clients of each server: a
// client opening a new connection for each GET, one after the other, and a
// keep-alive client sending GETs on one connection, first without a flood
// and then during one, side by side per server and flood.
func flood(args []string) error {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	var sf serverFlags
	sf.register(fs, false)
	serversFlag := fs.String("servers", "hybrid,kernel", "servers to compare, comma-separated: "+strings.Join(xhttpdServers, ", "))
	floodsFlag := fs.String("floods", defaultFloods, "floods, comma-separated: own, random (hping3 SYNs, IPv4), v6, own6 (SYNs, IPv6, random sources or the client's own), ack (hping3 ACKs, IPv4), ack6 (ACKs, IPv6)")
	d := fs.Duration("duration", 10*time.Second, "length of each phase, quiet and flooded (1s to 10m)")
	v6Rate := fs.Int("v6-rate", 0, "segments a second of floods v6, own6 and ack6, 0 for as fast as one thread sends: to compare servers at one rate (hping3's floods always go at full rate)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: "+floodUsage)
		fmt.Fprintln(fs.Output(), "Floods port 80 with SYNs (or ACKs) while two clients measure; the client end runs in NAPI mode (testbed.ClientNAPI). Flags after -- go to every xhttpd run.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	servers, err := parseServers(*serversFlag, xhttpdServers, sf)
	if err != nil {
		return err
	}
	floods, err := parseNames("-floods", *floodsFlag, floodKinds)
	if err != nil {
		return err
	}
	if *d < time.Second || *d > maxDuration {
		return fmt.Errorf("-duration %v: want 1s to %v", *d, maxDuration)
	}
	if *v6Rate < 0 || *v6Rate > 10_000_000 {
		return fmt.Errorf("-v6-rate %d: want 0 to 10000000", *v6Rate)
	}
	if slices.ContainsFunc(floods, func(f string) bool { return !v6Flood(f) }) {
		if _, err := exec.LookPath("hping3"); err != nil {
			return errors.New("hping3 is missing: apt-get install hping3 (make tools)")
		}
	}
	setup, err := sf.setup(fs, 1)
	if err != nil {
		return err
	}

	started := time.Now()
	var rows []floodRow
	err = withTestbed(1, func(ctx context.Context, tb *testbed.Testbed, site string) error {
		napi, err := tb.ClientNAPI()
		if err != nil {
			return err
		}
		defer napi.Close()
		unroute, err := tb.RouteThroughClient()
		if err != nil {
			return err
		}
		defer unroute()
		setup.iface, setup.root = tb.ServerIf, site
		for i, name := range servers {
			for j, kind := range floods {
				if ctx.Err() != nil {
					return nil
				}
				fmt.Fprintf(os.Stderr, "testbed: [%d/%d] %s, flood %s\n", i*len(floods)+j+1, len(servers)*len(floods), name, kind)
				path, xargs := serverCommand(name, setup)
				r, err := floodOne(ctx, tb, napi, benchRun{name: name, path: path, args: xargs, verbose: sf.verbose, wait: sf.wait, duration: *d}, kind, *v6Rate)
				if err != nil {
					fmt.Fprintf(os.Stderr, "testbed: %s, flood %s: %v\n", name, kind, err)
					r.err = err
				}
				rows = append(rows, r)
			}
		}
		return nil
	})

	fmt.Println()
	printMachine(os.Stdout, started)
	fmt.Printf("\nEach server and flood: %v without a flood, then %v during one. A client in the client namespace opens a new connection for each GET of 1k.bin, "+
		"one after the other (20 ms apart), over the flood's address family; one counts as served when its GET is answered within 1 s. A keep-alive client GETs 1k.bin "+
		"over one connection, one request after the other. Answers are the SYN-ACKs (under flood ack the RSTs) to forged sources a second, counted where the client end drops them as a network would carry them off "+
		"(the server end routes everything through the client end, as a server does through its gateway); under flood own the forged source is the client, which answers each with a RST. "+
		"CPU is the server process's share of one core in each phase: the clients' requests in both, the flood's cost in the difference.\n\n", *d, *d)
	for _, name := range dedup(servers) {
		fmt.Printf("- %s: %s\n", name, serverLegend(name, setup))
	}
	for _, kind := range floods {
		fmt.Printf("- flood %s: %s\n", kind, floodLegends[kind])
		if v6Flood(kind) && *v6Rate > 0 {
			fmt.Printf("  paced at %d a second\n", *v6Rate)
		}
	}
	if len(setup.extra) > 0 {
		fmt.Printf("- extra xhttpd flags: %s\n", shellJoin(setup.extra))
	}
	fmt.Println()
	return errors.Join(err, writeFloodTable(os.Stdout, rows))
}

// floodRow is one server under one flood.
type floodRow struct {
	server, flood  string
	sentRate       float64 // segments per second the flooder sent
	answerRate     float64 // the server's answers (SYN-ACKs, RSTs) per second to forged sources other than the client
	quiet, flooded probes
	cpuQuiet       float64 // the server's share of a core, quiet
	cpuFlooded     float64 // and during the flood
	err            error
}

// probes is what the two clients saw in one phase.
type probes struct {
	served, tries int             // new connections answered within 1 s, and tried
	newConn       []time.Duration // of those answered
	keepAlive     []time.Duration // of the keep-alive requests answered
	kaFailed      int
}

func writeFloodTable(w io.Writer, rows []floodRow) error {
	fmt.Fprintln(w, "| server | flood | sent/s | answers/s | new conns within 1 s, quiet | flooded | new conn p50 / p99, quiet | flooded | keep-alive p99, quiet | flooded | keep-alive failed | server CPU, quiet | flooded |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	var errs []error
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(w, "| %s | %s | failed | | | | | | | | | | |\n", r.server, r.flood)
			errs = append(errs, fmt.Errorf("%s, flood %s: %w", r.server, r.flood, r.err))
			continue
		}
		answers := fmt.Sprintf("%.0f", r.answerRate)
		if r.flood == "own" {
			answers = "-"
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %d | %.0f%% | %.0f%% |\n", r.server, r.flood, r.sentRate, answers,
			r.quiet.servedShare(), r.flooded.servedShare(),
			p50p99(r.quiet.newConn), p50p99(r.flooded.newConn),
			fmtLatency(quantile(r.quiet.keepAlive, 0.99)), fmtLatency(quantile(r.flooded.keepAlive, 0.99)),
			r.quiet.kaFailed+r.flooded.kaFailed, 100*r.cpuQuiet, 100*r.cpuFlooded)
	}
	return errors.Join(errs...)
}

func (p probes) servedShare() string {
	if p.tries == 0 {
		return "-"
	}
	return fmt.Sprintf("%d of %d", p.served, p.tries)
}

func p50p99(ds []time.Duration) string {
	return fmtLatency(quantile(ds, 0.5)) + " / " + fmtLatency(quantile(ds, 0.99))
}

// quantile is the q-quantile of ds (nearest rank), 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// floodOne starts a fresh server, checks it, measures a quiet phase and a
// flooded one, and stops it.
func floodOne(ctx context.Context, tb *testbed.Testbed, napi *testbed.Loss, b benchRun, kind string, v6Rate int) (r floodRow, err error) {
	r = floodRow{server: b.name, flood: kind}
	srv, err := startQuiet(tb, b.name, b.path, b.args, b.verbose)
	if err != nil {
		return r, err
	}
	defer func() { err = srv.stopAndTell(err) }()
	addrs := tb.ServerAddrs(80)
	if err := srv.WaitHTTP(ctx, b.wait, addrs...); err != nil {
		return r, err
	}
	addr := addrs[0]
	if v6Flood(kind) {
		addr = addrs[1]
	}
	if err := checkGet(ctx, tb, "http://"+addr+"/1k.bin", 1<<10); err != nil {
		return r, err
	}
	pid, err := srv.Pid()
	if err != nil {
		return r, err
	}

	if r.quiet, r.cpuQuiet, err = probeCPU(ctx, tb, addr, b.duration, pid); err != nil {
		return r, err
	}
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	type result struct {
		sent uint64
		took time.Duration
		err  error
	}
	flooded := make(chan result, 1)
	go func() {
		start := time.Now()
		n, err := sendFlood(fctx, tb, kind, v6Rate)
		flooded <- result{n, time.Since(start), err}
	}()
	time.Sleep(500 * time.Millisecond) // the flood is on
	n0, err := napi.Counts()
	if err != nil {
		return r, err
	}
	start := time.Now()
	if r.flooded, r.cpuFlooded, err = probeCPU(ctx, tb, addr, b.duration, pid); err != nil {
		return r, fmt.Errorf("%w (did the server exit during the flood?)", err)
	}
	n1, err := napi.Counts()
	if err != nil {
		return r, err
	}
	took := time.Since(start).Seconds()
	r.answerRate = float64(n1.ReceiveForeign-n0.ReceiveForeign) / took
	stop()
	res := <-flooded
	if res.err != nil {
		return r, res.err
	}
	r.sentRate = float64(res.sent) / res.took.Seconds()
	return r, ctx.Err()
}

// probeCPU runs probe and returns the share of a core process pid used
// meanwhile.
func probeCPU(ctx context.Context, tb *testbed.Testbed, addr string, d time.Duration, pid int) (probes, float64, error) {
	cpu0, err := testbed.ProcessCPU(pid)
	if err != nil {
		return probes{}, 0, err
	}
	start := time.Now()
	p := probe(ctx, tb, addr, d)
	cpu1, err := testbed.ProcessCPU(pid)
	if err != nil {
		return p, 0, err
	}
	return p, (cpu1 - cpu0).Seconds() / time.Since(start).Seconds(), nil
}

// v6Flood says whether a flood is the testbed's own, over IPv6 (the others
// are hping3's, over IPv4).
func v6Flood(kind string) bool { return kind == "v6" || kind == "own6" || kind == "ack6" }

// sendFlood floods port 80 until ctx ends and returns the segments sent;
// floods v6 and ack6 at v6Rate a second if positive.
func sendFlood(ctx context.Context, tb *testbed.Testbed, kind string, v6Rate int) (uint64, error) {
	if v6Flood(kind) {
		return tb.Flood(ctx, testbed.FloodOptions{Dst: tb.ServerV6, Port: 80, RandomSources: kind != "own6", Rate: v6Rate, ACK: kind == "ack6"})
	}
	args := []string{"--flood", "-p", "80", tb.ServerV4.String()}
	switch kind {
	case "own":
		args = append(args, "--syn")
	case "random":
		args = append(args, "--syn", "--rand-source")
	case "ack":
		args = append(args, "--ack", "--rand-source")
	}
	cmd := tb.ClientCmd(context.Background(), "hping3", args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("hping3: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return 0, fmt.Errorf("hping3 stopped early: %v: %s", err, out.String())
	case <-ctx.Done():
	}
	// SIGINT makes hping3 print how many it sent.
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	m := regexp.MustCompile(`(\d+) packets transmitted`).FindStringSubmatch(out.String())
	if m == nil {
		return 0, fmt.Errorf("hping3 said no packet count: %s", out.String())
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	return n, err
}

// probe runs the two clients against addr for d.
func probe(ctx context.Context, tb *testbed.Testbed, addr string, d time.Duration) probes {
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var p probes
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		dial := tb.ClientDialer()
		for pctx.Err() == nil {
			start := time.Now()
			err := getNew(ctx, dial, addr)
			took := time.Since(start)
			if pctx.Err() != nil && err != nil {
				break
			}
			p.tries++
			if err == nil && took <= time.Second {
				p.served++
				p.newConn = append(p.newConn, took)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	hc := tb.ClientHTTP()
	hc.Timeout = 2 * time.Second
	defer hc.CloseIdleConnections()
	for pctx.Err() == nil {
		start := time.Now()
		resp, err := hc.Get("http://" + addr + "/1k.bin")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = errors.New(resp.Status)
			}
		}
		if err != nil {
			p.kaFailed++
			continue
		}
		p.keepAlive = append(p.keepAlive, time.Since(start))
	}
	wg.Wait()
	return p
}

// getNew connects to addr and GETs 1k.bin with Connection: close, within
// 1 s for each step.
func getNew(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), addr string) error {
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := dial(dctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "GET /1k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}
