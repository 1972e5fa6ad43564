package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
)

const idleUsage = "testbed idle  -xhttpd PATH [-modes interrupt,busy,hybrid] [-duration 10s] [-queues 1] [-v] [-- extra xhttpd flags]"

// idleSettle is how long a server gets, after the GET that shows it serves,
// before its idle CPU is measured: time for connections to close and for a
// hybrid loop to fall back asleep.
const idleSettle = time.Second

var idleModes = []string{"interrupt", "busy", "hybrid"}

// parseModes reads -modes: xhttpd's waiting modes, comma-separated.
func parseModes(s string) ([]string, error) { return parseNames("-modes", s, idleModes) }

// idle measures the CPU each waiting mode costs with no traffic at all.
func idle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	var sf serverFlags
	sf.register(fs, false)
	modesFlag := fs.String("modes", strings.Join(idleModes, ","), "xhttpd -mode values to measure, comma-separated")
	duration := fs.Duration("duration", 10*time.Second, "how long to measure each mode (1s to 10m)")
	queues := fs.Int("queues", 1, "rx/tx queues on each veth end, passed on as xhttpd -queues")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: "+idleUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	modes, err := parseModes(*modesFlag)
	if err != nil {
		return err
	}
	if *duration < time.Second || *duration > maxDuration {
		return fmt.Errorf("-duration %v: want 1s to %v", *duration, maxDuration)
	}
	setup, err := sf.setup(fs, *queues)
	if err != nil {
		return err
	}

	started := time.Now()
	var rows []idleRow
	err = withTestbed(*queues, func(ctx context.Context, tb *testbed.Testbed, site string) error {
		setup.iface, setup.root = tb.ServerIf, site
		url := "http://" + tb.ServerV4.String() + "/1k.bin"
		for i, mode := range modes {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(os.Stderr, "testbed: [%d/%d] %s, idle for %v\n", i+1, len(modes), mode, *duration)
			path, xargs := serverCommand(mode, setup)
			r := idleRow{mode: mode, queues: *queues}
			r.share, r.err = idleOne(ctx, tb, benchRun{
				name: mode, path: path, args: xargs, verbose: sf.verbose,
				url: url, wait: sf.wait, duration: *duration,
			})
			if r.err != nil {
				fmt.Fprintf(os.Stderr, "testbed: %s: %v\n", mode, r.err)
			}
			rows = append(rows, r)
		}
		return nil
	})

	fmt.Println()
	printMachine(os.Stdout, started)
	fmt.Printf("\nxhttpd -stack xdp -mode MODE -queues %d with no traffic: after one GET shows that it serves and %v to settle, "+
		"its user+system time (/proc/PID/stat) over %v, counted in 10 ms steps (%.2f%% of a core).\n",
		*queues, idleSettle, *duration, 100*(10*time.Millisecond).Seconds()/duration.Seconds())
	if len(setup.extra) > 0 {
		fmt.Printf("Extra xhttpd flags: %s\n", shellJoin(setup.extra))
	}
	fmt.Println()
	return errors.Join(err, writeIdleTable(os.Stdout, rows))
}

// idleRow is one mode's idle cost.
type idleRow struct {
	mode   string
	queues int
	share  float64 // of one core
	err    error
}

func writeIdleTable(w io.Writer, rows []idleRow) error {
	fmt.Fprintln(w, "| mode | queues | CPU % of one core |")
	fmt.Fprintln(w, "| --- | ---: | ---: |")
	var errs []error
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(w, "| %s | %d | failed |\n", r.mode, r.queues)
			errs = append(errs, fmt.Errorf("%s: %w", r.mode, r.err))
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.1f |\n", r.mode, r.queues, 100*r.share)
	}
	return errors.Join(errs...)
}

// idleOne starts a fresh xhttpd, checks that it serves, lets it settle and
// measures its CPU over b.duration with no traffic, then stops it.
func idleOne(ctx context.Context, tb *testbed.Testbed, b benchRun) (share float64, err error) {
	srv, err := startQuiet(tb, b.name, b.path, b.args, b.verbose)
	if err != nil {
		return 0, err
	}
	defer func() { err = srv.stopAndTell(err) }()
	if err := srv.WaitHTTP(ctx, b.wait, tb.ServerAddrs(80)...); err != nil {
		return 0, err
	}
	if err := checkGet(ctx, tb, b.url, 1024); err != nil {
		return 0, err
	}
	pid, err := srv.Pid()
	if err != nil {
		return 0, err
	}
	t := time.NewTimer(idleSettle)
	select {
	case <-ctx.Done():
		t.Stop()
		return 0, ctx.Err()
	case <-t.C:
	}
	return testbed.CPUShare(ctx, pid, b.duration)
}
