package stack

import (
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// maxNeighbours bounds the table: sources are the peers' claims, and a flood
// of forged ones must not grow memory without end. Past the bound one entry
// makes room for the new one, the first that map iteration yields, which
// is as good as random: a flood of forged sources evicts a live peer only
// with the share of the table it holds, and that peer is learned again from
// its next frame.
const maxNeighbours = 1 << 16

// neighbourLock is how long an address keeps its MAC after its last frame
// from that MAC: a frame with the same source address from another MAC
// (a host on the link forging it) changes nothing while the owner is
// talking, as ARP's locktime keeps a first answer. An address silent for
// longer may move (a router failed over, a host got a new NIC).
const neighbourLock = 30 * time.Second

// neighbours maps a peer's IP address to the MAC its frames come from. The
// server only ever answers, so the last frame of a peer names the next hop
// back to it (the peer itself, or the router it lies behind) without ARP or
// ND, which stay with the kernel.
type neighbours struct {
	mu sync.RWMutex
	m  map[tcpip.Address]*neighbour
}

type neighbour struct {
	mac  tcpip.LinkAddress
	seen atomic.Int64 // last frame from mac, unix nanoseconds
}

func (n *neighbours) init() {
	n.m = make(map[tcpip.Address]*neighbour)
}

// learn records that a frame from addr came from mac at now (Unix
// nanoseconds; one clock reading serves a batch of frames). The common case,
// a known peer on its known MAC, takes only the read lock and allocates
// nothing. A different MAC replaces the known one only once the known one
// has been silent for neighbourLock.
func (n *neighbours) learn(addr tcpip.Address, mac []byte, now int64) {
	n.mu.RLock()
	e, ok := n.m[addr]
	n.mu.RUnlock()
	if ok {
		if string(e.mac) == string(mac) {
			e.seen.Store(now)
			return
		}
		if now-e.seen.Load() < int64(neighbourLock) {
			return
		}
	}
	n.mu.Lock()
	if _, known := n.m[addr]; !known && len(n.m) >= maxNeighbours {
		for victim := range n.m {
			delete(n.m, victim)
			break
		}
	}
	e = &neighbour{mac: tcpip.LinkAddress(mac)}
	e.seen.Store(now)
	n.m[addr] = e
	n.mu.Unlock()
}

// lookup returns the MAC for addr, or the zero MAC when none is known.
func (n *neighbours) lookup(addr tcpip.Address) tcpip.LinkAddress {
	n.mu.RLock()
	e, ok := n.m[addr]
	n.mu.RUnlock()
	if !ok {
		return zeroMAC
	}
	return e.mac
}
