package nic

import (
	"fmt"
	"math"

	"github.com/vishvananda/netlink/nl"

	"github.com/xhttpd/xhttpd/internal/enum"
)

// napi-set (Linux 6.13+): the one write nic makes to the netdev family, a
// per-NAPI setting of the instance serving a queue. Reads are netdev.go's.
const netdevCmdNAPISet = 14

// NAPIKnob is one per-NAPI setting napi-set writes, named as the kernel's
// netdev.yaml names it.
type NAPIKnob int

const (
	// DeferHardIRQs is the number of empty polls before the queue's hard
	// IRQ is re-armed (u32, at most 2^31-1).
	DeferHardIRQs NAPIKnob = iota
	// GROFlushTimeout is how long, in ns, the NAPI timer waits before it
	// schedules the queue again instead of re-arming the IRQ.
	GROFlushTimeout
	// IRQSuspendTimeout is how long, in ns, the IRQ stays suspended while
	// a preferred busy poller keeps finding work: a safety net for a stalled
	// application.
	IRQSuspendTimeout
	NumNAPIKnobs
)

var napiKnobNames = []string{"defer-hard-irqs", "gro-flush-timeout", "irq-suspend-timeout"}

var napiKnobAttrs = [NumNAPIKnobs]uint16{netdevANAPIDeferHardIRQs, netdevANAPIGROFlushTimeout, netdevANAPIIRQSuspend}

func (k NAPIKnob) String() string { return enum.Name(napiKnobNames, k, "NAPIKnob") }

// MarshalText is the knob's name: the key of a value in a JSON object.
func (k NAPIKnob) MarshalText() ([]byte, error) { return enum.Marshal(napiKnobNames, k, "NAPI knob") }

// UnmarshalText reads a knob's name.
func (k *NAPIKnob) UnmarshalText(b []byte) error {
	return enum.Unmarshal(napiKnobNames, b, "NAPI knob", k)
}

// Knob is the knob's value as napi-get reported it; false when the kernel
// did not report it (before 6.13).
func (n NAPI) Knob(k NAPIKnob) (uint64, bool) {
	switch k {
	case DeferHardIRQs:
		if n.DeferHardIRQs != nil {
			return uint64(*n.DeferHardIRQs), true
		}
	case GROFlushTimeout:
		if n.GROFlushTimeout != nil {
			return *n.GROFlushTimeout, true
		}
	case IRQSuspendTimeout:
		if n.IRQSuspendTimeout != nil {
			return *n.IRQSuspendTimeout, true
		}
	}
	return 0, false
}

// SetNAPI writes one knob of NAPI instance id (napi-set), one knob a
// request, so that a knob the kernel rejects is known by itself. The
// instance is looked up in this process's network namespace: ENOENT when
// it is not there (gone with the driver's reset, or never). It needs
// CAP_NET_ADMIN.
func (n *Netdev) SetNAPI(id uint32, k NAPIKnob, v uint64) error {
	what := fmt.Sprintf("napi-set NAPI %d %s %d", id, k, v)
	var val []byte
	switch k {
	case DeferHardIRQs:
		if v > math.MaxInt32 {
			return fmt.Errorf("nic: netdev %s: at most %d", what, math.MaxInt32)
		}
		val = nl.Uint32Attr(uint32(v))
	case GROFlushTimeout, IRQSuspendTimeout:
		val = nl.Uint64Attr(v) // netlink's uint: 4 or 8 bytes
	default:
		return fmt.Errorf("nic: netdev %s: no such knob", what)
	}
	_, err := n.request(netdevCmdNAPISet, what, false,
		nl.NewRtAttr(netdevANAPIID, nl.Uint32Attr(id)), nl.NewRtAttr(int(napiKnobAttrs[k]), val))
	return err
}
