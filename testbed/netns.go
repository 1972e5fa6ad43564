package testbed

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// openNS opens the namespace `ip netns` knows as name.
func openNS(name string) (netns.NsHandle, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return netns.None(), fmt.Errorf("testbed: open namespace %s: %w", name, err)
	}
	return ns, nil
}

// handleIn opens a netlink handle whose sockets live in the namespace
// called name.
func handleIn(name string) (*netlink.Handle, error) {
	ns, err := openNS(name)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("testbed: netlink in %s: %w", name, err)
	}
	return h, nil
}

// InNamespace runs fn on an OS thread switched into the network namespace
// ns and waits for it. Sockets fn creates stay in ns for their life,
// whatever thread uses them later; BPF links, AF_XDP binds and interface
// indexes resolve in ns. Goroutines that fn starts do not run in ns.
func InNamespace(ns netns.NsHandle, fn func() error) error {
	return onThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("testbed: enter namespace %v: %w", ns, err)
		}
		return fn()
	})
}

// NewNamespace creates a network namespace without a name and returns a
// handle to it. It lives until the handle and everything else in it (a
// process, a socket) are closed, and then goes with every interface in it:
// having no name under /run/netns, it leaves nothing behind, also when the
// process dies, and cannot collide with anything on the host.
func NewNamespace() (netns.NsHandle, error) {
	ns := netns.None()
	err := onThread(func() error {
		var err error
		ns, err = netns.New()
		return err
	})
	if err != nil {
		if ns.IsOpen() {
			ns.Close()
		}
		return netns.None(), fmt.Errorf("testbed: new namespace: %w", err)
	}
	return ns, nil
}

// onThread runs fn on a goroutine locked to its OS thread, which fn may move
// into another network namespace, and waits for it; the thread then goes
// back to the namespace it came from. A thread that cannot go back stays
// locked, so that it dies with the goroutine instead of returning to the
// scheduler's pool in the wrong namespace.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("testbed: current namespace: %w", err)
			return
		}
		defer orig.Close()
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("testbed: back to the original namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
