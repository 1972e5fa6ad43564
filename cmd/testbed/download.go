package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
)

const downloadUsage = "testbed download -xhttpd PATH [-servers hybrid,kernel] [-loss-rx 0.03] [-loss-tx 0] [-n 6] [-timeout 20s] [-queues 1] [-v] [-- extra xhttpd flags]"

// download measures single large downloads with curl, side by side per
// server, with a share of the frames lost on the client end: how long each
// takes by curl's own clock (time_total: from its start of the connection
// to the last byte), and whether any stalls (does not finish within
// -timeout).
func download(args []string) error {
	fs := flag.NewFlagSet("download", flag.ContinueOnError)
	var sf serverFlags
	sf.register(fs, false)
	serversFlag := fs.String("servers", "hybrid,kernel", "servers to compare, comma-separated: "+strings.Join(benchServers[:4], ", "))
	lossRx := fs.Float64("loss-rx", 0.03, "share of TCP frames from the server that the client end drops (0 to 1)")
	lossTx := fs.Float64("loss-tx", 0, "share of TCP frames to the server that the client end drops (0 to 1)")
	n := fs.Int("n", 6, "downloads per server (1 to 1000)")
	timeout := fs.Duration("timeout", 20*time.Second, "a download not done within this counts as stalled (1s to 10m)")
	queues := fs.Int("queues", 1, "rx/tx queues on each veth end, passed on as xhttpd -queues")
	v6 := fs.Bool("6", false, "download over IPv6 instead of IPv4")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: "+downloadUsage)
		fmt.Fprintln(fs.Output(), "Downloads the site's 5 MiB file with curl from the client namespace. Flags after -- go to every xhttpd run.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	servers, err := parseNames("-servers", *serversFlag, benchServers[:4])
	if err != nil {
		return err
	}
	switch {
	case *n < 1 || *n > 1000:
		return fmt.Errorf("-n %d: want 1 to 1000", *n)
	case *timeout < time.Second || *timeout > maxDuration:
		return fmt.Errorf("-timeout %v: want 1s to %v", *timeout, maxDuration)
	}
	loss := testbed.LossOptions{Receive: *lossRx, Send: *lossTx}
	if err := loss.Check(); err != nil {
		return err
	}
	setup, err := sf.setup(fs, *queues)
	if err != nil {
		return err
	}

	started := time.Now()
	var rows []downloadRow
	err = withTestbed(*queues, func(ctx context.Context, tb *testbed.Testbed, site string) error {
		setup.iface, setup.root = tb.ServerIf, site
		host := tb.ServerV4.String()
		if *v6 {
			host = "[" + tb.ServerV6.String() + "]"
		}
		for i, name := range servers {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(os.Stderr, "testbed: [%d/%d] %s, %d downloads\n", i+1, len(servers), name, *n)
			path, xargs := serverCommand(name, setup)
			r := downloadRow{server: name}
			r.times, r.stalls, r.lost, r.err = downloadOne(ctx, tb, benchRun{
				name: name, path: path, args: xargs, verbose: sf.verbose,
				url: "http://" + host + "/" + bulkFile, wait: sf.wait, duration: *timeout,
			}, loss, *n)
			if r.err != nil {
				fmt.Fprintf(os.Stderr, "testbed: %s: %v\n", name, r.err)
			}
			rows = append(rows, r)
		}
		return nil
	})

	fmt.Println()
	printMachine(os.Stdout, started)
	fmt.Printf("\ncurl from the client namespace, one %d MiB download at a time over %s, %d per server, %d queue(s); "+
		"the client end drops %.1f%% of the TCP frames it receives and %.1f%% of those it sends (testbed.AddLoss); "+
		"times are curl's own (time_total, its start excluded); a download not done within %v counts as stalled.\n\n",
		bulkSize>>20, map[bool]string{false: "IPv4", true: "IPv6"}[*v6], *n, *queues, 100*loss.Receive, 100*loss.Send, *timeout)
	for _, name := range dedup(servers) {
		fmt.Printf("- %s: %s\n", name, serverLegend(name))
	}
	if len(setup.extra) > 0 {
		fmt.Printf("- extra xhttpd flags: %s\n", shellJoin(setup.extra))
	}
	fmt.Println()
	return errors.Join(err, writeDownloadTable(os.Stdout, rows))
}

// downloadRow is one server's downloads.
type downloadRow struct {
	server string
	times  []time.Duration // of the downloads that completed
	stalls int
	lost   testbed.LossCounts
	err    error
}

func writeDownloadTable(w io.Writer, rows []downloadRow) error {
	fmt.Fprintln(w, "| server | completed | stalled | median | slowest | median MB/s | frames lost rx / tx |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	var errs []error
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(w, "| %s | failed | | | | | |\n", r.server)
			errs = append(errs, fmt.Errorf("%s: %w", r.server, r.err))
			continue
		}
		med, slowest := "", ""
		mbps := ""
		if len(r.times) > 0 {
			m := median(r.times)
			med, slowest = fmtLatency(m), fmtLatency(slices.Max(r.times))
			mbps = fmt.Sprintf("%.0f", float64(bulkSize)/m.Seconds()/1e6)
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %d / %d |\n", r.server, len(r.times), r.stalls,
			med, slowest, mbps, r.lost.ReceiveDropped, r.lost.SendDropped)
		if r.stalls > 0 {
			errs = append(errs, fmt.Errorf("%s: %d of %d downloads stalled", r.server, r.stalls, r.stalls+len(r.times)))
		}
	}
	return errors.Join(errs...)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// downloadOne starts a fresh server, checks it, attaches the loss programs
// and runs n downloads one after the other.
func downloadOne(ctx context.Context, tb *testbed.Testbed, b benchRun, loss testbed.LossOptions, n int) (times []time.Duration, stalls int, lost testbed.LossCounts, err error) {
	srv, err := startQuiet(tb, b.name, b.path, b.args, b.verbose)
	if err != nil {
		return nil, 0, lost, err
	}
	defer func() { err = srv.stopAndTell(err) }()
	if err := srv.WaitHTTP(ctx, b.wait, tb.ServerAddrs(80)...); err != nil {
		return nil, 0, lost, err
	}
	if err := checkGet(ctx, tb, b.url, bulkSize); err != nil {
		return nil, 0, lost, err
	}
	l, err := tb.AddLoss(loss)
	if err != nil {
		return nil, 0, lost, err
	}
	defer l.Close()
	dir, err := os.MkdirTemp("", "xhttpd-download-")
	if err != nil {
		return nil, 0, lost, err
	}
	defer os.RemoveAll(dir)
	dst := filepath.Join(dir, "got")
	for i := 0; i < n && ctx.Err() == nil; i++ {
		cctx, cancel := context.WithTimeout(ctx, b.duration+10*time.Second)
		start := time.Now()
		out, err := tb.ClientCmd(cctx, "curl", "-sS", "-g", "--fail", "--max-time", fmt.Sprint(b.duration.Seconds()),
			"-o", dst, "-w", "%{size_download} %{time_total}", b.url).Output()
		took := time.Since(start)
		cancel()
		if ctx.Err() != nil {
			break // interrupted: not a stall
		}
		// curl's own time, from the connect to the last byte: the wall
		// time also holds curl's start, some 40 ms here, which would
		// hide most of the transfer.
		var got int
		var total float64
		if _, serr := fmt.Sscan(string(out), &got, &total); serr == nil {
			took = time.Duration(total * float64(time.Second))
		}
		if err != nil || got != bulkSize {
			stalls++
			fmt.Fprintf(os.Stderr, "testbed: %s: download %d: %d of %d bytes after %v: %v\n", b.name, i+1, got, bulkSize, took.Round(time.Millisecond), err)
			continue
		}
		fmt.Fprintf(os.Stderr, "testbed: %s: download %d in %v\n", b.name, i+1, took.Round(time.Millisecond))
		times = append(times, took)
	}
	lost, err = l.Counts()
	return times, stalls, lost, err
}
