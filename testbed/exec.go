package testbed

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"time"
)

// ServerCmd returns a command that runs name inside the server namespace
// (`ip netns exec ServerNS name args...`). `ip netns exec` execs the
// program, so the command's pid is the program's own and signals reach it.
func (tb *Testbed) ServerCmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return nsCmd(ctx, tb.ServerNS, name, args...)
}

// ClientCmd is ServerCmd for the client namespace.
func (tb *Testbed) ClientCmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return nsCmd(ctx, tb.ClientNS, name, args...)
}

func nsCmd(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// InServer is InNamespace for the server namespace.
func (tb *Testbed) InServer(fn func() error) error { return tb.in(tb.ServerNS, fn) }

// InClient is InServer for the client namespace.
func (tb *Testbed) InClient(fn func() error) error { return tb.in(tb.ClientNS, fn) }

func (tb *Testbed) in(name string, fn func() error) error {
	ns, err := openNS(name)
	if err != nil {
		return err
	}
	defer ns.Close()
	return InNamespace(ns, fn)
}

// ClientDialer returns a dial function, for http.Transport.DialContext and
// the like, whose sockets are created in the client namespace.
func (tb *Testbed) ClientDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return tb.dialer(tb.ClientNS)
}

func (tb *Testbed) dialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		// Addresses here are literals, so the dialer resolves nothing and
		// dials from this goroutine, on the thread in the namespace.
		err := tb.in(ns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// ClientHTTP returns an HTTP client whose connections start in the client
// namespace. It ignores proxy settings from the environment and keeps many
// idle connections per host, so that load from tests reuses connections.
func (tb *Testbed) ClientHTTP() *http.Client { return httpClient(tb.ClientDialer()) }

func httpClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dial,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   1024,
			IdleConnTimeout:       30 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
		},
	}
}

// ServerListen returns a kernel listener in the server namespace, e.g.
// ServerListen("tcp", "198.18.0.1:8080").
func (tb *Testbed) ServerListen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := tb.InServer(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// WaitTCP connects to addr from the client namespace until a connection
// succeeds or ctx ends: a readiness wait for a server that is starting.
func (tb *Testbed) WaitTCP(ctx context.Context, addr string) error {
	dial := tb.ClientDialer()
	err := retry(ctx, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		c, err := dial(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("testbed: %s not accepting from %s: %w", addr, tb.ClientNS, err)
	}
	return nil
}
