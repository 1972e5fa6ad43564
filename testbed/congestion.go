package testbed

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// SetServerCongestionControl makes the kernel's TCP connections in the
// server namespace use the congestion control name ("cubic", "bbr", "reno";
// one the kernel has), whatever the host's default. It sets it on each of
// the server end's routes (RTAX_CC_ALGO, as `ip route ... congctl` does),
// which a connection accepted over them takes: the namespace's own default,
// net.ipv4.tcp_congestion_control, is inherited from the host when it is
// made and cannot be changed from inside it on every kernel (this one
// refuses). It matters under loss, where BBR keeps its rate and CUBIC
// cuts its window at each loss; it does not touch xhttpd's netstack,
// which has its own (NewReno).
func (tb *Testbed) SetServerCongestionControl(name string) error {
	h, err := handleIn(tb.ServerNS)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(tb.ServerIf)
	if err != nil {
		return fmt.Errorf("testbed: find %s in %s: %w", tb.ServerIf, tb.ServerNS, err)
	}
	routes, err := h.RouteList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("testbed: routes of %s: %w", tb.ServerIf, err)
	}
	set := 0
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsLinkLocalUnicast() || r.Dst.IP.IsMulticast() {
			continue
		}
		r.Congctl = name
		if err := h.RouteReplace(&r); err != nil {
			return fmt.Errorf("testbed: congestion control %q on the route to %v: %w", name, r.Dst, err)
		}
		set++
	}
	if set == 0 {
		return fmt.Errorf("testbed: no route of %s to set congestion control %q on", tb.ServerIf, name)
	}
	return nil
}
