package stack

import (
	"net/netip"
	"testing"
)

// The netstack drops a segment whose source is the broadcast address of one
// of the server's subnets (RFC 1122 3.2.1.3) and counts it. Patch 0021 makes
// IPv4 look the source up only when it could be one, its two low bits set;
// every other source is accepted without the lookup.
func TestSubnetBroadcastSourceDropped(t *testing.T) {
	q := newFakeQueue()
	st, _ := serverStack(t, q, Config{MTU: 1500}, "tcp4") // 198.18.0.1/24
	invalid := st.s.Stats().IP.InvalidSourceAddressesReceived

	st.Deliver(syn(netip.MustParseAddr("198.18.0.255"), serverV4, 80, false))
	if n := invalid.Value(); n != 1 {
		t.Fatalf("a SYN from the subnet's broadcast address: %d invalid sources counted, want 1", n)
	}
	for _, src := range []string{
		"198.18.0.3",   // low bits set, but not the broadcast address
		"198.18.1.255", // the broadcast address of a subnet not the server's
		"198.18.0.2",   // an ordinary client
	} {
		a := netip.MustParseAddr(src)
		st.Deliver(syn(a, serverV4, 80, false))
		checkSYNACK(t, q.next(t), serverV4, a)
	}
	if n := invalid.Value(); n != 1 {
		t.Errorf("%d invalid sources counted, want 1", n)
	}
}
