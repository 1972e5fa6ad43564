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

const downloadUsage = "testbed download -xhttpd PATH [-servers hybrid,kernel] [-loss-rx 0.03] [-loss-tx 0] [-n 6] [-bytes 5242880] [-interleave=true] [-napi=true] [-timeout 20s] [-queues 1] [-6] [-cc NAME] [-base PATH] [-v] [-- extra xhttpd flags]"

// download measures single large downloads with curl, side by side per
// server, with a share of the frames lost on the client end: how long each
// takes by curl's own clock (time_total: from its start of the connection
// to the last byte), and whether any stalls (does not finish within
// -timeout).
//
// By default every server runs at once, each on a testbed of its own, and
// the downloads take turns between them: this machine has spells minutes
// long in which everything runs up to twice as slowly, and a server
// measured in one and its peer in the next would compare the spells.
func download(args []string) error {
	fs := flag.NewFlagSet("download", flag.ContinueOnError)
	var sf serverFlags
	sf.register(fs, false)
	serversFlag := fs.String("servers", "hybrid,kernel", "servers to compare, comma-separated: "+strings.Join(xhttpdServers, ", "))
	lossRx := fs.Float64("loss-rx", 0.03, "share of TCP frames from the server that the client end drops (0 to 1)")
	lossTx := fs.Float64("loss-tx", 0, "share of TCP frames to the server that the client end drops (0 to 1)")
	n := fs.Int("n", 6, "downloads per server (1 to 1000)")
	size := fs.Int("bytes", bulkSize, "bytes to download: the first ones of the 5 MiB file (a Range request below its size)")
	interleave := fs.Bool("interleave", true, "run the servers at once, each on its own testbed, and take turns: one download from each in turn (not with busy, whose spinning slows the others); -interleave=false runs them one after the other")
	napi := fs.Bool("napi", true, "run the client end in NAPI mode, the loss programs attached (testbed.AddLoss); -napi=false leaves the client end bare, as veth passes the kernel stack's GSO packets to it whole: only without loss")
	timeout := fs.Duration("timeout", 20*time.Second, "a download not done within this counts as stalled (1s to 10m)")
	queues := fs.Int("queues", 1, "rx/tx queues on each veth end, passed on as xhttpd -queues")
	v6 := fs.Bool("6", false, "download over IPv6 instead of IPv4")
	cc := fs.String("cc", "", "TCP congestion control of the kernel stack's connections (the kernel server's), e.g. reno, as xhttpd's netstack has (NewReno), or cubic: set on the server end's routes (testbed.SetServerCongestionControl); default the host's")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: "+downloadUsage)
		fmt.Fprintln(fs.Output(), "Downloads the site's 5 MiB file (or its first -bytes) with curl from the client namespace. Flags after -- go to every xhttpd run.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	servers, err := parseServers(*serversFlag, xhttpdServers, sf)
	if err != nil {
		return err
	}
	loss := testbed.LossOptions{Receive: *lossRx, Send: *lossTx}
	switch {
	case *n < 1 || *n > 1000:
		return fmt.Errorf("-n %d: want 1 to 1000", *n)
	case *size < 1 || *size > bulkSize:
		return fmt.Errorf("-bytes %d: want 1 to %d", *size, bulkSize)
	case *timeout < time.Second || *timeout > maxDuration:
		return fmt.Errorf("-timeout %v: want 1s to %v", *timeout, maxDuration)
	case !*napi && (loss.Receive != 0 || loss.Send != 0):
		return errors.New("-napi=false leaves out the loss programs: use it with -loss-rx 0 -loss-tx 0")
	case *interleave && slices.Contains(servers, "busy"):
		return errors.New("-interleave: busy spins on a core the other servers need; measure it with -interleave=false")
	}
	if err := loss.Check(); err != nil {
		return err
	}
	setup, err := sf.setup(fs, *queues)
	if err != nil {
		return err
	}
	dl := downloads{n: *n, size: *size, timeout: *timeout, loss: loss, napi: *napi, v6: *v6, cc: *cc}

	started := time.Now()
	var rows []downloadRow
	if *interleave {
		err = withTestbeds(len(servers), *queues, func(ctx context.Context, tbs []*testbed.Testbed, site string) error {
			setup.root = site
			var ds []*downloader
			defer func() {
				for _, d := range ds {
					rows = append(rows, d.stop())
				}
			}()
			for i, name := range servers {
				setup.iface = tbs[i].ServerIf
				fmt.Fprintf(os.Stderr, "testbed: starting %s\n", name)
				ds = append(ds, dl.start(ctx, tbs[i], name, setup, sf))
			}
			for i := 0; i < dl.n && ctx.Err() == nil; i++ {
				for _, d := range ds {
					d.once(ctx, i)
				}
			}
			return nil
		})
	} else {
		err = withTestbed(*queues, func(ctx context.Context, tb *testbed.Testbed, site string) error {
			setup.iface, setup.root = tb.ServerIf, site
			for i, name := range servers {
				if ctx.Err() != nil {
					return nil
				}
				fmt.Fprintf(os.Stderr, "testbed: [%d/%d] %s, %d downloads\n", i+1, len(servers), name, dl.n)
				d := dl.start(ctx, tb, name, setup, sf)
				for j := 0; j < dl.n && ctx.Err() == nil; j++ {
					d.once(ctx, j)
				}
				rows = append(rows, d.stop())
			}
			return nil
		})
	}

	fmt.Println()
	printMachine(os.Stdout, started)
	what := fmt.Sprintf("one %d MiB download", bulkSize>>20)
	if dl.size < bulkSize {
		what = fmt.Sprintf("the first %d bytes of the %d MiB file", dl.size, bulkSize>>20)
	}
	turns := "one server after the other"
	if *interleave {
		turns = "every server up at once on a testbed of its own, the downloads taking turns between them"
	}
	clientEnd := fmt.Sprintf("the client end drops %.1f%% of the TCP frames it receives and %.1f%% of those it sends (testbed.AddLoss, which puts it in NAPI mode)", 100*loss.Receive, 100*loss.Send)
	if !dl.napi {
		clientEnd = "nothing on the client end (-napi=false)"
	}
	fmt.Printf("\ncurl from the client namespace, %s at a time over %s, %d per server, %s, %d queue(s); %s; "+
		"times are curl's own (connect, first byte and total from its start of the connection; the start of curl itself excluded); a download not done within %v counts as stalled.\n\n",
		what, map[bool]string{false: "IPv4", true: "IPv6"}[*v6], dl.n, turns, *queues, clientEnd, dl.timeout)
	for _, name := range dedup(servers) {
		fmt.Printf("- %s: %s\n", name, serverLegend(name, setup))
	}
	if len(setup.extra) > 0 {
		fmt.Printf("- extra xhttpd flags: %s\n", shellJoin(setup.extra))
	}
	if dl.cc != "" {
		fmt.Printf("- the kernel stack's TCP congestion control: %s (-cc, on the server end's routes; xhttpd's netstack uses NewReno)\n", dl.cc)
	}
	fmt.Println()
	return errors.Join(err, writeDownloadTable(os.Stdout, rows, dl.size))
}

// downloads is what every server's downloads share.
type downloads struct {
	n, size int
	timeout time.Duration
	loss    testbed.LossOptions
	napi    bool
	v6      bool
	cc      string // the kernel stack's congestion control, "" for the host's
}

// downloader is one server's side of a run: its testbed, the server, and
// the loss programs on the client end. A downloader whose start failed
// keeps the error in its row and does nothing.
type downloader struct {
	downloads
	tb   *testbed.Testbed
	srv  *quietServer
	loss *testbed.Loss
	url  string
	dir  string // where curl writes
	row  downloadRow
}

// start starts the server on tb, checks it and attaches the loss programs.
func (dl downloads) start(ctx context.Context, tb *testbed.Testbed, name string, setup serverSetup, sf serverFlags) *downloader {
	d := &downloader{downloads: dl, tb: tb, row: downloadRow{server: name}}
	host := tb.ServerV4.String()
	if dl.v6 {
		host = "[" + tb.ServerV6.String() + "]"
	}
	d.url = "http://" + host + "/" + bulkFile
	d.row.err = func() error {
		if dl.cc != "" {
			if err := tb.SetServerCongestionControl(dl.cc); err != nil {
				return err
			}
		}
		// NAPI mode first: only then does the client end take the
		// SYN-ACKs the XDP program answers SYNs with itself (all of
		// them with -syn-rate 0), the readiness checks' too.
		var err error
		if dl.napi {
			if d.loss, err = tb.AddLoss(dl.loss); err != nil {
				return err
			}
		}
		path, xargs := serverCommand(name, setup)
		srv, err := startQuiet(tb, name, path, xargs, sf.verbose)
		if err != nil {
			return err
		}
		d.srv = srv
		if err := srv.WaitHTTP(ctx, sf.wait, tb.ServerAddrs(80)...); err != nil {
			return err
		}
		if err := checkGet(ctx, tb, d.url, bulkSize); err != nil {
			return err
		}
		d.dir, err = os.MkdirTemp("", "xhttpd-download-")
		return err
	}()
	if d.row.err != nil {
		fmt.Fprintf(os.Stderr, "testbed: %s: %v\n", name, d.row.err)
	}
	return d
}

// once runs download i.
func (d *downloader) once(ctx context.Context, i int) {
	if d.row.err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, d.timeout+10*time.Second)
	defer cancel()
	args := []string{"-sS", "-g", "--fail", "--max-time", fmt.Sprint(d.timeout.Seconds()), "-o", filepath.Join(d.dir, "got"),
		"-w", "%{size_download} %{time_connect} %{time_starttransfer} %{time_total}"}
	if d.size < bulkSize {
		args = append(args, "-r", fmt.Sprintf("0-%d", d.size-1))
	}
	start := time.Now()
	out, err := d.tb.ClientCmd(cctx, "curl", append(args, d.url)...).Output()
	took := time.Since(start)
	if ctx.Err() != nil {
		return // interrupted: not a stall
	}
	// curl's own times, from the start of its connection: the wall time
	// also holds curl's start, some 40 ms here, which would hide most of
	// the transfer.
	var got int
	var connect, first, total float64
	if _, serr := fmt.Sscan(string(out), &got, &connect, &first, &total); serr == nil {
		took = seconds(total)
	}
	if err != nil || got != d.size {
		d.row.stalls++
		fmt.Fprintf(os.Stderr, "testbed: %s: download %d: %d of %d bytes after %v: %v\n", d.row.server, i+1, got, d.size, took.Round(time.Millisecond), err)
		return
	}
	fmt.Fprintf(os.Stderr, "testbed: %s: download %d in %v\n", d.row.server, i+1, took.Round(time.Microsecond))
	d.row.times = append(d.row.times, took)
	d.row.connect = append(d.row.connect, seconds(connect))
	d.row.firstByte = append(d.row.firstByte, seconds(first))
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// stop reads the loss counters, detaches the programs, stops the server
// and returns the row.
func (d *downloader) stop() downloadRow {
	var errs []error
	if d.loss != nil {
		lost, err := d.loss.Counts()
		d.row.lost = lost
		errs = append(errs, err, d.loss.Close())
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
	if d.srv != nil {
		errs = append(errs, d.srv.stopAndTell(d.row.err))
	}
	d.row.err = errors.Join(append(errs, d.row.err)...)
	return d.row
}

// downloadRow is one server's downloads.
type downloadRow struct {
	server                    string
	times, connect, firstByte []time.Duration // of the downloads that completed
	stalls                    int
	lost                      testbed.LossCounts
	err                       error
}

func writeDownloadTable(w io.Writer, rows []downloadRow, size int) error {
	fmt.Fprintln(w, "| server | completed | stalled | connect | first byte | median | slowest | median MB/s | frames lost rx / tx |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	var errs []error
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(w, "| %s | failed | | | | | | | |\n", r.server)
			errs = append(errs, fmt.Errorf("%s: %w", r.server, r.err))
			continue
		}
		var connect, first, med, slowest, mbps string
		if len(r.times) > 0 {
			m := median(r.times)
			connect, first = fmtLatency(median(r.connect)), fmtLatency(median(r.firstByte))
			med, slowest = fmtLatency(m), fmtLatency(slices.Max(r.times))
			mbps = fmt.Sprintf("%.0f", float64(size)/m.Seconds()/1e6)
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %s | %s | %d / %d |\n", r.server, len(r.times), r.stalls,
			connect, first, med, slowest, mbps, r.lost.ReceiveDropped, r.lost.SendDropped)
		if r.stalls > 0 {
			errs = append(errs, fmt.Errorf("%s: %d of %d downloads stalled", r.server, r.stalls, r.stalls+len(r.times)))
		}
	}
	return errors.Join(errs...)
}

// median is the median of xs (the mean of the middle two of an even
// count), 0 for none.
func median[T time.Duration | float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
