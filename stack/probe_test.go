//go:build !race

package stack

import (
	"testing"
	"time"
)

// A receiver that now and then takes a few milliseconds to acknowledge (a
// busy client) must not draw loss probes: on a link without loss the
// server retransmits nothing. The netstack's probe timeout is 2*SRTT, a few
// hundred microseconds here, unless floored (10 ms, the patch in
// third_party/gvisor-patches).
//
// Not under the race detector, which itself stalls goroutines for more than
// 10 ms now and then, and so draws probes that are due; make test runs this
// file without it.
func TestNoProbesForSlowACKs(t *testing.T) {
	n := 0
	st, _ := download(t, "tcp4", 1500, make([]byte, 4<<20), func([]byte) bool {
		// Every 10th packet from the client waits 3 ms: a burst of ACKs
		// held up, as by a client busy elsewhere.
		if n++; n%10 == 0 {
			time.Sleep(3 * time.Millisecond)
		}
		return false
	})
	// Without the floor this resent 1 to 129 segments in eight runs, 2 or
	// more in six; with it, none.
	if c := st.TCPCounters(); c.Retransmits > 1 {
		t.Errorf("%d segments resent on a link that lost none (%d tail loss probes, %d recoveries)", c.Retransmits, c.TLPRecovery, c.SACKRecovery)
	}
}
