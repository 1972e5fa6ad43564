package xdpnet_test

import (
	"log"
	"net"
	"net/http"

	"github.com/xhttpd/xhttpd/irq"
	"github.com/xhttpd/xhttpd/xdpnet"
)

// Serving net/http's file server over AF_XDP on port 80 of eth0's
// addresses, with the hybrid loop. It needs root or the capabilities the
// package doc names.
func Example() {
	ifc, err := net.InterfaceByName("eth0")
	if err != nil {
		log.Fatal(err)
	}
	path, err := xdpnet.Open(ifc, xdpnet.Options{Ports: []uint16{80}, Mode: irq.Hybrid})
	if err != nil {
		log.Fatal(err)
	}
	defer path.Close()
	h := http.FileServer(http.Dir("/srv/www"))
	for _, l := range path.Listeners() { // one per address family
		go http.Serve(l, h)
	}
	log.Fatal(<-path.Failed())
}
