package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
)

// maxDuration bounds one wrk run, so that a typo cannot load the machine
// for hours.
const maxDuration = 10 * time.Minute

// maxConns bounds wrk's connections: each is a file descriptor in wrk and
// in the server.
const maxConns = 10000

// Servers bench knows, in the order the legend lists them. The waiting
// modes run xhttpd over AF_XDP; generic is hybrid with the XDP program in
// generic (skb) mode, which veth feeds from each CPU's backlog, as it
// feeds the kernel stack, rather than through one ring per queue; kernel
// runs the same httpd on the kernel's sockets; base runs another build of
// xhttpd (-base) in hybrid mode, to compare two builds side by side;
// nethttp is Go's net/http FileServer, nginx and apache (prefork) are
// Debian's, all on the kernel's sockets (peers.go).
var benchServers = []string{"interrupt", "busy", "hybrid", "generic", "kernel", "base", "nethttp", "nginx", "apache"}

// xhttpdServers are the servers download and flood know: xhttpd's.
var xhttpdServers = benchServers[:6]

// xdpServers are the servers that run xhttpd over AF_XDP in this build.
var xdpServers = benchServers[:4]

// serverSetup is what a server's command line is made from.
type serverSetup struct {
	xhttpd, nethttpd string   // binaries; nethttpd may be ""
	base             string   // another xhttpd binary, for server base; may be ""
	iface, root      string   // the server's veth end and the site
	queues           int      // passed on as xhttpd -queues
	addrs            []string // host:port to serve, for nethttpd
	peerDir          string   // the peers' configurations (writePeerConfigs)
	extra            []string // extra xhttpd flags, after ours so that they win
}

// serverFlags are the flags of the subcommands that start servers.
type serverFlags struct {
	xhttpd, nethttpd, base string
	wait                   time.Duration
	verbose                bool
}

// register adds -xhttpd, -base, -wait and -v to fs, and -nethttpd with
// nethttpd.
func (f *serverFlags) register(fs *flag.FlagSet, nethttpd bool) {
	fs.StringVar(&f.xhttpd, "xhttpd", "", "path to the xhttpd binary (required)")
	fs.StringVar(&f.base, "base", "", "path to another build of xhttpd, for the base server: it runs in hybrid mode with the same flags, to compare two builds side by side (best with -alternate)")
	if nethttpd {
		fs.StringVar(&f.nethttpd, "nethttpd", "", "path to the net/http server, for the nethttp server")
	}
	fs.DurationVar(&f.wait, "wait", 30*time.Second, "how long to wait for a server to accept connections")
	fs.BoolVar(&f.verbose, "v", false, "pass the servers' output through (by default only its tail, on failure)")
}

// setup finds the binaries and returns what every server's command line
// starts from: queues, and the flags after -- for xhttpd.
func (f *serverFlags) setup(fs *flag.FlagSet, queues int) (serverSetup, error) {
	s := serverSetup{queues: queues, extra: fs.Args()}
	var err error
	if s.xhttpd, err = findBinary("-xhttpd", f.xhttpd); err != nil {
		return s, err
	}
	if f.nethttpd != "" {
		if s.nethttpd, err = findBinary("-nethttpd", f.nethttpd); err != nil {
			return s, err
		}
	}
	if f.base != "" {
		if s.base, err = findBinary("-base", f.base); err != nil {
			return s, err
		}
	}
	return s, nil
}

// serverCommand returns the binary and arguments that run server name.
func serverCommand(name string, s serverSetup) (path string, args []string) {
	if name == "nethttp" {
		return s.nethttpd, []string{"-addr", strings.Join(s.addrs, ","), "-root", s.root}
	}
	if path, args, ok := peerCommand(name, s.peerDir); ok {
		return path, args
	}
	path = s.xhttpd
	args = []string{"-iface", s.iface, "-root", s.root, "-queues", strconv.Itoa(s.queues)}
	switch name {
	case "kernel":
		args = append(args, "-stack", "kernel")
	case "base":
		path, args = s.base, append(args, "-stack", "xdp", "-mode", "hybrid")
	case "generic":
		args = append(args, "-stack", "xdp", "-mode", "hybrid", "-xdp-mode", "generic")
	default:
		args = append(args, "-stack", "xdp", "-mode", name)
	}
	return path, append(args, s.extra...)
}

// serverLegend says in a few words what a table's server name ran.
func serverLegend(name string, s serverSetup) string {
	switch name {
	case "nethttp":
		return "Go net/http FileServer (-nethttpd) on the kernel's sockets"
	case "kernel":
		return "xhttpd -stack kernel: the same httpd on the kernel's sockets"
	case "base":
		return "xhttpd -stack xdp -mode hybrid, the build " + s.base + " (-base): the one compared with"
	case "generic":
		return "xhttpd -stack xdp -mode hybrid -xdp-mode generic: the XDP program in generic mode, fed from each CPU's backlog as the kernel stack is"
	case "nginx":
		return "nginx, one worker, epoll, sendfile, open_file_cache, no access log (cmd/testbed/peers/nginx.conf)"
	case "apache":
		return "Apache 2.4, prefork MPM, sendfile, no access log (cmd/testbed/peers/apache2.conf)"
	}
	return "xhttpd -stack xdp -mode " + name + ": AF_XDP and the netstack"
}

// parseServers reads -servers: names from known, comma-separated. nethttp
// and base need their binaries.
func parseServers(s string, known []string, sf serverFlags) ([]string, error) {
	names, err := parseNames("-servers", s, known)
	switch {
	case err != nil:
	case slices.Contains(names, "nethttp") && sf.nethttpd == "":
		err = fmt.Errorf("-servers %q: nethttp needs -nethttpd PATH", s)
	case slices.Contains(names, "base") && sf.base == "":
		err = fmt.Errorf("-servers %q: base needs -base PATH", s)
	}
	return names, err
}

// parseNames reads a comma-separated list of names, each one of known.
func parseNames(flag, s string, known []string) ([]string, error) {
	var names []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(known, f) {
			return nil, fmt.Errorf("%s %q: %q is not one of %s", flag, s, f, strings.Join(known, ", "))
		}
		names = append(names, f)
	}
	return names, nil
}

// parseConns reads -conns: connection counts, comma-separated.
func parseConns(s string) ([]int, error) {
	var conns []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxConns {
			return nil, fmt.Errorf("-conns %q: %q is not a connection count (1-%d)", s, f, maxConns)
		}
		conns = append(conns, n)
	}
	return conns, nil
}

func bench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var sf serverFlags
	sf.register(fs, true)
	serversFlag := fs.String("servers", "hybrid,kernel", "servers to compare, comma-separated: "+strings.Join(benchServers, ", "))
	connsFlag := fs.String("conns", "32", "wrk connections (keep-alive), comma-separated: one run per server and count")
	duration := fs.Duration("duration", 10*time.Second, "length of each wrk run, whole seconds (1s to 10m)")
	threads := fs.Int("threads", 2, "wrk threads (fewer when there are fewer connections)")
	queues := fs.Int("queues", 1, "rx/tx queues on each veth end, passed on as xhttpd -queues")
	file := fs.String("file", "1k.bin", "file wrk requests: "+siteFileNames())
	v6 := fs.Bool("6", false, "request over IPv6 instead of IPv4")
	closeEach := fs.Bool("close", false, "a new connection per request (Connection: close) instead of keep-alive")
	runs := fs.Int("runs", 1, "wrk runs back to back against each server start, one row each, to show what accumulates (1 to 10)")
	turns := fs.Int("alternate", 0, "run every server at once, each on a testbed of its own, and take this many turns, one wrk run against each server in turn, so that the machine's spells fall on all alike; prints the medians over the turns (0: one server after the other; 2 to 20; one -conns, not with busy, whose spinning takes a core from the others)")
	pinFlag := fs.String("pin", "", "SERVER/CLIENT: run every server on the first CPU list and wrk on the second, e.g. 0/1 (taskset; default: no pinning)")
	napi := fs.Bool("napi", true, "run the client end in NAPI mode (testbed.ClientNAPI), as a NIC's receive runs: without it veth drops the SYN-ACKs xhttpd's XDP program sends back (XDP_TX) when it answers SYNs beyond -syn-rate; -napi=false for figures comparable with builds before 2026-11-30")
	threaded := fs.Bool("threaded", false, "with -napi: the client end's NAPI polls in a kernel thread of its own (its sysfs threaded), so that the client's receive of each response runs there, not inside the server's send as it otherwise does on veth: on one machine, the nearest to a client on another")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: "+benchUsage)
		fmt.Fprintln(fs.Output(), "Flags after -- go to every xhttpd run (not to nethttpd).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	servers, err := parseServers(*serversFlag, benchServers, sf)
	if err != nil {
		return err
	}
	conns, err := parseConns(*connsFlag)
	if err != nil {
		return err
	}
	pin, err := parsePin(*pinFlag)
	if err != nil {
		return err
	}
	switch {
	case *duration < time.Second || *duration > maxDuration || *duration%time.Second != 0:
		return fmt.Errorf("-duration %v: want whole seconds (wrk's unit), 1s to %v", *duration, maxDuration)
	case *threads < 1:
		return fmt.Errorf("-threads %d: want at least 1", *threads)
	case *runs < 1 || *runs > 10:
		return fmt.Errorf("-runs %d: want 1 to 10", *runs)
	case *turns != 0 && (*turns < 2 || *turns > 20):
		return fmt.Errorf("-alternate %d: want 2 to 20 turns", *turns)
	case *turns != 0 && (len(conns) > 1 || *runs > 1):
		return errors.New("-alternate takes one -conns and no -runs")
	case *turns != 0 && slices.Contains(servers, "busy"):
		return errors.New("-alternate: busy spins on a core the idle servers' turns need; measure it without -alternate")
	case *threaded && !*napi:
		return errors.New("-threaded goes with -napi: without NAPI mode the client end has no NAPI to thread")
	}
	setup, err := sf.setup(fs, *queues)
	if err != nil {
		return err
	}
	if err := needWrk(); err != nil {
		return err
	}
	size, ok := siteFileSize(*file)
	if !ok {
		return fmt.Errorf("-file %q: want one of %s", *file, siteFileNames())
	}
	if setup.peerDir, err = os.MkdirTemp("", "xhttpd-peers-"); err != nil {
		return err
	}
	defer os.RemoveAll(setup.peerDir)

	started := time.Now()
	var rows []benchRow
	// prepare readies tb for the servers: the client end's mode, the
	// servers' CPUs, and the peers' configurations (the same on every
	// testbed: the addresses are). It returns the URL wrk requests, the
	// URLs checked first (every server's content over both families), and
	// what undoes it.
	prepare := func(tb *testbed.Testbed, site string) (url string, checks []string, undo func(), err error) {
		setup.root, setup.addrs = site, tb.ServerAddrs(80)
		tb.ServerCPUs = pin.server
		undo = func() {}
		if *napi {
			l, err := tb.ClientNAPI()
			if err != nil {
				return "", nil, nil, err
			}
			undo = func() { l.Close() }
			if *threaded {
				if err := threadClientNAPI(tb, true); err != nil {
					undo()
					return "", nil, nil, err
				}
				undo = func() { threadClientNAPI(tb, false); l.Close() }
			}
		}
		if err := writePeerConfigs(servers, peerConfig{Dir: setup.peerDir, Root: site,
			V4: tb.ServerV4.String(), V6: tb.ServerV6.String(), User: "www-data", Group: "www-data"}); err != nil {
			undo()
			return "", nil, nil, err
		}
		checks = []string{"http://" + tb.ServerV4.String() + "/" + *file, "http://[" + tb.ServerV6.String() + "]/" + *file}
		host := tb.ServerV4.String()
		if *v6 {
			host = "[" + tb.ServerV6.String() + "]"
		}
		return "http://" + host + "/" + *file, checks, undo, nil
	}
	run := func(name, url string, checks []string, c int) benchRun {
		path, xargs := serverCommand(name, setup)
		return benchRun{
			name: name, path: path, args: xargs, verbose: sf.verbose, runs: *runs, wrkCPUs: pin.client,
			url: url, checks: checks, size: size, wrk: wrkArgs(*threads, c, *duration, url, *closeEach), conns: c, wait: sf.wait, duration: *duration,
		}
	}
	if *turns > 0 {
		err = withTestbeds(len(servers), *queues, func(ctx context.Context, tbs []*testbed.Testbed, site string) error {
			var bs []benchRun
			for i, name := range servers {
				url, checks, undo, err := prepare(tbs[i], site)
				if err != nil {
					return err
				}
				defer undo()
				setup.iface = tbs[i].ServerIf
				bs = append(bs, run(name, url, checks, conns[0]))
			}
			rows = alternate(ctx, tbs, bs, *turns)
			return nil
		})
	} else {
		err = withTestbed(*queues, func(ctx context.Context, tb *testbed.Testbed, site string) error {
			url, checks, undo, err := prepare(tb, site)
			if err != nil {
				return err
			}
			defer undo()
			setup.iface = tb.ServerIf
			for _, name := range servers {
				for _, c := range conns {
					if ctx.Err() != nil {
						return nil
					}
					fmt.Fprintf(os.Stderr, "testbed: [%d/%d] %s, -c %d\n", len(rows)/(*runs)+1, len(servers)*len(conns), name, c)
					results, err := benchOne(ctx, tb, run(name, url, checks, c))
					if err != nil {
						fmt.Fprintf(os.Stderr, "testbed: %s, -c %d: %v\n", name, c, err)
					}
					for i := range *runs {
						r := benchRow{server: name, conns: c, size: size, err: err}
						// A failure after the last run (the server did not stop
						// cleanly) fails the last row.
						if i < len(results) && (i < *runs-1 || err == nil) {
							r.res, r.cpu, r.err = results[i].res, results[i].cpu, nil
						}
						rows = append(rows, r)
					}
				}
			}
			return nil
		})
	}

	fmt.Println()
	printMachine(os.Stdout, started)
	conn := "keep-alive"
	if *closeEach {
		conn = "-H 'Connection: close' (a new connection per request)"
	}
	clientEnd := "not in NAPI mode (-napi=false)"
	switch {
	case *threaded:
		clientEnd = "in NAPI mode, its NAPI in a thread of its own (-threaded)"
	case *napi:
		clientEnd = "in NAPI mode"
	}
	fmt.Printf("\nwrk -t min(%d, conns) -c conns -d %v --timeout 2s --latency: %s, GET /%s (%d bytes) over %s, %d queue(s), veth between namespaces, the client end %s.\n",
		*threads, *duration, conn, *file, size, map[bool]string{false: "IPv4", true: "IPv6"}[*v6], *queues, clientEnd)
	fmt.Printf("Placement: %s.\n", pin.describe())
	fmt.Println("CPU: the server's user+system time (/proc/PID/stat, summed over its processes: nginx's worker, Apache's children) from just before to just after wrk's run, per 10,000 requests wrk completed.")
	if *threaded {
		fmt.Println("The client's receive of the responses runs in the client end's NAPI thread, charged to no server;")
	} else {
		fmt.Println("On veth, softirq work mostly runs on the sending thread: the server is charged for the client's receive of its responses,")
	}
	fmt.Println("wrk for the server side's receive of requests (the XDP program and the AF_XDP copy included).")
	fmt.Println()
	for _, name := range dedup(servers) {
		fmt.Printf("- %s: %s\n", name, serverLegend(name, setup))
	}
	if len(setup.extra) > 0 {
		fmt.Printf("- extra xhttpd flags: %s\n", shellJoin(setup.extra))
	}
	if *turns > 0 {
		fmt.Printf("Every server up at once on a testbed of its own; %d turns, one run against each server in turn (-alternate).\n", *turns)
	}
	fmt.Println()
	err = errors.Join(err, writeBenchTable(os.Stdout, rows))
	if *turns > 0 {
		fmt.Println()
		writeTurnMedians(os.Stdout, rows, servers)
	}
	return err
}

const benchUsage = "testbed bench -xhttpd PATH [-servers hybrid,kernel] [-conns 32] [-duration 10s] [-threads 2] [-queues 1] [-file 1k.bin] [-6] [-close] [-runs 1 | -alternate N] [-pin SERVER/CLIENT] [-napi=true [-threaded]] [-nethttpd PATH] [-base PATH] [-v] [-- extra xhttpd flags]"

// benchRow is one server at one connection count.
type benchRow struct {
	server string
	conns  int
	size   int // body bytes per request
	res    wrkResult
	cpu    time.Duration // the server's CPU time during wrk's run
	err    error
}

// writeBenchTable prints the rows as a Markdown table, failed rows
// included, with wrk's complaints below it, and returns the failures.
func writeBenchTable(w io.Writer, rows []benchRow) error {
	fmt.Fprintln(w, "| server | conns | req/s | MB/s | p50 | p99 | CPU s per 10k req |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	var errs []error
	var notes []string
	for _, r := range rows {
		what := fmt.Sprintf("%s, %d conns", r.server, r.conns)
		if r.err != nil {
			fmt.Fprintf(w, "| %s | %d | failed | | | | |\n", r.server, r.conns)
			errs = append(errs, fmt.Errorf("%s: %w", what, r.err))
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.1f | %s | %s | %.3f |\n", r.server, r.conns,
			r.res.ReqPerSec, r.res.ReqPerSec*float64(r.size)/1e6, fmtLatency(r.res.P50), fmtLatency(r.res.P99), cpuPer10k(r.cpu, r.res.Requests))
		if r.res.SocketErrors != "" {
			notes = append(notes, fmt.Sprintf("%s: socket errors: %s", what, r.res.SocketErrors))
		}
		if r.res.Non2xx3xx > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d non-2xx/3xx responses", what, r.res.Non2xx3xx))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "-", n)
		}
	}
	return errors.Join(errs...)
}

// cpuPer10k is CPU seconds per 10,000 requests.
func cpuPer10k(cpu time.Duration, requests int64) float64 {
	if requests <= 0 {
		return 0
	}
	return cpu.Seconds() / float64(requests) * 10000
}

func dedup(names []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// benchRun is one server run under wrk.
type benchRun struct {
	name, path string
	args       []string
	verbose    bool
	runs       int      // wrk runs back to back; 0 is 1
	url        string   // what wrk requests
	checks     []string // URLs checked with one GET each first; url alone if empty
	size       int      // the body's size
	wrk        []string // wrk's arguments
	conns      int      // wrk's -c
	wrkCPUs    string   // the CPUs wrk runs on (-pin); "" for any
	wait       time.Duration
	duration   time.Duration
}

// wrkRun is one wrk run's result and the server's CPU time during it.
type wrkRun struct {
	res wrkResult
	cpu time.Duration
}

// benchOne starts a fresh server, checks that it serves the file, runs wrk
// against it from the client namespace b.runs times back to back, reading
// the server's CPU time just before and just after each, and stops it. It
// returns the runs that succeeded, up to the first failure.
func benchOne(ctx context.Context, tb *testbed.Testbed, b benchRun) (runs []wrkRun, err error) {
	srv, pid, err := startChecked(ctx, tb, b)
	if srv != nil {
		defer func() { err = srv.stopAndTell(err) }()
	}
	if err != nil {
		return nil, err
	}
	for range max(b.runs, 1) {
		r, err := wrkOnce(ctx, tb, b, pid)
		if err != nil {
			return runs, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// startChecked starts a fresh server, waits until it answers and checks that
// it serves the file. It returns the server (nil if it did not start; the
// caller stops it) and its pid.
func startChecked(ctx context.Context, tb *testbed.Testbed, b benchRun) (*quietServer, int, error) {
	srv, err := startQuiet(tb, b.name, b.path, b.args, b.verbose)
	if err != nil {
		return nil, 0, err
	}
	if err := srv.WaitHTTP(ctx, b.wait, tb.ServerAddrs(80)...); err != nil {
		return srv, 0, err
	}
	for _, u := range append([]string{b.url}, b.checks...) {
		if err := checkGet(ctx, tb, u, b.size); err != nil {
			return srv, 0, err
		}
	}
	pid, err := srv.Pid()
	return srv, pid, err
}

// alternate starts every server of bs at once, each on its testbed of tbs,
// and runs wrk once against each in turn, turns times: a row per run, turn
// by turn. A server that fails drops out of the turns that follow; one that
// does not stop cleanly fails its last row.
func alternate(ctx context.Context, tbs []*testbed.Testbed, bs []benchRun, turns int) []benchRow {
	srvs := make([]*quietServer, len(bs))
	pids := make([]int, len(bs))
	failed := make([]error, len(bs))
	for i, b := range bs {
		srvs[i], pids[i], failed[i] = startChecked(ctx, tbs[i], b)
	}
	var rows []benchRow
	last := make([]int, len(bs)) // each server's last row
	for t := 0; t < turns && ctx.Err() == nil; t++ {
		for i, b := range bs {
			fmt.Fprintf(os.Stderr, "testbed: turn %d of %d, %s\n", t+1, turns, b.name)
			r := benchRow{server: b.name, conns: b.conns, size: b.size, err: failed[i]}
			if failed[i] == nil {
				var w wrkRun
				w, failed[i] = wrkOnce(ctx, tbs[i], b, pids[i])
				r.res, r.cpu, r.err = w.res, w.cpu, failed[i]
			}
			last[i] = len(rows)
			rows = append(rows, r)
		}
	}
	for i, srv := range srvs {
		if srv == nil {
			continue
		}
		if err := srv.stopAndTell(failed[i]); err != nil && len(rows) > 0 && rows[last[i]].err == nil {
			rows[last[i]].err = err
		}
	}
	return rows
}

// writeTurnMedians prints, per server, the medians over its turns of the
// rate, the p99 and the CPU per request, and of its ratios to the first
// server's in the same turn.
func writeTurnMedians(w io.Writer, rows []benchRow, servers []string) {
	fmt.Fprintf(w, "| server | turns | req/s | p99 | CPU s per 10k req | req/s ÷ %s's, by turn | CPU ÷ %s's, by turn |\n", servers[0], servers[0])
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	n := len(servers)
	for i, name := range servers {
		var rate, cpu, rateRatio, cpuRatio []float64
		var p99 []time.Duration
		for t := 0; t+i < len(rows); t += n {
			r, first := rows[t+i], rows[t]
			if r.err != nil {
				continue
			}
			rate = append(rate, r.res.ReqPerSec)
			p99 = append(p99, r.res.P99)
			c := cpuPer10k(r.cpu, r.res.Requests)
			cpu = append(cpu, c)
			if first.err == nil && first.res.ReqPerSec > 0 {
				rateRatio = append(rateRatio, r.res.ReqPerSec/first.res.ReqPerSec)
				if fc := cpuPer10k(first.cpu, first.res.Requests); fc > 0 {
					cpuRatio = append(cpuRatio, c/fc)
				}
			}
		}
		if len(rate) == 0 {
			fmt.Fprintf(w, "| %s | 0 | | | | | |\n", name)
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %s | %.3f | %.2f | %.2f |\n", name, len(rate), median(rate), fmtLatency(median(p99)),
			median(cpu), median(rateRatio), median(cpuRatio))
	}
}

// wrkOnce runs wrk once against the server with pid.
func wrkOnce(ctx context.Context, tb *testbed.Testbed, b benchRun, pid int) (wrkRun, error) {
	// wrk stops itself after the duration; the margin covers its start and
	// its final report, the deadline a wrk that hangs.
	wctx, cancel := context.WithTimeout(ctx, b.duration+30*time.Second)
	defer cancel()
	wrkPath, wrkArgs := wrap(b.wrkCPUs, "wrk", b.wrk)
	cmd := tb.ClientCmd(wctx, wrkPath, wrkArgs...)
	cmd.Stderr = os.Stderr
	var report strings.Builder
	cmd.Stdout = &report
	cpu0, err := testbed.TreeCPU(pid)
	if err != nil {
		return wrkRun{}, err
	}
	err = cmd.Run()
	cpu1, cerr := testbed.TreeCPU(pid)
	for _, line := range strings.Split(strings.TrimRight(report.String(), "\n"), "\n") {
		fmt.Fprintf(os.Stderr, "wrk| %s\n", line)
	}
	if err != nil {
		return wrkRun{}, fmt.Errorf("wrk: %w", err)
	}
	if cerr != nil {
		return wrkRun{}, fmt.Errorf("%w (did the server exit during the run?)", cerr)
	}
	res, err := parseWrk(report.String())
	if err == nil && res.Requests == 0 {
		err = errors.New("wrk completed no request")
	}
	return wrkRun{res, cpu1 - cpu0}, err
}

// quietServer is a server whose output goes to the terminal only with -v;
// otherwise its tail is kept and shown if it fails, because a server that
// logs every request would flood the terminal and slow itself down.
type quietServer struct {
	*testbed.Server
	tail *tailWriter
}

func startQuiet(tb *testbed.Testbed, name, path string, args []string, verbose bool) (*quietServer, error) {
	tail := &tailWriter{max: 40}
	var out io.Writer = tail
	if verbose {
		out = os.Stderr
	}
	srv, err := startServer(tb, name, out, path, args...)
	if err != nil {
		return nil, err
	}
	if name == "nethttp" {
		// Not ours: it need not shut down cleanly on SIGINT, and dying of
		// it after the measurement does not spoil the measurement.
		srv.SIGINTKills = true
	}
	return &quietServer{srv, tail}, nil
}

// stopAndTell stops the server and, if the run failed, shows the tail of
// its output.
func (q *quietServer) stopAndTell(err error) error {
	err = errors.Join(err, q.Stop())
	if err != nil {
		os.Stderr.WriteString(q.tail.String())
	}
	return err
}

// checkGet makes sure the server answers 200 with the expected body size
// before it is measured: a fast stream of 404s is no result.
func checkGet(ctx context.Context, tb *testbed.Testbed, url string, size int) error {
	hc := tb.ClientHTTP()
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK || len(body) != size {
		return fmt.Errorf("GET %s: %s with %d bytes, want 200 OK with %d", url, resp.Status, len(body), size)
	}
	return nil
}

// tailWriter keeps the last max lines written to it.
type tailWriter struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *tailWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l != "" {
			t.lines = append(t.lines, l)
		}
	}
	if over := len(t.lines) - t.max; over > 0 {
		t.lines = append(t.lines[:0], t.lines[over:]...)
	}
	return len(b), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "")
}

// threadClientNAPI sets (or clears) threaded NAPI on the client end: with
// it a kernel thread polls the end, and a frame a server sends is received
// there instead of in the softirq that veth runs at the end of the server's
// send.
func threadClientNAPI(tb *testbed.Testbed, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return writeSysfs(tb.ClientCmd, "/sys/class/net/"+tb.ClientIf+"/threaded", v)
}
