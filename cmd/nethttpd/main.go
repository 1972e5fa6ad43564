// Command nethttpd serves a directory with Go's net/http FileServer on the
// kernel's sockets: the baseline that xhttpd's own HTTP code is measured
// against (same machine, same testbed, same files, only the HTTP code
// differs). It is not meant for anything else.
//
//	nethttpd -root /srv/www -addr 198.18.0.1:80,[2001:2::1]:80
//
// SIGINT and SIGTERM shut it down.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "nethttpd: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("nethttpd", flag.ContinueOnError)
	addrs := fs.String("addr", ":8080", "addresses to listen on, comma-separated")
	root := fs.String("root", "", "directory to serve (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *root == "" {
		return errors.New("-root is required")
	}
	if fi, err := os.Stat(*root); err != nil || !fi.IsDir() {
		return fmt.Errorf("-root %q is not a directory", *root)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The settings a careful net/http deployment has: header and idle
	// timeouts like xhttpd's defaults.
	srv := &http.Server{
		Handler:           http.FileServer(http.Dir(*root)),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	errc := make(chan error, 1)
	n := 0
	for _, a := range strings.Split(*addrs, ",") {
		l, err := net.Listen("tcp", strings.TrimSpace(a))
		if err != nil {
			srv.Close()
			return err
		}
		n++
		slog.Info("serving", "addr", l.Addr().String(), "root", *root)
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		srv.Close()
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
