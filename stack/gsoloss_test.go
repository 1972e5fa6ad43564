//go:build !race

package stack

import "testing"

// A frame lost inside a GSO segment is resent alone: the netstack's loss
// recovery sees the segment as the MSS-sized pieces the endpoint sent
// (third_party/gvisor-patches/0002). Without that patch, RACK marks the
// rest of the segment lost with it and resends, one MSS at a time, pieces
// the client already has: 17 to 40 segments here in six runs.
//
// Not under the race detector, whose stalls of goroutines draw probes and
// timeouts (an RTO resends all that is in flight); make test runs this file
// without it.
func TestLossInsideGSOSegment(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			// Pairs of frames 10 apart, in one GSO segment of 46
			// frames most of the time.
			targets := map[int]bool{800: true, 810: true, 1600: true, 1610: true, 2400: true, 2410: true}
			var frames int
			var highest uint32
			var started bool
			drop := func(f []byte) bool {
				tcp := frameTCP(f)
				end := tcp.SequenceNumber() + uint32(len(tcp.Payload()))
				if len(tcp.Payload()) == 0 || (started && int32(end-highest) <= 0) {
					return false // not data, or a retransmission
				}
				started, highest = true, end
				frames++
				return targets[frames]
			}
			st, _ := lossyDownload(t, network, 1500, make([]byte, 4<<20), nil, drop)
			c := st.TCPCounters()
			t.Logf("%d frames lost of %d; %d segments resent (%d recoveries, %d probes, %d timeouts)", len(targets), frames, c.Retransmits, c.SACKRecovery, c.TLPRecovery, c.Timeouts)
			if c.Retransmits > 2*uint64(len(targets)) {
				t.Errorf("%d segments resent for %d frames lost", c.Retransmits, len(targets))
			}
		})
	}
}
