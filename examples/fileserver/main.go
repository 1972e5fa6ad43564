// Command fileserver serves a directory with net/http's http.FileServer
// over AF_XDP, through package xdpnet: the smallest program on the data
// path, and what a Go programmer copies to put their own http.Handler (or
// any TCP server) on it.
//
//	fileserver -iface eth0 -root /srv/www [-port 80] [-mode hybrid]
//
// It stops on SIGINT or SIGTERM, or when the data path fails.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/xhttpd/xhttpd/irq"
	"github.com/xhttpd/xhttpd/xdpnet"
)

func main() {
	iface := flag.String("iface", "", "interface to serve on (required)")
	root := flag.String("root", "", "directory to serve (required)")
	port := flag.Uint("port", 80, "TCP port")
	mode := irq.Hybrid
	flag.TextVar(&mode, "mode", irq.Hybrid, "how each queue's loop waits: interrupt, busy or hybrid")
	flag.Parse()
	if err := run(*iface, *root, uint16(*port), mode); err != nil {
		fmt.Fprintln(os.Stderr, "fileserver:", err)
		os.Exit(1)
	}
}

func run(iface, root string, port uint16, mode irq.Mode) error {
	if iface == "" || root == "" {
		return fmt.Errorf("-iface and -root are required")
	}
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	path, err := xdpnet.Open(ifc, xdpnet.Options{Ports: []uint16{port}, Mode: mode})
	if err != nil {
		return err
	}
	defer path.Close()

	srv := &http.Server{Handler: http.FileServer(http.Dir(root))}
	for _, l := range path.Listeners() {
		go srv.Serve(l)
	}
	log.Printf("serving %s on port %d of %s over AF_XDP", root, port, iface)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		return srv.Shutdown(context.Background())
	case err := <-path.Failed():
		return err
	}
}
