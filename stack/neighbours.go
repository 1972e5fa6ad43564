package stack

import (
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// maxNeighbours bounds the table: sources are the peers' claims, and a flood
// of forged ones must not grow memory without end. Past the bound one entry
// makes room for the new one, the first that map iteration yields, which
// is as good as random: a flood of forged sources evicts a live peer only
// with the share of the table it holds, and that peer is learned again from
// its next frame.
const maxNeighbours = 1 << 16

// neighbours maps a peer's IP address to the MAC its frames come from. The
// server only ever answers, so the last frame of a peer names the next hop
// back to it (the peer itself, or the router it lies behind) without ARP or
// ND, which stay with the kernel.
type neighbours struct {
	mu sync.RWMutex
	m  map[tcpip.Address]tcpip.LinkAddress
}

func (n *neighbours) init() { n.m = make(map[tcpip.Address]tcpip.LinkAddress) }

// learn records mac for addr. The common case, an unchanged entry, takes
// only the read lock and allocates nothing.
func (n *neighbours) learn(addr tcpip.Address, mac []byte) {
	n.mu.RLock()
	known, ok := n.m[addr]
	n.mu.RUnlock()
	if ok && string(known) == string(mac) {
		return
	}
	n.mu.Lock()
	if _, known := n.m[addr]; !known && len(n.m) >= maxNeighbours {
		for victim := range n.m {
			delete(n.m, victim)
			break
		}
	}
	n.m[addr] = tcpip.LinkAddress(mac)
	n.mu.Unlock()
}

// lookup returns the MAC for addr, or the zero MAC when none is known.
func (n *neighbours) lookup(addr tcpip.Address) tcpip.LinkAddress {
	n.mu.RLock()
	mac, ok := n.m[addr]
	n.mu.RUnlock()
	if !ok {
		return zeroMAC
	}
	return mac
}
