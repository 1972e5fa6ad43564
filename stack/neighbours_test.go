package stack

import (
	"bytes"
	"net"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// A MAC claimed for an address held by another, recently heard, changes
// nothing; after neighbourLock of silence from the holder it takes over.
func TestNeighbourLock(t *testing.T) {
	var n neighbours
	n.init()
	now := time.Unix(1000, 0)
	addr := tcpip.AddrFrom4([4]byte{198, 18, 0, 2})
	owner, forger := []byte{2, 0, 0, 0, 0, 2}, []byte{2, 0, 0, 0, 0, 66}

	n.learn(addr, owner, now.UnixNano())
	now = now.Add(neighbourLock - time.Second)
	n.learn(addr, forger, now.UnixNano())
	if got := n.lookup(addr); !bytes.Equal([]byte(got), owner) {
		t.Fatalf("after a forged frame: %v, want the owner's %v", got, net.HardwareAddr(owner))
	}
	// The owner talks on: the lock runs from its last frame.
	n.learn(addr, owner, now.UnixNano())
	now = now.Add(neighbourLock - time.Second)
	n.learn(addr, forger, now.UnixNano())
	if got := n.lookup(addr); !bytes.Equal([]byte(got), owner) {
		t.Fatalf("owner heard %v ago, forged frame: %v, want the owner's", neighbourLock-time.Second, got)
	}
	// Silent for the lock: the address may move.
	now = now.Add(2 * time.Second)
	n.learn(addr, forger, now.UnixNano())
	if got := n.lookup(addr); !bytes.Equal([]byte(got), forger) {
		t.Fatalf("owner silent for %v: %v, want the new MAC", neighbourLock+time.Second, got)
	}
}

// One forged segment from a host on the link, with a peer's address as its
// source, does not take the peer's answers: the SYN-ACK to the peer's next
// SYN still goes to the peer's MAC.
func TestForgedSourceKeepsPeer(t *testing.T) {
	st, q := newTestStack(t, true)
	st.Deliver(syn(clientV4, serverV4, 80, false))
	checkSYNACK(t, q.next(t), serverV4, clientV4)

	forged := syn(clientV4, serverV4, 80, false)
	copy(forged[6:12], []byte{2, 0, 0, 0, 0, 66}) // the forger's MAC
	header.TCP(forged[34:]).SetSourcePort(40001)  // a new connection; the stack trusts checksums
	st.Deliver(forged)
	// Whatever the netstack answers the forged SYN goes to the peer, which
	// owns the address, not to the forger.
	if f := q.next(t); header.Ethernet(f).DestinationAddress() != tcpip.LinkAddress(clientMAC) {
		t.Errorf("answer to the forged SYN went to %v, want the peer %v", header.Ethernet(f).DestinationAddress(), clientMAC)
	}
}
