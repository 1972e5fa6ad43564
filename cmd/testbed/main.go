// Command testbed runs xhttpd in a throwaway pair of network namespaces
// joined by a veth pair, for `make demo`, for benchmarks and for humans.
//
//	testbed demo  -xhttpd PATH [-root DIR] [-queues N] [-- xhttpd flags]
//	testbed bench -xhttpd PATH [-servers hybrid,kernel] [-conns 32] [-duration 10s] [-- xhttpd flags]
//	testbed idle  -xhttpd PATH [-modes interrupt,busy,hybrid] [-duration 10s] [-- xhttpd flags]
//	testbed download -xhttpd PATH [-servers hybrid,kernel] [-loss-rx 0.03] [-loss-tx 0] [-n 6] [-- xhttpd flags]
//	testbed flood -xhttpd PATH [-servers hybrid,kernel] [-floods own,random,v6,own6,ack,ack6] [-duration 10s] [-- xhttpd flags]
//	testbed experiment -xhttpd PATH -out DIR [-servers ...] [-fractions ...] [-rates ...] [-- xhttpd flags]
//	testbed loadgen -addr HOST:PORT [-rate 1000] [-conns 32] [-duration 5s]
//	testbed report -out DIR
//	testbed sweep [-prefix xh]
//
// bench compares servers under wrk: requests/s, latency and the server's
// CPU time per request. idle measures what xhttpd's waiting modes cost with
// no traffic at all. download times large downloads with frames lost on the
// client end. flood measures new and keep-alive clients during SYN and ACK floods.
// experiment sweeps open-loop offered loads against each server (loadgen,
// run in the client namespace) and writes results and a report.
//
// Every subcommand removes the namespaces it made when it ends, also on
// failure and on Ctrl-C; `sweep` removes those left by processes that were
// killed outright.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
)

const usage = `usage:
  testbed demo  -xhttpd PATH [-root DIR] [-queues N] [-- extra xhttpd flags]
  ` + benchUsage + `
  ` + idleUsage + `
  ` + downloadUsage + `
  ` + floodUsage + `
  ` + experimentUsage + `
  ` + loadgenUsage + `
  ` + reportUsage + `
  testbed sweep [-prefix xh]
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "demo":
		err = demo(os.Args[2:])
	case "bench":
		err = bench(os.Args[2:])
	case "idle":
		err = idle(os.Args[2:])
	case "download":
		err = download(os.Args[2:])
	case "flood":
		err = flood(os.Args[2:])
	case "experiment":
		err = experiment(os.Args[2:])
	case "loadgen":
		err = loadgenCmd(os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:])
	case "sweep":
		err = sweep(os.Args[2:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "testbed: unknown subcommand %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(os.Stderr, "testbed %s: %s\n", os.Args[1], line)
		}
		os.Exit(1)
	}
}

func sweep(args []string) error {
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	prefix := fs.String("prefix", "xh", "name prefix of the namespaces to sweep")
	if err := fs.Parse(args); err != nil {
		return err
	}
	deleted, err := testbed.Sweep(*prefix)
	for _, n := range deleted {
		fmt.Println("deleted", n)
	}
	return err
}

// findBinary resolves a binary's flag (-xhttpd) to an absolute path,
// because `ip netns exec` searches PATH for a bare name.
func findBinary(flagName, path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%s PATH is required", flagName)
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flagName, err)
	}
	return filepath.Abs(p)
}

// withTestbed runs fn with what bench and idle share: a context that ends
// on SIGINT or SIGTERM, the generated site and a fresh testbed, and removes
// both afterwards.
func withTestbed(queues int, fn func(ctx context.Context, tb *testbed.Testbed, site string) error) error {
	return withTestbeds(1, queues, func(ctx context.Context, tbs []*testbed.Testbed, site string) error {
		return fn(ctx, tbs[0], site)
	})
}

// withTestbeds is withTestbed with n testbeds side by side, for servers
// that run at once (download -interleave).
func withTestbeds(n, queues int, fn func(ctx context.Context, tbs []*testbed.Testbed, site string) error) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer func() {
		if ctx.Err() != nil {
			err = errors.Join(err, errors.New("interrupted"))
		}
	}()
	dir, err := writeSite()
	if err != nil {
		return fmt.Errorf("site: %w", err)
	}
	defer os.RemoveAll(dir)
	var tbs []*testbed.Testbed
	defer func() {
		for _, tb := range tbs {
			err = errors.Join(err, tb.Close())
		}
	}()
	for range n {
		tb, err := testbed.New(testbed.Options{Queues: queues})
		if err != nil {
			return err
		}
		tbs = append(tbs, tb)
		fmt.Fprintf(os.Stderr, "testbed: server %s in %s, client %s in %s, %d queue(s)\n",
			tb.ServerIf, tb.ServerNS, tb.ClientIf, tb.ClientNS, tb.Queues)
	}
	return fn(ctx, tbs, dir)
}

// The site's files beyond index.html: a 1 KiB file for requests/s, a 64 KiB
// one for bulk requests, and a 5 MiB one for single downloads.
const (
	bulkFile = "5m.bin"
	bulkSize = 5 << 20
)

var siteFiles = []struct {
	name string
	size int
}{{"1k.bin", 1 << 10}, {"64k.bin", 64 << 10}, {bulkFile, bulkSize}}

func siteFileSize(name string) (int, bool) {
	for _, f := range siteFiles {
		if f.name == name {
			return f.size, true
		}
	}
	return 0, false
}

func siteFileNames() string {
	var names []string
	for _, f := range siteFiles {
		names = append(names, f.name)
	}
	return strings.Join(names, ", ")
}

// writeSite writes the demo site into a new temporary directory.
func writeSite() (dir string, err error) {
	dir, err = os.MkdirTemp("", "xhttpd-site-")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	const index = `<!doctype html>
<html><head><title>xhttpd demo</title></head>
<body><h1>Hello from xhttpd</h1>
<p>Served over AF_XDP by a user-space TCP/IP stack. Also: <a href="/1k.bin">1k.bin</a>.</p>
</body></html>
`
	names := []string{"index.html"}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(index), 0o644); err != nil {
		return "", err
	}
	line := []byte("xhttpd-1k-test!\n") // 16 bytes
	for _, f := range siteFiles {
		if err := os.WriteFile(filepath.Join(dir, f.name), bytes.Repeat(line, f.size/len(line)), 0o644); err != nil {
			return "", err
		}
		names = append(names, f.name)
	}
	// httpd serves a file changed within the last second from disk, not
	// from its cache (it may still be being written): date the site back
	// so that every run measures the cached path from its first request.
	old := time.Now().Add(-time.Hour)
	for _, f := range names {
		if err := os.Chtimes(filepath.Join(dir, f), old, old); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// startServer starts a server in the testbed's server namespace, saying so.
func startServer(tb *testbed.Testbed, name string, out io.Writer, path string, args ...string) (*testbed.Server, error) {
	fmt.Fprintf(os.Stderr, "testbed: starting in %s: %s %s\n", tb.ServerNS, path, strings.Join(args, " "))
	return tb.StartServer(name, out, path, args...)
}
