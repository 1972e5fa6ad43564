// Command xhttpd serves static files over HTTP/1.1 from a TCP/IP stack in
// user space, fed by AF_XDP sockets, one per NIC queue. With -stack kernel it
// serves the same files through the kernel's sockets instead: the control in
// every comparison.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xhttpd/xhttpd/httpd"
	"github.com/xhttpd/xhttpd/internal/cpulist"
	"github.com/xhttpd/xhttpd/internal/enum"
	"github.com/xhttpd/xhttpd/irq"
	"github.com/xhttpd/xhttpd/nic"
	"github.com/xhttpd/xhttpd/stack"
	"github.com/xhttpd/xhttpd/xdp"
	"github.com/xhttpd/xhttpd/xdpnet"
)

// options are the parsed and checked flags.
type options struct {
	iface       string
	http        httpd.Config
	accessLog   *logFile       // the access log's file, which SIGUSR1 reopens; nil for none or stdout
	path        xdpnet.Options // Ports serve -stack kernel too
	stack       stackKind
	admin       string
	logLevel    slog.Level
	logFormat   logFormat
	shutdownFor time.Duration
	user        *account // serve as this user once started; nil: stay as started
	version     bool     // -version: print the version and exit
	procs       int      // -procs: GOMAXPROCS; 0 for one per served queue (procsFor)
	gcPercent   int      // -gc-percent: the GC's target heap growth; 0 leaves Go's (GOGC)
}

// defaultGCPercent is -gc-percent's default: the Go GC's target heap growth,
// in percent of the live heap, 4 times Go's default of 100. Each new
// connection costs the netstack about 65 allocations, 6.3 KB (gVisor's
// endpoint, its sender, its timers), and the GC's work falls with the
// growth it allows. Alternating builds that differ only in it, 32
// connections a request each, 8 turns: 400 served 1.18x the requests of
// 100 at 0.84x the CPU per request, and 800 1.00x those of 400 at 1.05x.
// The price under that load: 99 MB of heap in use against 46 MB, 180 MB
// resident against 107 MB. Keep-alive requests served from the cache
// allocate nothing, and do not care.
const defaultGCPercent = 400

// gcMemoryLimit is the soft memory limit set beside -gc-percent, unless
// GOMEMLIMIT is: what Go's default target would let a full file cache
// (cacheTotal bytes, live) grow to, plus 256 MiB for everything else.
// The cache lives in the heap, and at 400 % a full default cache (256 MiB)
// alone would let the heap grow to 1.3 GB; under the limit the collector
// runs more often instead. With a small cache the limit is never near.
func gcMemoryLimit(cacheTotal int64) int64 { return 2*cacheTotal + 256<<20 }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "doctor" {
		failed, err := doctor(os.Args[2:], os.Stdout)
		switch {
		case errors.Is(err, flag.ErrHelp):
			os.Exit(0)
		case err != nil:
			fmt.Fprintf(os.Stderr, "xhttpd doctor: %v\n", err)
			os.Exit(2)
		case failed:
			os.Exit(1)
		}
		return
	}
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "xhttpd: %v\n", err)
		os.Exit(2)
	}
	if opts.version {
		fmt.Println(build.String())
		return
	}
	slog.SetDefault(newLogger(os.Stderr, opts.logFormat, opts.logLevel))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts); err != nil {
		fmt.Fprintf(os.Stderr, "xhttpd: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("xhttpd", flag.ContinueOnError)
	fs.StringVar(&o.iface, "iface", "", "interface to serve on (required)")
	httpConfig := httpFlags(fs)
	ports := fs.String("port", "80", "TCP ports to serve, comma-separated")
	fs.TextVar(&o.path.Mode, "mode", irq.Hybrid, "how each queue's loop waits: interrupt (sleep until frames come), busy (spin) or hybrid (NAPI-like)")
	fs.TextVar(&o.path.XDPMode, "xdp-mode", xdp.ModeAuto, "XDP attach mode: auto (native, else generic), native or generic")
	fs.TextVar(&o.path.Bind, "bind", nic.BindAuto, "AF_XDP bind: auto (zero-copy, else copy), zerocopy or copy")
	fs.TextVar(&o.path.TxKicks, "tx-kicks", nic.TxKicksAuto, "who makes the syscall that sends what the tx ring holds: thread (a thread per queue, beside the Go code, for batches), writer (whoever wrote the frames, at once), or auto (thread in copy mode if it wakes within 20us or a kick costs 0.7us or more, as measured at start; writer otherwise and in zero-copy mode)")
	fs.IntVar(&o.path.Queues, "queues", 0, "number of rx queues to serve, from queue 0 (0: all)")
	fs.TextVar(&o.stack, "stack", stackXDP, "TCP/IP stack: xdp (AF_XDP and gVisor netstack) or kernel")
	fs.TextVar(&o.path.RxChecksum, "rx-checksum", nic.RxChecksumAuto, "received TCP checksums: auto (trust veth, verify others), verify or trust")
	fs.IntVar(&o.path.Budget, "budget", irq.DefaultBudget, "most frames a loop takes from a queue per round")
	fs.IntVar(&o.path.Frames, "frames", nic.DefaultFrames, "UMEM frames per queue, 2 KiB each; half for receive, half for transmit")
	synRate := fs.Int("syn-rate", xdpnet.DefaultSYNRate, "served SYNs per second per CPU the netstack answers; the XDP program answers the rest of a flood with SYN cookies (0: all of them; -1: none, every SYN reaches the netstack)")
	strayRate := fs.Int("stray-rate", xdpnet.DefaultStrayRate, "served segments per second per CPU of no flow the XDP program knows (an ACK flood's) that reach the netstack, which resets or drops them; the program drops the rest (0: none reach it; -1: no flow table, all of them do)")
	fs.IntVar(&o.path.Flows, "flows", xdp.DefaultFlows, fmt.Sprintf("size of the XDP program's flow table, about 100 bytes of kernel memory each: at least the connections at once, with room for handshakes (at least %d)", xdp.MinFlows))
	fs.IntVar(&o.path.MaxTimeWait, "max-time-wait", stack.DefaultMaxTimeWait, "most connections in TIME-WAIT (60 s each) at once; past it a connection closes at once, as Linux's tcp_max_tw_buckets (-1: no bound)")
	gso := fs.Bool("gso", true, "send TCP segments larger than a frame whole through an AF_PACKET socket, for the kernel's GSO or the NIC's TSO to cut into frames; false cuts them into AF_XDP frames")
	fs.DurationVar(&o.path.MaxSpin, "max-spin", irq.DefaultMaxSpin, "hybrid: longest spin without work before sleeping")
	fs.DurationVar(&o.path.NAPISuspend, "napi-suspend", 0, fmt.Sprintf("busy and hybrid mode: the kernel's irq-suspend-timeout for each queue's NAPI instance (Linux 6.13+), with defer-hard-irqs %d and gro-flush-timeout %v; restored at exit, or after a kill at the next start (0: off)", xdpnet.NAPIDeferHardIRQs, xdpnet.NAPIGROFlushTimeout))
	fs.StringVar(&o.path.NAPIStateDir, "napi-state-dir", nic.DefaultNAPIStateDir, "where the NAPI settings -napi-suspend changes are recorded until restored")
	fs.IntVar(&o.procs, "procs", 0, "CPUs that run Go code at once (GOMAXPROCS), like nginx's worker_processes (0: one per served queue, at most every CPU the process may use; with -stack kernel, every CPU)")
	fs.IntVar(&o.gcPercent, "gc-percent", defaultGCPercent, "the Go garbage collector's target heap growth, in percent of the live heap, as GOGC: higher costs memory and saves CPU; beside it a soft memory limit (GOMEMLIMIT, unless set) of twice -cache-total plus 256 MiB (0: leave Go's, GOGC from the environment or 100, and no limit)")
	cpus := fs.String("cpus", "", "pin queue i's loop to the i-th CPU of this comma-separated list (default: no pinning)")
	fs.StringVar(&o.admin, "admin", "", "serve /metrics (Prometheus) on this address, kernel stack (default: off)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.TextVar(&o.logFormat, "log-format", logText, "the server's own log, on stderr: text (key=value) or json, a JSON object per line")
	userName := fs.String("user", "", "once started, serve as this unprivileged user, with no capabilities (default: stay as started)")
	fs.DurationVar(&o.shutdownFor, "shutdown-timeout", 5*time.Second, "how long open requests get to finish on SIGINT/SIGTERM")
	fs.BoolVar(&o.version, "version", false, "print the version, the VCS revision it was built from and the Go version, and exit")
	// A bad flag is one line from main, not the flag package's usage dump;
	// -h prints the usage, to stdout, and exits 0.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Println("usage: xhttpd -iface NAME -root DIR [flags]")
			fs.PrintDefaults()
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.procs < 0 {
		return o, fmt.Errorf("-procs %d: want 0 (the default) or more", o.procs)
	}
	if o.gcPercent < 0 {
		return o, fmt.Errorf("-gc-percent %d: want 0 (Go's own) or more", o.gcPercent)
	}
	if o.version {
		return o, nil
	}
	if o.iface == "" {
		return o, errors.New("-iface is required")
	}
	var err error
	if o.http, o.accessLog, err = httpConfig(); err != nil {
		return o, err
	}
	o.http.ServerVersion = build.product()
	p := &o.path
	if p.Ports, err = parsePorts(*ports); err != nil {
		return o, err
	}
	if p.Queues < 0 {
		return o, fmt.Errorf("-queues %d: want 0 (all) or more", p.Queues)
	}
	if p.Budget <= 0 || p.Budget > irq.MaxBudget {
		return o, fmt.Errorf("-budget %d: want 1 to %d", p.Budget, irq.MaxBudget)
	}
	if err := nic.CheckFrames(p.Frames); err != nil {
		return o, fmt.Errorf("-frames: %w", err)
	}
	if p.SYNRate, err = rateFlag("-syn-rate", *synRate, xdpnet.SYNCookiesOff, xdpnet.SYNCookiesAlways, "-1 (off), 0 (cookies for every SYN)"); err != nil {
		return o, err
	}
	if p.StrayRate, err = rateFlag("-stray-rate", *strayRate, xdpnet.StraysOff, xdpnet.StraysDropped, "-1 (no flow table), 0 (drop every stray)"); err != nil {
		return o, err
	}
	if p.Flows < xdp.MinFlows {
		return o, fmt.Errorf("-flows %d: want at least %d", p.Flows, xdp.MinFlows)
	}
	p.NoGSO = !*gso
	if p.MaxSpin <= 0 {
		return o, fmt.Errorf("-max-spin %v: want > 0", p.MaxSpin)
	}
	if err := xdpnet.CheckNAPISuspend(p.NAPISuspend); err != nil {
		return o, fmt.Errorf("-napi-suspend %w", err)
	}
	if p.CPUs, err = cpulist.Parse("-cpus", *cpus); err != nil {
		return o, err
	}
	if err := o.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return o, fmt.Errorf("-log-level: %w", err)
	}
	if *userName != "" {
		if o.user, err = lookupAccount(*userName); err != nil {
			return o, err
		}
	}
	return o, nil
}

// buildInfo is what the Go toolchain recorded of this binary's making.
type buildInfo struct {
	version   string // the main module's version: a tag, or a pseudo-version from the VCS ("+dirty" when modified)
	revision  string // the VCS revision; "unknown" when built without VCS information
	modified  bool   // the working tree differed from the revision
	goVersion string
}

// build is this binary's. The VCS fields need a build with -buildvcs
// (the default, auto) in a git checkout; the go command does not find the
// repository from a `git worktree`, whose .git is a file.
var build = newBuildInfo(debug.ReadBuildInfo())

func newBuildInfo(bi *debug.BuildInfo, ok bool) buildInfo {
	b := buildInfo{version: "devel", revision: "unknown", goVersion: runtime.Version()}
	if !ok {
		return b
	}
	if bi.GoVersion != "" {
		b.goVersion = bi.GoVersion
	}
	// "(devel)" is what a build outside VCS, or go run, gets; its
	// parentheses cannot stand in a Server header's product token.
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		b.version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.revision = s.Value
		case "vcs.modified":
			b.modified = s.Value == "true"
		}
	}
	return b
}

// product is the Server header's value: "xhttpd/" and the version.
func (b buildInfo) product() string { return "xhttpd/" + b.version }

// String is what -version prints.
func (b buildInfo) String() string {
	s := "xhttpd " + b.version + " revision " + b.revision
	if b.modified {
		s += " (modified)"
	}
	return s + " " + b.goVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}

// logFormat is the -log-format flag: how the server's own log is written.
type logFormat int

const (
	logText logFormat = iota // slog's TextHandler: key=value
	logJSON                  // slog's JSONHandler: a JSON object per line
)

var logFormatNames = []string{logText: "text", logJSON: "json"}

func (f logFormat) String() string { return enum.Name(logFormatNames, f, "logFormat") }

// UnmarshalText reads "text" or "json", for flag.TextVar.
func (f *logFormat) UnmarshalText(b []byte) error {
	return enum.Unmarshal(logFormatNames, b, "log format", f)
}

// MarshalText is the format's name.
func (f logFormat) MarshalText() ([]byte, error) {
	return enum.Marshal(logFormatNames, f, "log format")
}

// newLogger is the server's own log, written to w.
func newLogger(w io.Writer, f logFormat, level slog.Level) *slog.Logger {
	ho := &slog.HandlerOptions{Level: level}
	if f == logJSON {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// stackKind is the -stack flag: which TCP/IP stack the server runs on.
type stackKind int

const (
	stackXDP    stackKind = iota // AF_XDP and the gVisor netstack (xdpnet)
	stackKernel                  // the kernel's sockets: the control
)

var stackNames = []string{stackXDP: "xdp", stackKernel: "kernel"}

func (k stackKind) String() string { return enum.Name(stackNames, k, "stackKind") }

// UnmarshalText reads "xdp" or "kernel", for flag.TextVar.
func (k *stackKind) UnmarshalText(b []byte) error { return enum.Unmarshal(stackNames, b, "stack", k) }

// MarshalText is the stack's name.
func (k stackKind) MarshalText() ([]byte, error) { return enum.Marshal(stackNames, k, "stack") }

// rateFlag maps a rate flag's value v onto the library's setting: -1 is
// off, 0 is zero (none passed), a positive rate is itself.
func rateFlag(name string, v, off, zero int, what string) (int, error) {
	switch {
	case v == -1:
		return off, nil
	case v == 0:
		return zero, nil
	case v > 0:
		return v, nil
	}
	return 0, fmt.Errorf("%s %d: want %s or more", name, v, what)
}

func parsePorts(s string) ([]uint16, error) {
	var ports []uint16
	seen := map[uint16]bool{}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("-port %q: %q is not a port (1-65535)", s, f)
		}
		if !seen[uint16(n)] {
			seen[uint16(n)] = true
			ports = append(ports, uint16(n))
		}
	}
	return ports, nil
}

func run(ctx context.Context, o options) error {
	ifc, err := net.InterfaceByName(o.iface)
	if err != nil {
		return fmt.Errorf("interface %q: %w", o.iface, err)
	}
	addrs, err := xdpnet.ServedAddrs(ifc)
	if err != nil {
		return err
	}
	var m *metrics
	if o.admin != "" {
		// The histogram costs two clock reads per request: only when
		// someone can read it.
		m = newMetrics(build)
		o.http.Observe = m.observe
	}
	srv, err := httpd.New(o.http)
	if err != nil {
		return err
	}
	// Caught from here on, since their default action would end the
	// process; handled once privileges are dropped, so that a reload reads
	// and a reopen opens as the -user.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	// Before the loops start: each reads it (irq.Loop yields after every
	// round on a single P).
	procs, err := procsFor(o, xdpnet.ServedQueues, runtime.GOMAXPROCS(0))
	if err != nil {
		return err
	}
	runtime.GOMAXPROCS(procs)
	if o.gcPercent > 0 {
		debug.SetGCPercent(o.gcPercent)
		if os.Getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(gcMemoryLimit(o.http.CacheTotal))
		}
	}
	var listeners []net.Listener
	var path *xdpnet.Path // nil on the kernel stack
	if o.stack == stackKernel {
		if o.path.NAPISuspend > 0 {
			slog.Warn("-napi-suspend ignored with -stack kernel: it is for the AF_XDP sockets' busy polling")
		}
		listeners, err = listenKernel(addrs, o.path.Ports)
	} else {
		o.path.Addrs = addrs
		if path, err = xdpnet.Open(ifc, o.path); err == nil {
			listeners = path.Listeners()
		}
	}
	if err != nil {
		return err
	}
	if path != nil {
		defer path.Close()
	}
	if o.admin != "" {
		if err := m.register(newCollector(path, srv)); err != nil {
			return fmt.Errorf("-admin: %w", err)
		}
		stop, err := serveAdmin(o.admin, m.reg, srv.StatusHandler(func() []httpd.StatusTable { return queueTable(path) }))
		if err != nil {
			return err
		}
		defer stop()
	}
	if o.user != nil {
		if err := o.user.drop(); err != nil {
			return err
		}
		slog.Info("dropped privileges", "user", o.user.name, "uid", o.user.uid, "gid", o.user.gid)
	}
	go handleSignals(sigs, srv.Reload, o.accessLog)
	slog.Info("serving", "iface", o.iface, "stack", o.stack, "addrs", addrs, "ports", o.path.Ports, "root", o.http.Root, "procs", runtime.GOMAXPROCS(0))

	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { errc <- srv.Serve(l) }()
	}
	select {
	case <-ctx.Done():
		slog.Info("shutting down")
	case err = <-errc:
		err = fmt.Errorf("serve: %w", err)
	case err = <-path.Failed():
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownFor)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		slog.Warn("shutdown", "err", serr)
	}
	for _, l := range listeners {
		l.Close()
	}
	return err
}

// handleSignals serves SIGHUP and SIGUSR1 until sigs is closed (never, in
// xhttpd). SIGHUP reloads the file cache, as it makes Apache and nginx
// reread their configuration; SIGUSR1 reopens the access log file, as it
// does nginx's, for logrotate.
func handleSignals(sigs <-chan os.Signal, reload func() error, alog *logFile) {
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			if err := reload(); err != nil {
				slog.Error("reload", "err", err)
				continue
			}
			slog.Info("reloaded")
		case syscall.SIGUSR1:
			if alog == nil {
				slog.Info("SIGUSR1: no access log file to reopen")
				continue
			}
			if err := alog.reopen(); err != nil {
				slog.Error("access log: reopen failed; writing on to the old file", "path", alog.path, "err", err)
				continue
			}
			slog.Info("access log reopened", "path", alog.path)
		}
	}
}

// kernelListenConfig turns off TCP keepalive on accepted connections, which
// Go's net package turns on by default: four setsockopt(2) calls per
// connection, 15 % of the kernel stack's CPU under a new connection per
// request (docs/profiles/amd-close-kernel-*). httpd's idle, header and
// write timeouts close connections to dead peers, as nginx's do with its
// so_keepalive off by default; the netstack's listeners set none either.
var kernelListenConfig = net.ListenConfig{KeepAlive: -1}

// listenKernel listens on every port of every address with the kernel's
// sockets.
func listenKernel(addrs []netip.Prefix, ports []uint16) ([]net.Listener, error) {
	var ls []net.Listener
	for _, p := range ports {
		for _, a := range addrs {
			l, err := kernelListenConfig.Listen(context.Background(), "tcp", netip.AddrPortFrom(a.Addr(), p).String())
			if err != nil {
				for _, l := range ls {
					l.Close()
				}
				return nil, err
			}
			ls = append(ls, l)
		}
	}
	return ls, nil
}

// procsFor is the GOMAXPROCS to serve with: -procs when given; otherwise,
// over AF_XDP, one per served queue, at most cpus (Go's default, the CPUs
// the process may use). A queue's frames go from its loop through gVisor's
// TCP processors to httpd's goroutines; on more Ps than queues Go wakes an
// idle P's thread for each goroutine one of them makes runnable, and a
// request crosses threads several times (README, "One P a queue"). The
// kernel stack keeps cpus: its softirqs are not Go's to schedule.
func procsFor(o options, servedQueues func(ifname string, queues int) (int, error), cpus int) (int, error) {
	if o.procs > 0 {
		return o.procs, nil
	}
	if o.stack == stackKernel {
		return cpus, nil
	}
	n, err := servedQueues(o.iface, o.path.Queues)
	if err != nil {
		return 0, err
	}
	return max(1, min(n, cpus)), nil
}
