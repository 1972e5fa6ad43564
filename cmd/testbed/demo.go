package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
)

func demo(args []string) (err error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	bin := fs.String("xhttpd", "", "path to the xhttpd binary (required)")
	root := fs.String("root", "", "directory to serve (default: a generated demo site)")
	queues := fs.Int("queues", 1, "rx/tx queues on each veth end, passed on as xhttpd -queues")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for xhttpd to accept connections")
	keep := fs.Bool("keep", false, "after the fetches, keep the testbed and xhttpd running for trying things by hand, until Ctrl-C or SIGTERM")
	var loss testbed.LossOptions
	fs.Float64Var(&loss.Receive, "loss-rx", 0, "with -keep: share of TCP frames from the server that the client end drops (0 to 1; testbed.AddLoss)")
	fs.Float64Var(&loss.Send, "loss-tx", 0, "with -keep: share of TCP frames to the server that the client end drops (0 to 1)")
	napi := fs.Bool("napi", true, "with -keep: run the client end in NAPI mode (testbed.ClientNAPI), as a NIC's receive runs and as testbed bench does: without it veth drops the SYN-ACKs xhttpd's XDP program sends back (XDP_TX) when SYNs pass -syn-rate, and each client so answered waits out a 1 s SYN retransmission; -loss-rx and -loss-tx imply it")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: testbed demo -xhttpd PATH [-root DIR] [-queues N] [-keep [-napi=false] [-loss-rx P] [-loss-tx P]] [-- extra xhttpd flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	extra := fs.Args()
	lossy := loss.Receive > 0 || loss.Send > 0
	if err := loss.Check(); err != nil {
		return err
	}
	if lossy && !*keep {
		return errors.New("-loss-rx and -loss-tx go with -keep: the demo's own fetches are over a clean link")
	}
	path, err := findBinary("-xhttpd", *bin)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer func() {
		if ctx.Err() != nil && !*keep {
			err = errors.Join(err, errors.New("interrupted"))
		}
	}()

	dir := *root
	if dir == "" {
		if dir, err = writeSite(); err != nil {
			return fmt.Errorf("demo site: %w", err)
		}
		defer os.RemoveAll(dir)
	} else {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("-root %s: not a directory", dir)
		}
		if dir, err = filepath.Abs(dir); err != nil {
			return err
		}
	}

	tb, err := testbed.New(testbed.Options{Queues: *queues})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, tb.Close()) }()
	fmt.Fprintf(os.Stderr, "testbed: server %s in %s (%s, %s), client %s in %s (%s, %s), %d queue(s)\n",
		tb.ServerIf, tb.ServerNS, tb.ServerV4, tb.ServerV6,
		tb.ClientIf, tb.ClientNS, tb.ClientV4, tb.ClientV6, tb.Queues)

	// NAPI mode before the server starts: only then does the client end
	// take the SYN-ACKs the XDP program answers SYNs with itself (every
	// one with -syn-rate 0), the first curls' too.
	if *keep && (lossy || *napi) {
		l, err := tb.AddLoss(loss)
		if err != nil {
			return err
		}
		defer l.Close()
	}
	xargs := append([]string{"-iface", tb.ServerIf, "-root", dir, "-queues", strconv.Itoa(*queues)}, extra...)
	srv, err := startServer(tb, "xhttpd", os.Stderr, path, xargs...)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.Stop()) }()

	v4 := "http://" + tb.ServerV4.String() + "/"
	v6 := "http://[" + tb.ServerV6.String() + "]/"
	if err := srv.WaitHTTP(ctx, *wait, tb.ServerAddrs(80)...); err != nil {
		return err
	}
	var errs []error
	for _, url := range []string{v4, v6} {
		if err := curl(ctx, tb, url); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil || !*keep {
		return err
	}
	if lossy || *napi {
		fmt.Printf("\nThe client end runs in NAPI mode and drops %.1f%% of the TCP frames it receives and %.1f%% of those it sends.\n", 100*loss.Receive, 100*loss.Send)
	}
	fmt.Printf("\nThe testbed stays up until Ctrl-C. From another shell, as root:\n"+
		"  ip netns exec %s curl -sS %s\n"+
		"  ip netns exec %s curl -sS -g %s\n"+
		"  ip netns exec %s wrk -c32 -d10s %s\n"+
		"  ip netns exec %s %s doctor -iface %s\n",
		tb.ClientNS, v4, tb.ClientNS, v6, tb.ClientNS, v4, tb.ServerNS, path, tb.ServerIf)
	select {
	case <-ctx.Done():
		stop() // a second Ctrl-C is the shell's again
		return nil
	case <-srv.Done():
		return fmt.Errorf("xhttpd exited: %v", srv.Wait())
	}
}

// curl fetches url from the client namespace and prints the response with
// its headers. -g stops curl from reading IPv6 brackets as a glob;
// --noproxy keeps a proxy from the environment out of the way.
func curl(ctx context.Context, tb *testbed.Testbed, url string) error {
	args := []string{"-sS", "-g", "-i", "--noproxy", "*", "--max-time", "10", "--fail-with-body", url}
	fmt.Printf("\n$ curl %s\n", shellJoin(args))
	cmd := tb.ClientCmd(ctx, "curl", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("curl %s: %w", url, err)
	}
	fmt.Println()
	return nil
}

// shellJoin quotes words the way a user would type them into a shell.
func shellJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if w == "" || strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=-") != "" {
			w = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		q[i] = w
	}
	return strings.Join(q, " ")
}
