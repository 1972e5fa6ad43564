package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/loadgen"
)

// expPoint is one measured point of the experiment: one server at one
// offered rate (kind "open"), or its saturation under wrk's closed loop
// (kind "closed", where the percentiles are wrk's and lag is not known).
type expPoint struct {
	Server    string  `json:"server"`
	FileBytes int     `json:"file_bytes"`
	Kind      string  `json:"kind"`
	Fraction  float64 `json:"load_fraction,omitempty"` // of the server's saturation; 0 for a shared absolute rate
	Rep       int     `json:"rep,omitempty"`           // repetition, from 1; 0 in results from before -reps
	loadPoint
	CPUSPerReq float64    `json:"cpu_s_per_req"`   // the server's CPU seconds per answered request
	Cores      float64    `json:"cores"`           // the server's CPU seconds per second of the run
	Unreliable bool       `json:"unreliable"`      // the generator's lag p99 exceeded 10% of the server's p50
	Loops      *loopDelta `json:"loops,omitempty"` // xhttpd over AF_XDP: what its queue loops did
	// -close, a server on the kernel's sockets: its TIME-WAIT sockets on
	// port 80 after the point (xhttpd's netstack keeps its own, unseen).
	ServerTimeWait *int `json:"server_time_wait,omitempty"`
	// kernel-busy: the packets the kernel's busy polling took during the
	// point (TcpExt BusyPollRxPackets, server namespace).
	BusyPollRx *int64 `json:"busy_poll_rx_packets,omitempty"`
	// -pattern burst, xhttpd over AF_XDP: its loops, sampled from its
	// /metrics every timelineWindow during the point.
	LoopTimeline []loopSample `json:"loop_timeline,omitempty"`
}

// burstSpec is the burst pattern of a run, as results.json keeps it.
type burstSpec struct {
	PeriodS float64 `json:"period_s"`
	Duty    float64 `json:"duty"` // share of each period at the high rate
	Low     float64 `json:"low"`  // the low rate as a share of the high one
}

func (b burstSpec) loadgen() loadgen.Burst {
	return loadgen.Burst{Period: time.Duration(b.PeriodS * float64(time.Second)), Duty: b.Duty, Low: b.Low}
}

// timelineWindow is the window of a burst run's timelines: the
// generator's and the loops' samples.
const timelineWindow = 100 * time.Millisecond

// expMissing is a server that could not be measured, and why.
type expMissing struct {
	Server string `json:"server"`
	Reason string `json:"reason"`
}

type expResults struct {
	Date    string `json:"date"`
	Machine string `json:"machine"`
	Command string `json:"command"`
	Reps    int    `json:"reps,omitempty"`  // runs of each open-loop point; 0 (before -reps) is 1
	Close   bool   `json:"close,omitempty"` // a new connection per request
	// The offered load's pattern: "" (steady) or "burst", with Burst; a
	// burst point's offered rate is the mean over a period.
	Pattern string     `json:"pattern,omitempty"`
	Burst   *burstSpec `json:"burst,omitempty"`
	// The percentiles of each point's cdf_us; none in results from
	// before the distributions were kept.
	CDFPercentiles []float64    `json:"cdf_percentiles,omitempty"`
	Points         []expPoint   `json:"points"`
	Missing        []expMissing `json:"missing,omitempty"`
}

// experimentServers are bench's servers and kernelBusy.
var experimentServers = append(slices.Clone(benchServers), kernelBusy)

// Defaults of `make bench`; `make bench-quick` passes fewer and shorter.
const (
	defaultFractions = "0.1,0.25,0.5,0.7,0.85,0.95"
	defaultShared    = "1000,5000,10000"
)

func experiment(args []string) error {
	fs := flag.NewFlagSet("experiment", flag.ContinueOnError)
	var sf serverFlags
	sf.register(fs, true)
	serversFlag := fs.String("servers", "interrupt,busy,hybrid,kernel,nginx,apache", "servers, comma-separated: "+strings.Join(experimentServers, ", ")+" ("+kernelBusy+": the kernel stack with the kernel's busy polling on the veth)")
	file := fs.String("file", "1k.bin", "file requested: "+siteFileNames())
	fractionsFlag := fs.String("fractions", defaultFractions, "offered loads as fractions of each server's saturation, comma-separated")
	sharedFlag := fs.String("rates", defaultShared, "offered loads in requests/s shared by all servers (each up to its saturation), comma-separated; empty for none")
	duration := fs.Duration("duration", 5*time.Second, "length of each open-loop point")
	reps := fs.Int("reps", 3, "runs of each open-loop point (1 to 10): results.json keeps each, the report and plots show the median and the spread")
	satDuration := fs.Duration("sat-duration", 5*time.Second, "length of the closed-loop run (wrk) that finds each server's saturation, whole seconds")
	conns := fs.Int("conns", 32, "keep-alive connections: wrk's for saturation, the generator's pool for the points (with -close: the most open at once)")
	pattern := fs.String("pattern", "steady", "offered load: steady (Poisson at the rate), or burst (Poisson at a high and a low rate in turn, the point's rate their mean; a timeline of each point, and of xhttpd's loops from its /metrics every "+timelineWindow.String()+")")
	burstPeriod := fs.Duration("burst-period", time.Second, "with -pattern burst: the period of the pattern")
	burstDuty := fs.Float64("burst-duty", 0.2, "with -pattern burst: the share of each period at the high rate")
	burstLow := fs.Float64("burst-low", 0.1, "with -pattern burst: the low rate as a share of the high one (0: silence)")
	closeEach := fs.Bool("close", false, "a new connection per request (Connection: close), for saturation (wrk) and the points, so that the sweep measures the connection path")
	out := fs.String("out", "", "directory for results.json, results.csv and report.md (required; made if missing)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: "+experimentUsage)
		fmt.Fprintln(fs.Output(), "For each server: find its saturation with wrk (closed loop), then offer open-loop Poisson loads (testbed loadgen) at fractions of it and at shared absolute rates; record latency from intended send times, the server's CPU, and the generator's lag and CPU. Flags after -- go to every xhttpd run.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	servers, err := parseNames("-servers", *serversFlag, experimentServers)
	if err == nil && slices.Contains(servers, "nethttp") && sf.nethttpd == "" {
		err = fmt.Errorf("-servers %q: nethttp needs -nethttpd PATH", *serversFlag)
	}
	if err != nil {
		return err
	}
	fractions, err := parseFloats("-fractions", *fractionsFlag, 0.001, 1)
	if err != nil {
		return err
	}
	shared, err := parseFloats("-rates", *sharedFlag, 1, 10_000_000)
	if err != nil {
		return err
	}
	switch {
	case *out == "":
		return errors.New("-out DIR is required")
	case *duration < 100*time.Millisecond || *duration > maxDuration:
		return fmt.Errorf("-duration %v: want 100ms to %v", *duration, maxDuration)
	case *satDuration < time.Second || *satDuration > maxDuration || *satDuration%time.Second != 0:
		return fmt.Errorf("-sat-duration %v: want whole seconds (wrk's unit), 1s to %v", *satDuration, maxDuration)
	case *conns < 1 || *conns > maxConns:
		return fmt.Errorf("-conns %d: want 1 to %d", *conns, maxConns)
	case *reps < 1 || *reps > 10:
		return fmt.Errorf("-reps %d: want 1 to 10", *reps)
	case *pattern != "steady" && *pattern != "burst":
		return fmt.Errorf("-pattern %q: want steady or burst", *pattern)
	}
	var burst *burstSpec
	if *pattern == "burst" {
		burst = &burstSpec{PeriodS: burstPeriod.Seconds(), Duty: *burstDuty, Low: *burstLow}
		switch {
		case *burstPeriod < 10*time.Millisecond || *burstPeriod > *duration:
			return fmt.Errorf("-burst-period %v: want 10ms to -duration (%v)", *burstPeriod, *duration)
		case !(*burstDuty > 0 && *burstDuty < 1):
			return fmt.Errorf("-burst-duty %v: want more than 0 and less than 1", *burstDuty)
		case !(*burstLow >= 0 && *burstLow < 1):
			return fmt.Errorf("-burst-low %v: want 0 to less than 1", *burstLow)
		}
	}
	size, ok := siteFileSize(*file)
	if !ok {
		return fmt.Errorf("-file %q: want one of %s", *file, siteFileNames())
	}
	setup, err := sf.setup(fs, 1)
	if err != nil {
		return err
	}
	if err := needWrk(); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if setup.peerDir, err = os.MkdirTemp("", "xhttpd-peers-"); err != nil {
		return err
	}
	defer os.RemoveAll(setup.peerDir)

	started := time.Now()
	var machine strings.Builder
	printMachine(&machine, started)
	res := expResults{Date: started.UTC().Format(time.RFC3339), Machine: strings.TrimSpace(machine.String()),
		Command: shellJoin(append([]string{"testbed", "experiment"}, args...)), Reps: *reps,
		Close: *closeEach, Burst: burst, CDFPercentiles: cdfPercentiles}
	if burst != nil {
		res.Pattern = "burst"
	}
	perServer := serverTime(len(fractions)+len(shared), *reps, *duration, *satDuration)
	err = withTestbed(1, func(ctx context.Context, tb *testbed.Testbed, site string) error {
		setup.iface, setup.root = tb.ServerIf, site
		setup.addrs = tb.ServerAddrs(80)
		if err := writePeerConfigs(servers, peerConfig{Dir: setup.peerDir, Root: site,
			V4: tb.ServerV4.String(), V6: tb.ServerV6.String(), User: "www-data", Group: "www-data"}); err != nil {
			return err
		}
		for i, name := range servers {
			if ctx.Err() != nil {
				return nil
			}
			left := time.Duration(len(servers)-i) * perServer
			fmt.Fprintf(os.Stderr, "testbed: [server %d/%d] %s (about %v left)\n", i+1, len(servers), name, left.Round(time.Second))
			pts, err := measureServer(ctx, tb, expRun{
				name: name, setup: setup, file: *file, size: size, self: self, conns: *conns,
				fractions: fractions, shared: shared, reps: *reps, close: *closeEach, burst: burst, duration: *duration, satDuration: *satDuration,
				wait: sf.wait, verbose: sf.verbose,
			})
			res.Points = append(res.Points, pts...)
			if err != nil {
				fmt.Fprintf(os.Stderr, "testbed: %s: %v\n", name, err)
				res.Missing = append(res.Missing, expMissing{Server: name, Reason: err.Error()})
			}
		}
		return nil
	})
	if werr := writeResults(*out, res); werr != nil {
		return errors.Join(err, werr)
	}
	fmt.Fprintf(os.Stderr, "testbed: %d points, %d servers missing; results in %s\n", len(res.Points), len(res.Missing), *out)
	if err == nil && !slices.ContainsFunc(res.Points, func(p expPoint) bool { return p.Kind == "open" }) {
		err = errors.New("nothing could be measured")
	}
	return err
}

// serverTime estimates one server's share of a run, for the progress
// lines: its saturation, every point and repetition, and a few seconds to
// start, check and stop it.
func serverTime(points, reps int, duration, satDuration time.Duration) time.Duration {
	return time.Duration(points*reps)*(duration+300*time.Millisecond) + satDuration + 3*time.Second
}

const experimentUsage = "testbed experiment -xhttpd PATH -out DIR [-servers ...] [-file 1k.bin] [-fractions " + defaultFractions + "] [-rates " + defaultShared + "] [-duration 5s] [-reps 3] [-close] [-sat-duration 5s] [-conns 32] [-nethttpd PATH] [-v] [-- extra xhttpd flags]"

// expRun is one server's share of the experiment.
type expRun struct {
	name        string
	setup       serverSetup
	file        string
	size        int
	self        string // this binary, run as `testbed loadgen` in the client namespace
	conns       int
	fractions   []float64
	shared      []float64
	reps        int
	close       bool       // a new connection per request
	burst       *burstSpec // nil: steady
	duration    time.Duration
	satDuration time.Duration
	wait        time.Duration
	verbose     bool
}

// measureServer starts the server, checks its content over both families,
// finds its saturation and measures the open-loop points. It returns the
// points measured before any failure.
func measureServer(ctx context.Context, tb *testbed.Testbed, r expRun) (pts []expPoint, err error) {
	command := r.name
	if r.name == kernelBusy {
		var restore func() error
		restore, err = prepareBusyPoll(ctx, tb)
		defer func() {
			if rerr := restore(); rerr != nil {
				fmt.Fprintf(os.Stderr, "testbed: %s: restoring the veth's settings: %v\n", r.name, rerr)
				err = errors.Join(err, fmt.Errorf("restoring the veth's settings: %w", rerr))
			}
		}()
		if err != nil {
			return nil, err
		}
		command = "kernel"
	}
	path, args := serverCommand(command, r.setup)
	xdpLoops := slices.Contains(xdpServers, r.name)
	if xdpLoops {
		args = append(args, "-admin", adminAddr)
	}
	srv, err := startQuiet(tb, r.name, path, args, r.verbose)
	if err != nil {
		return nil, err
	}
	defer func() { err = srv.stopAndTell(err) }()
	if err := srv.WaitHTTP(ctx, r.wait, tb.ServerAddrs(80)...); err != nil {
		return nil, err
	}
	for _, u := range []string{"http://" + tb.ServerV4.String() + "/" + r.file, "http://[" + tb.ServerV6.String() + "]/" + r.file} {
		if err := checkGet(ctx, tb, u, r.size); err != nil {
			return nil, err
		}
	}
	pid, err := srv.Pid()
	if err != nil {
		return nil, err
	}
	if r.name == kernelBusy {
		if _, err := enableEpollBusyPoll(pid); err != nil {
			return nil, fmt.Errorf("busy polling: %w", err)
		}
	}
	url := "http://" + tb.ServerV4.String() + "/" + r.file
	sat, err := wrkOnce(ctx, tb, benchRun{wrk: wrkArgs(2, r.conns, r.satDuration, url, r.close), duration: r.satDuration}, pid)
	if err != nil {
		return nil, fmt.Errorf("saturation: %w", err)
	}
	pts = append(pts, expPoint{
		Server: r.name, FileBytes: r.size, Kind: "closed", Fraction: 1,
		loadPoint: loadPoint{Achieved: sat.res.ReqPerSec, Done: sat.res.Requests,
			P50: sat.res.P50.Microseconds(), P99: sat.res.P99.Microseconds(), ElapsedS: r.satDuration.Seconds()},
		CPUSPerReq: perReq(sat.cpu, sat.res.Requests), Cores: sat.cpu.Seconds() / r.satDuration.Seconds(),
	})
	rates := offeredRates(sat.res.ReqPerSec, r.fractions, r.shared)
	// Repetitions sweep the rates in turn, so that what drifts over a
	// server's run (the machine's other work, the server's own state)
	// spreads over every rate instead of weighing on one.
	for rep := 1; rep <= r.reps; rep++ {
		for j, o := range rates {
			if ctx.Err() != nil {
				return pts, ctx.Err()
			}
			fmt.Fprintf(os.Stderr, "testbed:   %s point %d/%d, run %d/%d: %.0f req/s offered (saturation %.0f)\n",
				r.name, j+1, len(rates), rep, r.reps, o.rate, sat.res.ReqPerSec)
			var before loopStats
			var bpBefore int64
			if r.name == kernelBusy {
				if bpBefore, err = busyPollRx(tb); err != nil {
					return pts, err
				}
			}
			if xdpLoops {
				if before, err = readLoopStats(ctx, tb); err != nil {
					return pts, err
				}
			}
			p, err := openLoopPoint(ctx, tb, r, pid, o.rate, rep, xdpLoops && r.burst != nil)
			if err != nil {
				return pts, fmt.Errorf("%.0f req/s: %w", o.rate, err)
			}
			if xdpLoops {
				after, err := readLoopStats(ctx, tb)
				if err != nil {
					return pts, err
				}
				d := after.delta(before, max(p.ElapsedS, r.duration.Seconds()))
				p.Loops = &d
			}
			if r.name == kernelBusy {
				after, err := busyPollRx(tb)
				if err != nil {
					return pts, err
				}
				d := after - bpBefore
				p.BusyPollRx = &d
			}
			if r.close && !xdpLoops {
				if n, err := serverTimeWaits(tb); err == nil {
					p.ServerTimeWait = &n
				}
			}
			p.Fraction, p.Rep = o.fraction, rep
			pts = append(pts, p)
		}
	}
	return pts, nil
}

type offered struct {
	rate     float64
	fraction float64 // 0 for a shared rate
}

// offeredRates lists the fractions of sat and the shared rates up to sat,
// by rate; a shared rate that equals a fraction's is kept once, as shared.
func offeredRates(sat float64, fractions, shared []float64) []offered {
	var out []offered
	for _, s := range shared {
		if s <= sat {
			out = append(out, offered{rate: s})
		}
	}
	for _, f := range fractions {
		r := float64(int64(f * sat))
		if r >= 1 && !slices.ContainsFunc(out, func(o offered) bool { return o.rate == r }) {
			out = append(out, offered{rate: r, fraction: f})
		}
	}
	slices.SortFunc(out, func(a, b offered) int { return int(a.rate - b.rate) })
	return out
}

// openLoopPoint runs the generator in the client namespace at rate and
// reads the server's CPU time around it.
// With sampleLoops, xhttpd's loops are sampled every timelineWindow
// meanwhile.
func openLoopPoint(ctx context.Context, tb *testbed.Testbed, r expRun, pid int, rate float64, rep int, sampleLoops bool) (expPoint, error) {
	gctx, cancel := context.WithTimeout(ctx, r.duration+30*time.Second)
	defer cancel()
	args := []string{"loadgen", "-addr", tb.ServerV4.String() + ":80", "-path", "/" + r.file,
		"-rate", strconv.FormatFloat(rate, 'f', -1, 64), "-conns", strconv.Itoa(r.conns),
		"-duration", r.duration.String(), "-seed", strconv.FormatUint(pointSeed(rate, rep), 10)}
	if r.close {
		args = append(args, "-close")
	}
	if b := r.burst; b != nil {
		args = append(args, "-burst-period", b.loadgen().Period.String(), "-burst-duty", strconv.FormatFloat(b.Duty, 'f', -1, 64),
			"-burst-low", strconv.FormatFloat(b.Low, 'f', -1, 64), "-window", timelineWindow.String())
	}
	cmd := tb.ClientCmd(gctx, r.self, args...)
	var out, errOut strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = io.MultiWriter(os.Stderr, &errOut)
	cpu0, err := testbed.TreeCPU(pid)
	if err != nil {
		return expPoint{}, err
	}
	var sampler *loopSampler
	if sampleLoops {
		sampler = startLoopSampler(ctx, tb, timelineWindow)
	}
	err = cmd.Run()
	cpu1, cerr := testbed.TreeCPU(pid)
	var scrapes []scrape
	var serr error
	if sampler != nil {
		scrapes, serr = sampler.stop()
	}
	if err != nil {
		return expPoint{}, fmt.Errorf("loadgen: %w: %s", err, strings.TrimSpace(errOut.String()))
	}
	if cerr != nil {
		return expPoint{}, fmt.Errorf("%w (did the server exit during the run?)", cerr)
	}
	var lp loadPoint
	if err := json.Unmarshal([]byte(out.String()), &lp); err != nil {
		return expPoint{}, fmt.Errorf("loadgen's output: %w", err)
	}
	cpu := cpu1 - cpu0
	p := expPoint{
		Server: r.name, FileBytes: r.size, Kind: "open", loadPoint: lp,
		CPUSPerReq: perReq(cpu, lp.Done), Cores: cpu.Seconds() / max(lp.ElapsedS, r.duration.Seconds()),
		Unreliable: float64(lp.LagP99) > 0.1*float64(lp.P50),
	}
	if serr != nil {
		fmt.Fprintf(os.Stderr, "testbed: %s at %.0f/s: the loops' timeline: %v\n", r.name, rate, serr)
	}
	for _, l := range loopTimeline(scrapes, lp.StartMono) {
		// Samples from before the first intended time or after the last
		// window tell nothing of the point.
		if l.T >= -timelineWindow.Seconds() && l.T <= r.duration.Seconds()+timelineWindow.Seconds() {
			p.LoopTimeline = append(p.LoopTimeline, l)
		}
	}
	return p, nil
}

// pointSeed seeds a point's Poisson schedule: one per rate and
// repetition, so that the repetitions of a point differ in their gaps too
// (the first keeps the seed of runs before -reps).
func pointSeed(rate float64, rep int) uint64 {
	return uint64(rate) + uint64(max(rep-1, 0))*1_000_003
}

// serverTimeWaits counts the TIME-WAIT sockets on port 80 in the server's
// namespace: a kernel-stack server's.
func serverTimeWaits(tb *testbed.Testbed) (int, error) {
	var n int
	err := tb.InServer(func() (err error) {
		n, err = loadgen.TimeWaits(80, 0)
		return err
	})
	return n, err
}

func perReq(cpu time.Duration, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return cpu.Seconds() / float64(n)
}

// parseFloats reads a comma-separated list of numbers in [lo, hi]; empty is
// none.
func parseFloats(flagName, s string, lo, hi float64) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v < lo || v > hi {
			return nil, fmt.Errorf("%s %q: %q is not a number from %g to %g", flagName, s, f, lo, hi)
		}
		out = append(out, v)
	}
	return out, nil
}

// writeResults writes results.json, results.csv, the plots (SVG and PNG)
// and report.md into dir.
func writeResults(dir string, res expResults) error {
	j, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "results.csv"))
	if err != nil {
		return err
	}
	if err := writeCSV(f, res.Points); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	aggs := aggregate(res.Points)
	plots, perr := writePlots(dir, aggs)
	cdfs, cerr := writeCDFs(dir, res.CDFPercentiles, aggs)
	timelines, terr := writeTimelines(dir, res, aggs)
	perr = errors.Join(perr, cerr, terr)
	r, err := os.Create(filepath.Join(dir, "report.md"))
	if err != nil {
		return errors.Join(perr, err)
	}
	writeReport(r, res, plots, cdfs, timelines)
	return errors.Join(perr, r.Close())
}

var csvHeader = []string{"server", "file_bytes", "kind", "rep", "load_fraction", "offered_rps", "achieved_rps", "sent", "done", "errors",
	"p50_us", "p90_us", "p99_us", "p999_us", "max_us", "lag_p50_us", "lag_p99_us", "gen_cpu_s", "cpu_s_per_req", "cores", "unreliable",
	"mode_switches_per_s", "wakeups_per_s", "polling_share", "after_sleep_share", "rx_wait_after_sleep_us", "rx_wait_polling_us", "new_conns", "closed_by_server", "reset_by_client", "client_time_wait", "server_time_wait"}

func writeCSV(w io.Writer, pts []expPoint) error {
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, p := range pts {
		loops := []string{"", "", "", "", "", ""}
		if p.Loops != nil {
			loops = []string{g(p.Loops.Switches), g(p.Loops.Wakeups), g(p.Loops.PollingPart),
				g(p.Loops.AfterSleepPart), g(p.Loops.WaitAfterSleepUS), g(p.Loops.WaitPollingUS)}
		}
		tw := func(n *int) string {
			if n == nil {
				return ""
			}
			return strconv.Itoa(*n)
		}
		loops = append(loops, i(p.Opened), i(p.ServerClosed), i(p.Reset), tw(p.ClientTimeWait), tw(p.ServerTimeWait))
		cw.Write(append([]string{p.Server, strconv.Itoa(p.FileBytes), p.Kind, strconv.Itoa(p.Rep), g(p.Fraction), g(p.Offered), g(p.Achieved), i(p.Sent), i(p.Done), i(p.Errors),
			i(p.P50), i(p.P90), i(p.P99), i(p.P999), i(p.Max), i(p.LagP50), i(p.LagP99), g(p.GenCPU), g(p.CPUSPerReq), g(p.Cores), strconv.FormatBool(p.Unreliable)}, loops...))
	}
	cw.Flush()
	return cw.Error()
}

// reportCmd rewrites the plots and report.md of an experiment's directory
// from its results.json, without measuring again.
func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	dir := fs.String("out", "", "an experiment's directory, with its results.json (required)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: "+reportUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("-out DIR is required")
	}
	b, err := os.ReadFile(filepath.Join(*dir, "results.json"))
	if err != nil {
		return err
	}
	var res expResults
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(*dir, "results.json"), err)
	}
	return writeResults(*dir, res)
}

const reportUsage = "testbed report -out DIR"
