package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
)

// maxDuration bounds one wrk run, so that a typo cannot load the machine
// for hours.
const maxDuration = 10 * time.Minute

func bench(args []string) (err error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	bin := fs.String("xhttpd", "", "path to the xhttpd binary (required)")
	duration := fs.Duration("duration", 10*time.Second, "length of each wrk run (at most 10m)")
	conns := fs.Int("conns", 32, "wrk connections (keep-alive)")
	threads := fs.Int("threads", 2, "wrk threads")
	queues := fs.Int("queues", 1, "rx/tx queues on each veth end, passed on as xhttpd -queues")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for a server to accept connections")
	verbose := fs.Bool("v", false, "pass the servers' output through (by default only its tail, on failure)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: testbed bench -xhttpd PATH [-duration 10s] [-conns 32] [-- extra xhttpd flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	extra := fs.Args()
	switch {
	case *duration < time.Second || *duration > maxDuration:
		return fmt.Errorf("-duration %v: want 1s to %v", *duration, maxDuration)
	case *threads < 1 || *conns < *threads:
		return fmt.Errorf("-conns %d -threads %d: want at least one connection per thread", *conns, *threads)
	}
	path, err := findBinary(*bin)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk is needed for bench (apt-get install wrk): %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer func() {
		if ctx.Err() != nil {
			err = errors.Join(err, errors.New("interrupted"))
		}
	}()

	dir, err := writeSite()
	if err != nil {
		return fmt.Errorf("bench site: %w", err)
	}
	defer os.RemoveAll(dir)

	tb, err := testbed.New(testbed.Options{Queues: *queues})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, tb.Close()) }()

	url := "http://" + tb.ServerV4.String() + "/1k.bin"
	wrkArgs := []string{
		"-t", strconv.Itoa(*threads), "-c", strconv.Itoa(*conns),
		"-d", strconv.Itoa(int(duration.Seconds())) + "s",
		"--timeout", "2s", "--latency", url,
	}
	fmt.Fprintf(os.Stderr, "testbed: %s in %s, wrk %s from %s\n", tb.ServerIf, tb.ServerNS, strings.Join(wrkArgs, " "), tb.ClientNS)

	type row struct {
		name string
		res  wrkResult
		err  error
	}
	var rows []row
	for _, stack := range []string{"xdp", "kernel"} {
		if ctx.Err() != nil {
			break
		}
		name := "xhttpd -stack " + stack
		xargs := append([]string{"-iface", tb.ServerIf, "-root", dir, "-queues", strconv.Itoa(*queues), "-stack", stack}, extra...)
		// A server that logs every request would flood the terminal and
		// slow itself down; keep its output quiet unless asked.
		var out io.Writer = os.Stderr
		tail := &tailWriter{max: 40}
		if !*verbose {
			out = tail
		}
		res, err := benchOne(ctx, tb, name, out, path, xargs, url, wrkArgs, *wait, *duration)
		if err != nil {
			os.Stderr.WriteString(tail.String())
			fmt.Fprintf(os.Stderr, "testbed: %s: %v\n", name, err)
		}
		rows = append(rows, row{name, res, err})
	}

	fmt.Printf("\nwrk -t %d -c %d -d %v --latency, keep-alive, GET 1 KiB, %d queue(s), veth between namespaces\n\n",
		*threads, *conns, *duration, *queues)
	fmt.Println("| server | req/s | p50 | p99 |")
	fmt.Println("| --- | ---: | ---: | ---: |")
	var errs []error
	var notes []string
	for _, r := range rows {
		if r.err != nil {
			fmt.Printf("| %s | failed | | |\n", r.name)
			errs = append(errs, fmt.Errorf("%s: %w", r.name, r.err))
			continue
		}
		fmt.Printf("| %s | %.0f | %s | %s |\n", r.name, r.res.ReqPerSec, fmtLatency(r.res.P50), fmtLatency(r.res.P99))
		if r.res.SocketErrors != "" {
			notes = append(notes, fmt.Sprintf("%s: socket errors: %s", r.name, r.res.SocketErrors))
		}
		if r.res.Non2xx3xx > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d non-2xx/3xx responses", r.name, r.res.Non2xx3xx))
		}
	}
	if len(notes) > 0 {
		fmt.Println()
		for _, n := range notes {
			fmt.Println("-", n)
		}
	}
	return errors.Join(errs...)
}

// benchOne starts a fresh server, checks that it serves the file, runs wrk
// against it from the client namespace and stops it.
func benchOne(ctx context.Context, tb *testbed.Testbed, name string, out io.Writer, path string, xargs []string,
	url string, wrkArgs []string, wait, duration time.Duration) (res wrkResult, err error) {
	srv, err := startServer(tb, name, out, path, xargs...)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, srv.stop()) }()
	if err := srv.waitReady(ctx, tb, wait, tb.ServerV4.String()+":80"); err != nil {
		return res, err
	}
	if err := checkGet(ctx, tb, url, 1024); err != nil {
		return res, err
	}

	// wrk stops itself after the duration; the margin covers its start and
	// its final report, the deadline a wrk that hangs.
	wctx, cancel := context.WithTimeout(ctx, duration+30*time.Second)
	defer cancel()
	cmd := tb.ClientCmd(wctx, "wrk", wrkArgs...)
	cmd.Stderr = os.Stderr
	report, err := cmd.Output()
	for _, line := range strings.Split(strings.TrimRight(string(report), "\n"), "\n") {
		fmt.Fprintf(os.Stderr, "wrk| %s\n", line)
	}
	if err != nil {
		return res, fmt.Errorf("wrk: %w", err)
	}
	res, err = parseWrk(string(report))
	if err == nil && res.Requests == 0 {
		err = errors.New("wrk completed no request")
	}
	return res, err
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
